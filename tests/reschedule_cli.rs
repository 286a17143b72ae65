//! `examcap reschedule`, offline on files: generate → solve → reschedule.

use std::path::Path;
use std::process::{Command, Output};

use examcap_solver::Plan;

fn examcap(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_examcap"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("examcap runs")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn read_plan(path: &Path) -> Plan {
    serde_json::from_slice(&std::fs::read(path).expect("plan file")).expect("a plan")
}

/// The national scenario of `weeks` weeks (seed 1) in `d/sc.json`, solved
/// into `d/plan.json`.
fn generate_and_solve(d: &Path, weeks: u32) {
    let weeks = weeks.to_string();
    ok(&examcap(
        &[
            "scenario", "generate", "--seed", "1", "--weeks", &weeks, "--out", "sc.json",
        ],
        d,
    ));
    ok(&examcap(
        &["solve", "sc.json", "--out", "plan.json", "-q"],
        d,
    ));
}

#[test]
fn offline_reschedule_prints_repair_replan_and_diff_and_keeps_the_freeze() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    generate_and_solve(d, 12);
    let out = ok(&examcap(
        &[
            "reschedule",
            "--plan",
            "plan.json",
            "--scenario",
            "sc.json",
            "--surge",
            "SPREKEN_B1:1.6:4:8",
            "--freeze",
            "3",
            "--sigma",
            "0.1",
            "--out",
            "re.json",
            "--out-scenario",
            "shocked.json",
        ],
        d,
    ));
    for part in [
        "Repair (first answer",
        "Optimal re-plan",
        "Re-plan against plan.json",
        "location      week exam",
        "RESCHEDULE_STATUS_OPTIMAL",
    ] {
        assert!(out.contains(part), "no {part:?} in:\n{out}");
    }
    let (published, re) = (
        read_plan(&d.join("plan.json")),
        read_plan(&d.join("re.json")),
    );
    let frozen = |p: &Plan| {
        let mut v: Vec<_> = p
            .allocation
            .iter()
            .filter(|a| a.week < 3)
            .map(|a| format!("{a:?}"))
            .collect();
        v.sort();
        v
    };
    assert_eq!(frozen(&re), frozen(&published));
    assert_ne!(re.allocation, published.allocation);
    // The printed plan id is the re-plan written out.
    assert!(out.contains(&re.fingerprint()));
    // With the shocked scenario written next to it, the re-plan can be
    // compared with the published plan and put on the calendar.
    ok(&examcap(
        &[
            "report",
            "plan.json",
            "--scenario",
            "sc.json",
            "--compare",
            "re.json",
            "--compare-scenario",
            "shocked.json",
            "--out",
            "cmp.html",
        ],
        d,
    ));
    let html = std::fs::read_to_string(d.join("cmp.html")).unwrap();
    assert!(
        html.contains("+reschedule"),
        "the report names the re-plan's scenario"
    );
    ok(&examcap(
        &["calendar", "re.json", "--scenario", "shocked.json"],
        d,
    ));
    // A re-plan does not look for extra sessions, and says so rather than
    // "nowhere".
    assert!(re.recommendations.is_empty());
    assert_eq!(re.solver.options.recommendations, 0);
    ok(&examcap(
        &[
            "report",
            "re.json",
            "--scenario",
            "shocked.json",
            "--out",
            "re.html",
        ],
        d,
    ));
    let html = std::fs::read_to_string(d.join("re.html")).unwrap();
    assert!(
        html.contains("Not looked for: a re-plan lists none"),
        "{html}"
    );
}

#[test]
fn bad_reschedule_input_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = examcap(&["reschedule", "--surge", "SPREKEN_B1:1.6:4:8"], d);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--server URL"));
    let o = examcap(
        &[
            "reschedule",
            "--server",
            "http://127.0.0.1:1",
            "--surge",
            "X:1.6:8",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("EXAM:MULTIPLIER:FROM_WEEK:TO_WEEK"));
    for (flag, value) in [("--freeze", "-1"), ("--freeze", "x"), ("--rows", "-3")] {
        let o = examcap(
            &[
                "reschedule",
                "--server",
                "http://127.0.0.1:1",
                "--surge",
                "X:1.6:8:9",
                flag,
                value,
            ],
            d,
        );
        assert_eq!(o.status.code(), Some(2));
        let err = String::from_utf8_lossy(&o.stderr);
        let want = format!("invalid value '{value}' for '{flag}");
        assert!(err.contains(&want), "{flag} {value}: {err}");
        assert!(
            err.contains("must be a whole number >= 0"),
            "{flag} {value}: {err}"
        );
    }
}

