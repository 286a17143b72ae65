//! `scripts/demo` (`cargo build --bin examcap`) and `scripts/test`
//! (`cargo test --workspace`) must resolve every shared dependency with the
//! same features, or a fresh machine compiles HiGHS's C++, bindgen and every
//! proc macro twice. Dev-dependencies are where the two sets part: a
//! feature one of them turns on must also be listed in the root package's
//! `[dependencies]` (see the comment there).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// `cargo tree` as "package version" → features, merged over every
/// occurrence.
fn features(args: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let out = Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["tree", "--locked", "--prefix", "none", "-f", "{p}|{f}"])
        .args(args)
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((package, feats)) = line.split_once('|') else {
            continue;
        };
        // "name v1.2.3 (/path)" or "name v1.2.3 (proc-macro)": keep name and version.
        let key: String = package.split(' ').take(2).collect::<Vec<_>>().join(" ");
        let feats = feats.trim_end_matches(" (*)").trim();
        map.entry(key).or_default().extend(
            feats
                .split(',')
                .filter(|f| !f.is_empty())
                .map(str::to_string),
        );
    }
    map
}

#[test]
fn the_demo_and_the_test_build_share_every_dependency_build() {
    let demo = features(&["-p", "examcap", "-e", "normal,build"]);
    let test = features(&["--workspace", "-e", "normal,build,dev"]);
    assert!(
        demo.contains_key(&format!("examcap v{}", env!("CARGO_PKG_VERSION"))),
        "cargo tree output not understood: {:?}",
        demo.keys().take(5).collect::<Vec<_>>()
    );
    assert!(demo.keys().any(|k| k.starts_with("highs-sys ")));
    let differ: Vec<String> = demo
        .iter()
        .filter_map(|(k, f)| {
            let t = test.get(k)?;
            (t != f).then(|| {
                format!(
                    "{k}: test build adds {:?}, demo build adds {:?}",
                    t.difference(f).collect::<Vec<_>>(),
                    f.difference(t).collect::<Vec<_>>()
                )
            })
        })
        .collect();
    assert!(
        differ.is_empty(),
        "list these features in the root package's [dependencies]:\n{}",
        differ.join("\n")
    );
}
