//! `scripts/env.sh` shares one target dir between every clone on a machine,
//! and cargo takes a workspace crate as fresh when its files are older than
//! the last build, from whichever clone. The script therefore drops this
//! workspace's artifacts when another clone (or an unrecorded one) built
//! last. These tests source it with a stand-in `cargo` that logs its
//! arguments, so nothing is really cleaned.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const CLEAN: &str = "clean --quiet --release -p examcap -p examcap-solver -p examcap-loadtest";

struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let bin = dir.path().join("bin");
        fs::create_dir(&bin).expect("bin dir");
        let cargo = bin.join("cargo");
        fs::write(
            &cargo,
            format!(
                "#!/bin/sh\necho \"$*\" >> '{}'\n",
                dir.path().join("cargo.log").display()
            ),
        )
        .expect("fake cargo");
        Command::new("chmod")
            .arg("+x")
            .arg(&cargo)
            .status()
            .expect("chmod");
        Sandbox { dir }
    }

    fn target(&self) -> PathBuf {
        self.dir.path().join("target")
    }

    /// Sources env.sh from the clone's root; returns its stderr.
    fn source(&self) -> String {
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("bash")
            .args(["-c", "set -euo pipefail; . scripts/env.sh"])
            .current_dir(clone())
            .env("PATH", path)
            .env("CARGO_TARGET_DIR", self.target())
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "env.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn cargo_calls(&self) -> Vec<String> {
        fs::read_to_string(self.dir.path().join("cargo.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn stamp(&self) -> String {
        fs::read_to_string(self.target().join(".examcap-clone")).expect("stamp written")
    }
}

fn clone() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .canonicalize()
        .expect("clone root")
}

#[test]
fn a_build_from_another_clone_is_dropped_once() {
    let sb = Sandbox::new();
    fs::create_dir_all(sb.target().join("release")).unwrap();
    fs::write(sb.target().join(".examcap-clone"), "/elsewhere/examcap\n").unwrap();

    let err = sb.source();
    assert_eq!(sb.cargo_calls(), [CLEAN]);
    assert!(err.contains("/elsewhere/examcap"), "stderr: {err}");
    assert_eq!(sb.stamp().trim_end(), clone().to_str().unwrap());

    // Now this clone's: nothing more to drop.
    let err = sb.source();
    assert_eq!(sb.cargo_calls(), [CLEAN]);
    assert_eq!(err, "");
}

#[test]
fn an_unrecorded_build_is_dropped_and_a_new_target_dir_is_not_cleaned() {
    let sb = Sandbox::new();
    fs::create_dir_all(sb.target().join("release")).unwrap();
    let err = sb.source();
    assert_eq!(sb.cargo_calls(), [CLEAN]);
    assert!(err.contains("not recorded"), "stderr: {err}");

    let fresh = Sandbox::new();
    assert_eq!(fresh.source(), "");
    assert!(fresh.cargo_calls().is_empty());
    assert_eq!(fresh.stamp().trim_end(), clone().to_str().unwrap());
}