/// The offline re-plan of `d/plan.json` changed by `tamper`, which must be
/// refused as a usage error (exit 2); its stderr.
fn refused_plan(d: &Path, tamper: impl FnOnce(&mut serde_json::Value)) -> String {
    refused_plan_at(d, "1", tamper)
}

/// [`refused_plan`] with `--freeze F`.
fn refused_plan_at(d: &Path, freeze: &str, tamper: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("plan.json")).unwrap()).unwrap();
    tamper(&mut plan);
    std::fs::write(d.join("bad.json"), serde_json::to_vec(&plan).unwrap()).unwrap();
    let o = examcap(
        &[
            "reschedule",
            "--plan",
            "bad.json",
            "--scenario",
            "sc.json",
            "--surge",
            "SPREKEN_B1:1.6:2:4",
            "--freeze",
            freeze,
        ],
        d,
    );
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{err}");
    err
}

#[test]
fn a_plan_file_that_does_not_fit_its_scenario_is_a_usage_error_naming_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    generate_and_solve(d, 6);
    // Same scenario hash, so the file passes that check; its rows do not fit.
    let err = refused_plan(d, |plan| {
        plan["allocation"][0]["location"] = "NOWHERE".into();
        plan["allocation"][1]["week"] = 6.into();
    });
    assert!(
        err.contains("allocation[0].location: unknown location \"NOWHERE\""),
        "{err}"
    );
    assert!(
        err.contains("allocation[1].week: must be below the horizon of 6 weeks, got 6"),
        "{err}"
    );
    // A document of another format is not read as a plan.
    let err = refused_plan(d, |plan| plan["format"] = "examcap/plan@9".into());
    assert!(err.contains("\"examcap/plan@9\""), "{err}");
    // Fields of the wrong type are named too, not given as a line and column.
    for (field, value, want) in [
        (
            "candidates",
            serde_json::json!(-5),
            "allocation[2].candidates: must be a whole number >= 0, got -5",
        ),
        (
            "candidates",
            serde_json::json!(1.5),
            "allocation[2].candidates: must be a whole number >= 0, got 1.5",
        ),
        (
            "week",
            serde_json::json!("x"),
            "allocation[2].week: must be a whole number >= 0, got \"x\"",
        ),
        (
            "exam",
            serde_json::json!(7),
            "allocation[2].exam: must be a string, got 7",
        ),
    ] {
        let err = refused_plan(d, |plan| plan["allocation"][2][field] = value);
        assert!(err.contains(want), "{err}");
    }
}

/// A row edited past what its location seats and past the registrations,
/// in a week and exam the re-plan would change anyway: refused whatever
/// the freeze (it used to pass at F = 0, the repair "removing" candidates
/// no shock had moved).
#[test]
fn a_plan_file_edited_past_capacity_is_refused_whatever_the_freeze() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    generate_and_solve(d, 6);
    for freeze in ["0", "1", "6"] {
        let err = refused_plan_at(d, freeze, |plan| {
            let rows = plan["allocation"].as_array_mut().unwrap();
            let row = rows
                .iter_mut()
                .find(|r| r["exam"] == "SPREKEN_B1" && r["week"] == 3)
                .expect("a Spreken row in week 3");
            // Seatable on its own (84 of 40 minutes in 3,380), not with the rest.
            row["candidates"] = 84.into();
        });
        assert!(err.contains("does not fit"), "F={freeze}: {err}");
        assert!(
            err.contains("allocation: week 3: the rows "),
            "F={freeze}: {err}"
        );
    }
}

