//! The pod spec the builders render and the image `gateway-image/` builds must agree: a
//! change on one side without the other fails here, before any cluster sees it.

use clawhost::children::gateway_statefulset::{
    GATEWAY_UID, HOME_DIR, PROBE_COMMAND, STATE_DIR, gateway_args,
};
use clawhost::config::GATEWAY_PORT;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/../{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn instruction<'a>(dockerfile: &'a str, name: &str) -> Vec<&'a str> {
    dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix(name).map(str::trim))
        .collect()
}

#[test]
fn image_default_command_is_what_the_pod_runs() {
    let d = read("gateway-image/Dockerfile");
    let cmd: Vec<String> =
        serde_json::from_str(instruction(&d, "CMD ")[0]).expect("CMD is a JSON array");
    assert_eq!(cmd, gateway_args());
    let entry: Vec<String> = serde_json::from_str(instruction(&d, "ENTRYPOINT ")[0]).unwrap();
    assert_eq!(
        entry,
        ["/usr/bin/tini", "--", "/usr/local/bin/clawhost-entrypoint"]
    );
}

#[test]
fn image_installs_the_probe_and_entrypoint_where_the_pod_expects_them() {
    let d = read("gateway-image/Dockerfile");
    assert!(
        d.contains(&format!("clawhost-probe {PROBE_COMMAND}")),
        "probe not installed at {PROBE_COMMAND}"
    );
    assert!(d.contains("entrypoint.sh /usr/local/bin/clawhost-entrypoint"));
    assert!(
        instruction(&d, "USER ")
            .iter()
            .any(|u| u.starts_with(&format!("{GATEWAY_UID}:{GATEWAY_UID}")))
    );
    assert!(instruction(&d, "EXPOSE ").contains(&GATEWAY_PORT.to_string().as_str()));
    assert!(d.contains(&format!("HOME={HOME_DIR}")));
    assert!(d.contains(&format!("OPENCLAW_STATE_DIR={STATE_DIR}")));
    assert!(
        instruction(&d, "ARG OPENCLAW_VERSION=").contains(
            &clawhost::config::OperatorConfig::default()
                .gateway
                .default_version
                .as_str()
        )
    );
}

#[test]
fn probe_script_checks_the_bodies_of_the_three_endpoints() {
    let p = read("gateway-image/clawhost-probe");
    for path in ["/startupz", "/readyz", "/healthz"] {
        assert!(p.contains(path), "probe script lacks {path}");
    }
    for kind in ["startup", "ready", "live"] {
        assert!(p.contains(kind), "probe script lacks the {kind} mode");
    }
    assert!(p.contains("OPENCLAW_GATEWAY_PORT"));
}

#[test]
fn openclaw_schema_snapshot_matches_the_default_version() {
    assert_eq!(
        clawhost::openclaw::schema::SCHEMA_VERSION,
        clawhost::config::OperatorConfig::default()
            .gateway
            .default_version
    );
}
