//! clawhost's pure core: everything that decides *what* should exist, with no I/O.
//!
//! Modules in layer order; each uses only those above it (`tests::layers` holds that):
//! - [`api`]: the `Assistant` resource (types).
//! - [`problems`]: what validation reports.
//! - [`config`]: the operator configuration file.
//! - [`openclaw`]: the `openclaw.json` a gateway runs, and openclaw's schema for it.
//! - [`validation`]: every rule an Assistant must satisfy.
//! - [`children`]: one pure builder per child object, and the table of child kinds.
//! - [`backup`]: snapshot policy, schedule, names, retention and health.
//! - [`render`]: offline rendering (`clawhost render`).
//! - [`crd`]: the CRD generated from the types.
//! - [`rbac`]: the permissions the operator and console need.

pub mod api;
pub mod backup;
pub mod children;
pub mod config;
pub mod crd;
pub mod openclaw;
pub mod problems;
pub mod rbac;
pub mod render;
/// Fixtures for tests (here and, through the `fixtures` feature, the operator's): never in
/// a release build.
#[cfg(any(test, feature = "fixtures"))]
pub mod testing;
pub mod validation;

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// What each module may use, in layer order: no module reaches up or sideways, so the
    /// module graph has no cycle. A new dependency is a conscious edit here.
    const LAYERS: &[(&str, &[&str])] = &[
        ("api", &[]),
        ("problems", &[]),
        ("config", &["api"]),
        ("openclaw", &["api", "config", "problems"]),
        ("validation", &["api", "config", "openclaw", "problems"]),
        (
            "children",
            &["api", "config", "openclaw", "validation", "problems"],
        ),
        ("backup", &["api", "config", "children"]),
        (
            "render",
            &["api", "config", "children", "validation", "problems"],
        ),
        ("crd", &["api"]),
        ("rbac", &["children"]),
    ];

    fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                sources(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    #[test]
    fn layers() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        let re = regex_lite::Regex::new(r"crate::([a-z_]+)").unwrap();
        let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for f in files {
            let rel = f.strip_prefix(&src).unwrap();
            let module = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string();
            if module == "lib" || module == "testing" {
                continue;
            }
            let text = std::fs::read_to_string(&f).unwrap();
            // Test modules (at the end of a file) may use fixtures.
            let code: String = text
                .split("#[cfg(test)]")
                .next()
                .unwrap()
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            for c in re.captures_iter(&code) {
                if c[1] != *module {
                    uses.entry(module.clone())
                        .or_default()
                        .insert(c[1].to_string());
                }
            }
        }
        let allowed: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
        let mut wrong = Vec::new();
        for (module, used) in &uses {
            let Some(ok) = allowed.get(module.as_str()) else {
                wrong.push(format!("{module} is not in LAYERS"));
                continue;
            };
            for u in used {
                if !ok.contains(&u.as_str()) {
                    wrong.push(format!("{module} uses {u}"));
                }
            }
        }
        assert!(wrong.is_empty(), "layer violations: {wrong:?}");
    }
}