/// The repair is printed when it is ready, not held back until the re-plan
/// is done: on the 52-week national plan the re-plan takes over a second
/// after it, and its line must come that much later.
#[test]
fn the_repair_is_printed_before_the_replan_is_done() {
    use std::io::{BufRead, BufReader};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    generate_and_solve(d, 52);
    let offline = ["reschedule", "--plan", "plan.json", "--scenario", "sc.json"];
    let mut child = Command::new(env!("CARGO_BIN_EXE_examcap"))
        .args(offline)
        .args(["--surge", "SPREKEN_B1:1.6:10:16", "--freeze", "4"])
        .current_dir(d)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("examcap runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = |prefix: &str| loop {
        let line = lines.next().expect("more output").unwrap();
        if line.starts_with(prefix) {
            return Instant::now();
        }
    };
    let repair = seen("Repair (first answer");
    let replan = seen("Optimal re-plan");
    assert!(child.wait().unwrap().success());
    assert!(
        replan - repair > Duration::from_millis(200),
        "the repair came {:?} before the re-plan",
        replan - repair
    );
}

/// Offline, every surge that does not fit the scenario is named by its
/// place among the `--surge` flags, as the online form names them.
#[test]
fn offline_surge_errors_name_each_surge_like_the_online_form() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    generate_and_solve(d, 12);
    let o = examcap(
        &[
            "reschedule",
            "--plan",
            "plan.json",
            "--scenario",
            "sc.json",
            "--surge",
            "NOPE:1.6:4:8",
            "--surge",
            "SPREKEN_B1:1.6:4:8",
            "--surge",
            "SPREKEN_B1:1.6:40:44",
        ],
        d,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--surge #1: unknown exam \"NOPE\""), "{err}");
    assert!(
        err.contains("--surge #3: week 40 is past the horizon"),
        "{err}"
    );
    assert!(!err.contains("--surge #2"), "{err}");
    assert!(!err.contains("shocks["), "{err}");
}

/// `--out` and `--out-scenario` are written both or neither: the same file
/// not yet there under two spellings is refused (it was taken, and the
/// scenario overwrote the re-plan), and an `--out-scenario` that cannot be
/// written leaves `--out` as it was (it used to be replaced already).
#[test]
fn the_two_outputs_are_written_both_or_neither() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    generate_and_solve(d, 6);
    let re = |out: &str, out_scenario: &str| {
        examcap(
            &[
                "reschedule",
                "--plan",
                "plan.json",
                "--scenario",
                "sc.json",
                "--surge",
                "SPREKEN_B1:1.6:2:4",
                "--freeze",
                "1",
                "--out",
                out,
                "--out-scenario",
                out_scenario,
            ],
            d,
        )
    };
    let o = re("new.json", "./new.json");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("are both"), "{err}");
    assert!(!d.join("new.json").exists());

    std::fs::write(d.join("old.json"), "ORIG").unwrap();
    let listing = || {
        let mut names: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = listing();
    // /proc takes no new files, whoever asks (root included).
    let o = re("old.json", "/proc/examcap-no-such-file.json");
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("/proc/examcap-no-such-file.json: cannot write"),
        "{err}"
    );
    let kept = std::fs::read(d.join("old.json")).unwrap();
    assert!(
        kept == b"ORIG",
        "old.json was replaced ({} bytes)",
        kept.len()
    );
    // No temporary file is left behind either.
    assert_eq!(listing(), before);
    // Both written when both can be.
    ok(&re("old.json", "shocked.json"));
    let replan = read_plan(&d.join("old.json"));
    let shocked =
        examcap_solver::parse_scenario(&std::fs::read(d.join("shocked.json")).unwrap()).unwrap();
    assert_eq!(replan.scenario.content_hash, shocked.content_hash());
}

/// `--plan` offline takes any file name, UTF-8 or not (it was refused by
/// the argument parser, naming no argument).
#[test]
fn a_plan_file_name_need_not_be_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    generate_and_solve(d, 4);
    let odd = std::ffi::OsStr::from_bytes(b"plan-\xff.json");
    std::fs::copy(d.join("plan.json"), d.join(odd)).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_examcap"))
        .arg("reschedule")
        .arg("--plan")
        .arg(odd)
        .args(["--scenario", "sc.json", "--surge", "SPREKEN_B1:1.6:1:2"])
        .current_dir(d)
        .output()
        .expect("examcap runs");
    let out = ok(&o);
    assert!(out.contains("Re-plan against plan-\u{fffd}.json"), "{out}");
}
