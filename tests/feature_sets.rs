//! `scripts/demo` (`cargo build --bin examcap`) and `scripts/test`
//! (`cargo test --workspace`) must resolve every shared dependency with the
//! same features, or a fresh machine compiles HiGHS's C++, bindgen and every
//! proc macro twice. Dev-dependencies are where the two sets part: a
//! feature one of them turns on must also be listed in the root package's
//! `[dependencies]` (see the comment there).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// `cargo tree` as ("host"/"target", "package version") → features,
/// merged over every occurrence. Build dependencies, proc macros and
/// everything under them are compiled for the host, with features resolved
/// apart from the target's, so the two sides are kept apart.
fn features(args: &[&str]) -> BTreeMap<(&'static str, String), BTreeSet<String>> {
    let out = Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["tree", "--locked", "--charset", "ascii", "-f", "{p}|{f}"])
        .args(args)
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut map: BTreeMap<(&'static str, String), BTreeSet<String>> = BTreeMap::new();
    // Per depth: whether the crate there is built for the host, and whether
    // the crates at that depth so far sit under a [build-dependencies]
    // header (printed one level less indented than the crates it heads).
    let mut host: Vec<bool> = Vec::new();
    let mut build_section: Vec<bool> = vec![false];
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let body = line.trim_start_matches(['|', '`', '-', ' ']);
        let depth = (line.len() - body.len()) / 4;
        if body.starts_with('[') {
            build_section.resize(depth + 2, false);
            build_section[depth + 1] = body == "[build-dependencies]";
            continue;
        }
        let Some((package, feats)) = body.split_once('|') else {
            continue;
        };
        host.truncate(depth);
        build_section.resize(depth + 1, false);
        let on_host = host.last().copied().unwrap_or(false)
            || build_section[depth]
            || package.contains("(proc-macro)");
        host.push(on_host);
        build_section.push(false);
        // "name v1.2.3 (/path)" or "name v1.2.3 (proc-macro)": keep name and version.
        let key: String = package.split(' ').take(2).collect::<Vec<_>>().join(" ");
        let side = if on_host { "host" } else { "target" };
        let feats = feats.trim_end_matches(" (*)").trim();
        map.entry((side, key)).or_default().extend(
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
    let root = ("target", format!("examcap v{}", env!("CARGO_PKG_VERSION")));
    assert!(
        demo.contains_key(&root),
        "cargo tree output not understood: {:?}",
        demo.keys().take(5).collect::<Vec<_>>()
    );
    // HiGHS's C++ is built by highs-sys's build script with bindgen, a
    // build dependency: both sides must be seen.
    assert!(demo.contains_key(&("target", "highs-sys v1.16.0".to_string())));
    assert!(demo
        .keys()
        .any(|(side, k)| *side == "host" && k.starts_with("bindgen ")));
    let differ: Vec<String> = demo
        .iter()
        .filter_map(|(k, f)| {
            let t = test.get(k)?;
            (t != f).then(|| {
                format!(
                    "{k:?}: test build adds {:?}, demo build adds {:?}",
                    t.difference(f).collect::<Vec<_>>(),
                    f.difference(t).collect::<Vec<_>>()
                )
            })
        })
        .collect();
    assert!(
        differ.is_empty(),
        "list these features in the root package's [dependencies] (target) \
         or [build-dependencies] (host):\n{}",
        differ.join("\n")
    );
}
