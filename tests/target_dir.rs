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

/// Holds the target dir's lock from another process, as a second clone's
/// `scripts/test` would, until dropped.
struct Holder(std::process::Child);

impl Holder {
    fn take(sb: &Sandbox) -> Self {
        fs::create_dir_all(sb.target()).unwrap();
        let ready = sb.dir.path().join("ready");
        let child = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "exec 9>'{}'; flock 9; touch '{}'; exec sleep 60",
                sb.target().join(".examcap-lock").display(),
                ready.display()
            ))
            .spawn()
            .expect("holder starts");
        let holder = Holder(child);
        let start = std::time::Instant::now();
        while !ready.exists() {
            assert!(start.elapsed().as_secs() < 20, "holder never took the lock");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        holder
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Sandbox {
    /// Starts a script shaped like `scripts/test`: from the clone's root it
    /// sources `env.sh --lock` with its own path, then says it ran. With
    /// `leave`, it also leaves a background child running, as a test that
    /// leaks a server would.
    fn script(&self, leave: bool) -> std::process::Child {
        let script = self.dir.path().join("script");
        fs::write(
            &script,
            format!(
                "#!/usr/bin/env bash\nset -euo pipefail\ncd '{}'\n\
                 . scripts/env.sh --lock '{}' \"$@\"\n\
                 if [ \"${{1:-}}\" = leave ]; then sleep 60 >/dev/null 2>&1 & fi\n\
                 echo \"ran under $EXAMCAP_LOCK_HELD\"\n",
                clone().display(),
                script.display()
            ),
        )
        .unwrap();
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Command::new("bash")
            .arg(&script)
            .args(leave.then_some("leave"))
            .env("PATH", path)
            .env("CARGO_TARGET_DIR", self.target())
            .env_remove("EXAMCAP_LOCK_HELD")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("bash runs")
    }
}

#[test]
fn the_scripts_wait_for_another_clones_run_and_a_hand_sourcing_does_not() {
    let sb = Sandbox::new();
    let holder = Holder::take(&sb);

    // By hand (no --lock): no waiting, the holder is still there.
    assert_eq!(sb.source(), "");

    // As the scripts source it: blocked until the holder lets go.
    let mut script = sb.script(false);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        script.try_wait().unwrap().is_none(),
        "env.sh --lock went on while another run held the lock"
    );
    drop(holder);
    let out = script.wait_with_output().expect("script finishes");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {err}");
    assert!(
        err.contains("waiting for another build or test run"),
        "stderr: {err}"
    );
    let lock = sb.target().join(".examcap-lock");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        format!("ran under {}", lock.display())
    );
}

#[test]
fn a_child_left_running_by_a_script_does_not_keep_the_lock() {
    let sb = Sandbox::new();
    let first = sb.script(true).wait_with_output().expect("first run");
    assert!(first.status.success());

    // The first run's `sleep 60` is still running; the next run goes ahead.
    let mut second = sb.script(false);
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if start.elapsed().as_secs() >= 20 {
            let _ = second.kill();
            panic!("the second run waited on a lock its predecessor's child kept");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(status.success());
    let out = second.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}
