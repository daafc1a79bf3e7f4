#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scratch() {
    let extra: Vec<String> = std::env::var("EXTRA").map(|s| s.split_whitespace().map(String::from).collect()).unwrap_or_default();
    let mut cp = clawhost_envtest::ControlPlane::start_with(clawhost_envtest::Options{controller_manager: std::env::var("CM").is_ok(), extra_apiserver_flags: extra}).await.unwrap();
    let t = std::time::Instant::now();
    cp.stop_apiserver().await;
    eprintln!("stop took {:?} dir {}", t.elapsed(), cp.dir().display());
    let t = std::time::Instant::now();
    cp.start_apiserver().await.unwrap();
    eprintln!("start took {:?}", t.elapsed());
    let t = std::time::Instant::now();
    drop(cp);
    eprintln!("drop took {:?}", t.elapsed());
}
