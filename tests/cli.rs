//! The `examcap` binary end to end: exit codes, stderr and stdout contracts.
//! Only tiny scenarios are solved here; `demo` (the full national scenario)
//! is exercised by hand.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

fn examcap() -> Command {
    Command::new(env!("CARGO_BIN_EXE_examcap"))
}

fn run(args: &[&str]) -> Output {
    examcap().args(args).output().expect("examcap runs")
}

fn run_stdin(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = examcap()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("examcap starts");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(stdin)
        .expect("stdin takes the document");
    child.wait_with_output().expect("examcap finishes")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn assert_exit(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
    assert!(!stderr(o).contains("panicked"), "{}", stderr(o));
}

/// 1 exam, 1 location, 1 region, 3 weeks: capacity 10 a week plus 2 extra,
/// demand 8, 12, 10 with a 1-week target (shared with the other suites).
fn tiny() -> Value {
    serde_json::from_str(include_str!("fixtures/tiny.json")).expect("fixture is JSON")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("test file written");
    p
}

fn write_json(dir: &Path, name: &str, v: &Value) -> PathBuf {
    write(dir, name, v.to_string().as_bytes())
}

fn arg(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

#[test]
fn validate_accepts_a_small_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_json(dir.path(), "tiny.json", &tiny());
    let o = run(&["validate", arg(&f)]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "{out}");
    for needle in [
        "\"tiny\"",
        "3 weeks",
        "1 exam,",
        "1 location,",
        "1 region,",
        "1 demand row",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in {out}");
    }
}

/// A name is free text: escape sequences in it must not reach the terminal.
#[test]
fn names_with_control_characters_are_printed_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let mut v = tiny();
    v["name"] = json!("evil\u{1b}[2J\u{202e}name");
    v["locations"][0]["name"] = json!("loc\u{7}\r");
    let f = write_json(dir.path(), "tiny.json", &v);
    let o = run(&["validate", arg(&f)]);
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains(r#""evil\u{1b}[2J\u{202e}name""#),
        "{}",
        stdout(&o)
    );
    let o = run(&[
        "solve",
        arg(&f),
        "--quiet",
        "--out",
        arg(&dir.path().join("p.json")),
    ]);
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains(r"examcap plan: evil\u{1b}[2J\u{202e}name"),
        "{}",
        stdout(&o)
    );
    let o = run(&[
        "calendar",
        arg(&dir.path().join("p.json")),
        "--scenario",
        arg(&f),
    ]);
    assert_exit(&o, 0);
    assert!(stdout(&o).contains(r"loc\u{7}\u{d}"), "{}", stdout(&o));
    for o in [stdout(&o), stderr(&o)] {
        assert!(!o.contains(['\u{1b}', '\u{7}', '\u{202e}']), "{o:?}");
    }
}

#[test]
fn validate_names_the_field_of_an_unknown_exam() {
    let dir = tempfile::tempdir().unwrap();
    let mut v = tiny();
    v["demand"][0]["exam"] = json!("SPK2");
    let f = write_json(dir.path(), "bad.json", &v);
    let o = run(&["validate", arg(&f)]);
    assert_exit(&o, 2);
    let err = stderr(&o);
    let first = err.lines().next().unwrap_or_default();
    assert!(first.starts_with("demand[0].exam: "), "{err}");
    assert!(first.contains("SPK2"), "{err}");
    assert!(stdout(&o).is_empty());
}

#[test]
fn validate_reports_every_error_in_document_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut v = tiny();
    v["demand"][0]["exam"] = json!("SPK2");
    v["demand"][0]["weekly"] = json!([8, -2, 10]);
    v["locations"][0]["resources"][0]["weekly_minutes"] = json!(-1);
    let f = write_json(dir.path(), "bad.json", &v);
    let o = run(&["validate", arg(&f)]);
    assert_exit(&o, 2);
    let err = stderr(&o);
    let paths: Vec<&str> = err
        .lines()
        .filter_map(|l| l.split_once(": ").map(|(p, _)| p))
        .filter(|p| !p.starts_with("examcap"))
        .collect();
    assert!(paths.len() >= 2, "{err}");
    assert!(
        paths.contains(&"locations[0].resources[0].weekly_minutes"),
        "{err}"
    );
}

#[test]
fn garbage_never_panics_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let valid = tiny().to_string();
    let with_seat_minutes = |literal: &str| {
        let doc = valid.replace(
            "\"seat_minutes\":45",
            &format!("\"seat_minutes\":{literal}"),
        );
        assert!(doc.contains(literal), "{doc}");
        doc
    };
    let huge = {
        // 50 MB of whitespace: rejected by size without being read whole.
        let p = dir.path().join("huge.json");
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(50 * 1024 * 1024).unwrap();
        p
    };
    let cases: Vec<(&str, PathBuf, Option<&str>)> = vec![
        (
            "not JSON",
            write(dir.path(), "a.json", b"this is not json"),
            Some("document: not valid JSON"),
        ),
        (
            "truncated",
            write(dir.path(), "b.json", &valid.as_bytes()[..valid.len() / 2]),
            Some("document: not valid JSON"),
        ),
        (
            "binary",
            write(dir.path(), "c.json", &[0xff, 0xfe, 0x00, 0x7b, 0x22]),
            None,
        ),
        ("empty", write(dir.path(), "d.json", b""), None),
        (
            "50 MB",
            huge,
            Some("document: larger than the 16 MiB limit"),
        ),
        (
            "NaN",
            write(dir.path(), "e.json", with_seat_minutes("NaN").as_bytes()),
            None,
        ),
        (
            "1e400",
            write(dir.path(), "f.json", with_seat_minutes("1e400").as_bytes()),
            None,
        ),
        (
            "string horizon",
            write_json(dir.path(), "g.json", &{
                let mut v = tiny();
                v["horizon_weeks"] = json!("3");
                v
            }),
            Some("horizon_weeks: "),
        ),
        (
            "fractional horizon",
            write_json(dir.path(), "h.json", &{
                let mut v = tiny();
                v["horizon_weeks"] = json!(3.0);
                v
            }),
            Some("horizon_weeks: "),
        ),
        (
            "array at the root",
            write(dir.path(), "i.json", b"[1, 2, 3]"),
            None,
        ),
        (
            "a directory",
            dir.path().to_path_buf(),
            Some(": cannot read: "),
        ),
        (
            "a missing file",
            dir.path().join("missing.json"),
            Some("missing.json: cannot read: "),
        ),
    ];
    for (what, file, needle) in cases {
        for cmd in ["validate", "solve"] {
            let o = run(&[cmd, arg(&file)]);
            assert_eq!(o.status.code(), Some(2), "{cmd} {what}: {}", stderr(&o));
            let err = stderr(&o);
            assert!(!err.trim().is_empty(), "{cmd} {what}: empty stderr");
            assert!(!err.contains("panicked"), "{cmd} {what}: {err}");
            if let Some(n) = needle {
                assert!(err.contains(n), "{cmd} {what}: {n:?} not in {err}");
            }
        }
    }
}

#[test]
fn validate_reads_stdin() {
    let o = run_stdin(&["validate", "-"], tiny().to_string().as_bytes());
    assert_exit(&o, 0);
    assert!(stdout(&o).starts_with("stdin: valid"), "{}", stdout(&o));
}

#[test]
fn solve_json_on_a_tiny_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_json(dir.path(), "tiny.json", &tiny());
    let o = run(&["solve", arg(&f), "--json"]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    let v: Value = serde_json::from_str(&out).expect("stdout is one JSON object");
    for key in [
        "status",
        "stage1_violation",
        "stage2_cost",
        "rounded",
        "waits",
        "seconds",
        "plan_fingerprint",
        "scenario_hash",
        "recommendations",
    ] {
        assert!(v.get(key).is_some(), "no {key:?} in {out}");
    }
    assert_eq!(v["status"], "optimal");
    assert!(v["rounded"]["violation"].is_number());
    assert!(v["rounded"]["cost"].is_number());
    assert!(v["seconds"]["total"].is_number());
    let waits = v["waits"].as_array().expect("waits is a list");
    assert_eq!(waits.len(), 1);
    assert_eq!(waits[0]["exam"], "SPK");
    assert!(v["recommendations"]
        .as_array()
        .is_some_and(|r| r.len() <= 10));
    // Progress went to stderr, line by line (stderr is not a terminal here).
    assert!(
        stderr(&o).contains("examcap: stage1 1/1 blocks"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn solve_prints_a_human_summary() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_json(dir.path(), "tiny.json", &tiny());
    let o = run(&["solve", arg(&f), "--quiet", "--session-minutes", "90"]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    for needle in [
        "examcap plan: tiny",
        "status       optimal",
        "Predicted waits per exam",
        "SPK",
        "one extra session of 90 min",
        "Stage times",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in\n{out}");
    }
    assert!(stderr(&o).is_empty(), "--quiet: {}", stderr(&o));
}

#[test]
fn solve_out_writes_the_plan_it_summarises() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_json(dir.path(), "tiny.json", &tiny());
    let plan_path = dir.path().join("plan.json");
    let o = run(&["solve", arg(&f), "--json", "--out", arg(&plan_path)]);
    assert_exit(&o, 0);
    let summary: Value = serde_json::from_str(&stdout(&o)).expect("JSON summary");
    let plan: Value =
        serde_json::from_slice(&std::fs::read(&plan_path).expect("plan written")).unwrap();
    assert_eq!(plan["format"], "examcap/plan@1");
    assert_eq!(plan["stage1_violation"], summary["stage1_violation"]);
    assert_eq!(plan["stage2_cost"], summary["stage2_cost"]);
    assert_eq!(plan["scenario"]["content_hash"], summary["scenario_hash"]);
    assert!(plan["allocation"].as_array().is_some_and(|a| !a.is_empty()));
    // The same scenario and options give the same plan.
    let again = run(&["solve", arg(&f), "--json", "--quiet"]);
    assert_exit(&again, 0);
    let again: Value = serde_json::from_str(&stdout(&again)).expect("JSON summary");
    assert_eq!(again["plan_fingerprint"], summary["plan_fingerprint"]);
    // Atomic write: no temporary file left next to it.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn solve_out_into_a_missing_directory_fails_before_solving() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_json(dir.path(), "tiny.json", &tiny());
    let out = dir.path().join("no/such/dir/plan.json");
    let o = run(&["solve", arg(&f), "--out", arg(&out)]);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("stage1"), "{}", stderr(&o));
}

#[test]
fn solve_rejects_an_invalid_scenario_with_its_paths() {
    let dir = tempfile::tempdir().unwrap();
    let mut v = tiny();
    v["regions"][0]["options"][0]["location"] = json!("UTR");
    let f = write_json(dir.path(), "bad.json", &v);
    let o = run(&["solve", arg(&f), "--json"]);
    assert_exit(&o, 2);
    assert!(
        stderr(&o).starts_with("regions[0].options[0].location: "),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty());
}

#[test]
fn time_limit_must_be_a_positive_number() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_json(dir.path(), "tiny.json", &tiny());
    for bad in ["-1", "0", "nan", "inf", "1e400", "soon"] {
        let o = run(&["solve", arg(&f), "--time-limit", bad]);
        assert_exit(&o, 2);
        assert!(stderr(&o).contains("--time-limit"), "{bad}: {}", stderr(&o));
        assert!(stdout(&o).is_empty());
    }
}

#[test]
fn time_limit_in_stage1_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_json(dir.path(), "tiny.json", &tiny());
    // A nanosecond is over before the model is built.
    let o = run(&["solve", arg(&f), "--time-limit", "1e-9", "--json"]);
    assert_exit(&o, 3);
    let err = stderr(&o);
    assert!(
        err.contains("examcap: time limit reached in stage1"),
        "{err}"
    );
    assert!(stdout(&o).is_empty());
}

#[test]
fn generate_is_deterministic_and_valid() {
    let args = ["scenario", "generate", "--seed", "3", "--weeks", "4"];
    let a = run(&args);
    assert_exit(&a, 0);
    let b = run(&args);
    assert_exit(&b, 0);
    assert!(!a.stdout.is_empty());
    assert_eq!(a.stdout, b.stdout);
    let v: Value = serde_json::from_slice(&a.stdout).expect("JSON scenario");
    assert_eq!(v["horizon_weeks"], 4);
    let o = run_stdin(&["validate", "-"], &a.stdout);
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("4 weeks"), "{}", stdout(&o));

    let c = run(&["scenario", "generate", "--seed", "4", "--weeks", "4"]);
    assert_exit(&c, 0);
    assert_ne!(a.stdout, c.stdout, "the seed changes the scenario");
}

#[test]
fn generate_options_reach_the_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("surge.json");
    let o = run(&[
        "scenario",
        "generate",
        "--seed",
        "3",
        "--weeks",
        "6",
        "--start-week",
        "2026-W14",
        "--regions-split",
        "2",
        "--surge",
        "SPREKEN_B1:1.6:1:3",
        "--surge",
        "KNM:0.5:0:0",
        "--out",
        arg(&out),
    ]);
    assert_exit(&o, 0);
    assert!(stdout(&o).is_empty());
    let v: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(v["start_week"], "2026-W14");
    assert_eq!(v["horizon_weeks"], 6);
    let regions = v["regions"].as_array().unwrap();
    assert!(regions.iter().all(|r| {
        let id = r["id"].as_str().unwrap_or_default();
        id.ends_with(".1") || id.ends_with(".2")
    }));
    let o = run(&["validate", arg(&out)]);
    assert_exit(&o, 0);
}

#[test]
fn generate_rejects_bad_options() {
    let bad: &[&[&str]] = &[
        &["--seed", "1", "--surge", "X:1"],
        &["--seed", "1", "--surge", "NOPE:1.5:1:2"],
        &["--seed", "1", "--surge", "SPREKEN_B1:1.5:5:2"],
        &[
            "--seed",
            "1",
            "--weeks",
            "4",
            "--surge",
            "SPREKEN_B1:1.5:9:12",
        ],
        &["--seed", "1", "--weeks", "0"],
        &["--seed", "1", "--weeks", "521"],
        &["--seed", "1", "--regions-split", "0"],
        &["--seed", "1", "--regions-split", "65"],
        &["--seed", "1", "--start-week", "2027-W60"],
        &["--seed", "-1"],
        &["--weeks", "4"],
    ];
    for args in bad {
        let mut full = vec!["scenario", "generate"];
        full.extend_from_slice(args);
        let o = run(&full);
        assert_exit(&o, 2);
        assert!(stdout(&o).is_empty(), "{args:?}");
        assert!(!stderr(&o).trim().is_empty(), "{args:?}");
    }
    // A year without week 53 is said as such, as `validate` says it.
    let o = run(&[
        "scenario",
        "generate",
        "--seed",
        "1",
        "--start-week",
        "2027-W53",
    ]);
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains("--start-week") && stderr(&o).contains("2027 has 52 ISO weeks"),
        "{}",
        stderr(&o)
    );
    let o = run(&["scenario", "generate", "--seed", "1", "--surge", "X:1"]);
    assert!(
        stderr(&o).contains("EXAM:MULTIPLIER:FROM_WEEK:TO_WEEK"),
        "{}",
        stderr(&o)
    );
    // A negative number is a bad value of its flag, not an unknown argument.
    for (args, says) in [
        (&["--seed", "-1"][..], "must be a whole number >= 0"),
        (&["--seed", "1", "--weeks", "-1"], "-1 is not in 1..=520"),
        (
            &["--seed", "1", "--regions-split", "-2"],
            "-2 is not in 1..=64",
        ),
    ] {
        let mut full = vec!["scenario", "generate"];
        full.extend_from_slice(args);
        let err = stderr(&run(&full));
        assert!(err.contains("invalid value '-"), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // A whole number too large for its flag says so (found by an independent
    // review: "must be a whole number >= 0, got \"99999999999999999999\"").
    let o = run(&["scenario", "generate", "--seed", "99999999999999999999"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("must be at most 18446744073709551615, got 99999999999999999999"),
        "{err}"
    );
}

#[test]
fn help_and_version() {
    let o = run(&["--help"]);
    assert_exit(&o, 0);
    for cmd in ["validate", "solve", "scenario", "demo"] {
        assert!(stdout(&o).contains(cmd), "{}", stdout(&o));
    }
    let o = run(&["--version"]);
    assert_exit(&o, 0);
    assert!(stdout(&o).starts_with("examcap "));
    let o = run(&[]);
    assert_exit(&o, 2);
}

/// Solves the tiny scenario (2026-W14: Good Friday, open, in week 0;
/// Easter Monday in week 1) into `plan.json`; returns (scenario, plan)
/// paths.
fn tiny_plan(dir: &Path) -> (PathBuf, PathBuf) {
    let f = write_json(dir, "tiny.json", &tiny());
    let plan_path = dir.join("plan.json");
    let o = run(&["solve", arg(&f), "--quiet", "--out", arg(&plan_path)]);
    assert_exit(&o, 0);
    (f, plan_path)
}

#[test]
fn calendar_sessions_add_up_and_skip_easter() {
    let dir = tempfile::tempdir().unwrap();
    let (sc, plan_path) = tiny_plan(dir.path());
    let plan: Value =
        serde_json::from_slice(&std::fs::read(&plan_path).expect("plan written")).unwrap();
    let allocated: u64 = plan["allocation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["candidates"].as_u64().unwrap())
        .sum();
    let o = run(&[
        "calendar",
        arg(&plan_path),
        "--scenario",
        arg(&sc),
        "--json",
    ]);
    assert_exit(&o, 0);
    let cal: Value = serde_json::from_str(&stdout(&o)).expect("JSON calendar");
    let sessions = cal["sessions"].as_array().unwrap();
    assert!(!sessions.is_empty());
    assert!(cal["unplaced"].as_array().unwrap().is_empty());
    let total: u64 = sessions
        .iter()
        .map(|s| s["candidates"].as_u64().unwrap())
        .sum();
    assert_eq!(total, allocated);
    for s in sessions {
        let date = s["date"].as_str().unwrap();
        assert!(!["2026-04-05", "2026-04-06"].contains(&date), "{s}");
        assert!(["morning", "afternoon"].contains(&s["block"].as_str().unwrap()));
        let minutes = s["seat_minutes"].as_f64().unwrap();
        assert_eq!(minutes, 45.0 * s["candidates"].as_f64().unwrap());
    }
    // The tiny scenario keeps all of week 1's capacity with Easter Monday
    // closed: said in the JSON and on stderr, and only for that week.
    let crowded = cal["crowded"].as_array().unwrap();
    assert_eq!(crowded.len(), 1, "{crowded:?}");
    assert_eq!(crowded[0]["week"], 1);
    assert_eq!(crowded[0]["closed"][0]["date"], "2026-04-06");
    assert!(
        stderr(&o).contains("AMS week 1: closed on 2026-04-06 Tweede Paasdag"),
        "{}",
        stderr(&o)
    );
    // The table.
    let o = run(&["calendar", arg(&plan_path), "--scenario", arg(&sc)]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(out.starts_with("AMS Amsterdam\n"), "{out}");
    assert!(out.contains("2026-03-30  Mon  morning"), "{out}");
    assert!(!out.contains("2026-04-06"), "{out}");
}

/// UTR has only extra minutes, for Saturdays, and week 1's Saturday is
/// King's Day: its candidates that week are not placed, and both warnings
/// say why (the Saturday one said they crowded weekday blocks UTR does not
/// have).
#[test]
fn calendar_says_why_a_saturday_only_location_has_no_day() {
    let dir = tempfile::tempdir().unwrap();
    let sc = "tests/fixtures/saturday_only.json";
    let plan_path = dir.path().join("plan.json");
    assert_exit(&run(&["solve", sc, "--out", arg(&plan_path), "-q"]), 0);
    let o = run(&[
        "calendar",
        arg(&plan_path),
        "--scenario",
        sc,
        "--location",
        "UTR",
    ]);
    assert_exit(&o, 0);
    let err = stderr(&o);
    assert!(
        err.contains(
            "at UTR in week 1 not placed: they are what the extra minutes bought that week \
             seat, on Saturday 2031-04-26, which is Koningsdag"
        ),
        "{err}"
    );
    assert!(
        err.contains("UTR week 1: the plan buys extra booth minutes")
            && err.contains("are not placed (the weekdays have only the regular minutes)"),
        "{err}"
    );
    let out = stdout(&o);
    assert!(
        out.contains("2031-04-19  Sat") && !out.contains("2031-04-2"),
        "{out}"
    );
}

#[test]
fn calendar_filters_by_location_and_weeks() {
    let dir = tempfile::tempdir().unwrap();
    let (sc, plan_path) = tiny_plan(dir.path());
    let o = run(&[
        "calendar",
        arg(&plan_path),
        "--scenario",
        arg(&sc),
        "--location",
        "AMS",
        "--weeks",
        "1-1",
        "--json",
    ]);
    assert_exit(&o, 0);
    let cal: Value = serde_json::from_str(&stdout(&o)).expect("JSON calendar");
    let sessions = cal["sessions"].as_array().unwrap();
    assert!(!sessions.is_empty());
    for s in sessions {
        let date = s["date"].as_str().unwrap();
        // Week 1 is 6-11 April; Easter Monday is closed.
        assert!(("2026-04-07"..="2026-04-11").contains(&date), "{s}");
        assert_eq!(s["location"], "AMS");
    }
}

#[test]
fn calendar_rejects_bad_options() {
    let dir = tempfile::tempdir().unwrap();
    let (sc, plan_path) = tiny_plan(dir.path());
    let cal = |extra: &[&str]| {
        let mut args = vec!["calendar", arg(&plan_path), "--scenario", arg(&sc)];
        args.extend_from_slice(extra);
        run(&args)
    };
    for weeks in ["3-1", "x", "1-", "0-9", "-3", "-1-2"] {
        let o = cal(&["--weeks", weeks]);
        assert_exit(&o, 2);
        assert!(stderr(&o).contains("--weeks"), "{weeks}: {}", stderr(&o));
        let says = if weeks == "0-9" {
            "past the horizon"
        } else {
            "expected week indexes A-B"
        };
        assert!(stderr(&o).contains(says), "{weeks}: {}", stderr(&o));
        assert!(stdout(&o).is_empty());
    }
    // Not both from stdin, which holds one document.
    let o = run_stdin(&["calendar", "-", "--scenario", "-"], b"{}");
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains("PLAN and --scenario are both `-`"),
        "{}",
        stderr(&o)
    );
    // A plan of another scenario with the same name and start week (an
    // edited copy): the message names both content hashes.
    let mut other: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sc).unwrap()).unwrap();
    other["demand"][0]["weekly"][0] = serde_json::json!(1);
    let other_path = dir.path().join("other.json");
    std::fs::write(&other_path, serde_json::to_vec(&other).unwrap()).unwrap();
    let o = run(&["calendar", arg(&plan_path), "--scenario", arg(&other_path)]);
    assert_exit(&o, 2);
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&plan_path).unwrap()).unwrap();
    let hash = plan["scenario"]["content_hash"].as_str().unwrap();
    assert!(
        stderr(&o).contains(&hash[..12]) && stderr(&o).contains("other.json"),
        "{}",
        stderr(&o)
    );
    let o = cal(&["--location", "RTM"]);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("RTM"), "{}", stderr(&o));
    // A plan of another scenario.
    let mut other = tiny();
    other["demand"][0]["weekly"] = json!([1, 1, 1]);
    let other = write_json(dir.path(), "other.json", &other);
    let o = run(&["calendar", arg(&plan_path), "--scenario", arg(&other)]);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("not"), "{}", stderr(&o));
    // Tampered rows: named, never dated past the horizon or dropped.
    let good: Value = serde_json::from_slice(&std::fs::read(&plan_path).unwrap()).unwrap();
    for (field, value, path) in [
        ("location", json!("NOWHERE"), "allocation[0].location"),
        ("week", json!(3), "allocation[0].week"),
        ("candidates", json!(u64::MAX), "allocation[0].candidates"),
    ] {
        let mut bad = good.clone();
        bad["allocation"][0][field] = value;
        let bad = write_json(dir.path(), "bad-plan.json", &bad);
        let o = run(&["calendar", arg(&bad), "--scenario", arg(&sc)]);
        assert_exit(&o, 2);
        assert!(stderr(&o).contains(path), "{field}: {}", stderr(&o));
        assert!(stdout(&o).is_empty());
    }
    // Rows that fit one by one but not together, and an edited header:
    // refused like `reschedule --plan` refuses them, never dated.
    let with_week = |week: u64, n: u64| -> Value {
        let mut plan = good.clone();
        let row = plan["allocation"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|r| r["week"] == week)
            .expect("a row that week");
        row["candidates"] = json!(n);
        plan
    };
    let mut header_start = good.clone();
    header_start["scenario"]["start_week"] = json!("2030-W01");
    let mut header_weeks = good.clone();
    header_weeks["scenario"]["horizon_weeks"] = json!(2);
    for (bad, says) in [
        // 12 × 45 = 540 booth minutes fit the row check, but only 8
        // have registered: the whole-plan check of `reschedule --plan`.
        (with_week(0, 12), "only 8 registered"),
        (header_start, "scenario.start_week"),
        (header_weeks, "scenario.horizon_weeks"),
    ] {
        let bad = write_json(dir.path(), "bad-plan.json", &bad);
        let o = run(&["calendar", arg(&bad), "--scenario", arg(&sc)]);
        assert_exit(&o, 2);
        assert!(stderr(&o).contains(says), "{says}: {}", stderr(&o));
        assert!(stdout(&o).is_empty());
    }
    // Another document format.
    let mut other_format = good.clone();
    other_format["format"] = json!("examcap/plan@9");
    let other_format = write_json(dir.path(), "plan9.json", &other_format);
    let o = run(&["calendar", arg(&other_format), "--scenario", arg(&sc)]);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("plan@9"), "{}", stderr(&o));
    // The scenario given where the plan goes: named by its format, not by
    // the first plan field it lacks.
    let o = run(&["calendar", arg(&sc), "--scenario", arg(&sc)]);
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains("format: expected \"examcap/plan@1\", got \"examcap/scenario@1\"")
            && stderr(&o).contains("a scenario"),
        "{}",
        stderr(&o)
    );
}

/// A store another process holds (a running server) is said as such by
/// the demo, `serve`, `audit` and `backlog export`, not as a reset
/// connection (demo) or a raw lock error, and is the operator's to fix:
/// exit 2 from each (demo and serve exited 1, audit and backlog 2).
#[test]
fn a_store_in_use_is_named_by_every_command_that_opens_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let _held = examcap::store::SledStore::open(&store).expect("store opens");
    let o = run(&["demo", "--data-dir", arg(dir.path()), "--quiet"]);
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains("in use by another process"),
        "{}",
        stderr(&o)
    );
    for args in [
        &["backlog", "export", "--data-dir", arg(&store)][..],
        &["audit", "--data-dir", arg(&store)],
    ] {
        let o = run(args);
        assert_exit(&o, 2);
        assert!(
            stderr(&o).contains("in use by another process"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
    let o = examcap()
        .args(["serve", "--allow-unauthenticated"])
        .env("EXAMCAP_DATA_DIR", &store)
        .env("EXAMCAP_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains("in use by another process"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn backlog_export_needs_an_existing_store_and_creates_none() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-store");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for d in [&missing, &empty] {
        let o = run(&["backlog", "export", "--data-dir", arg(d)]);
        assert_exit(&o, 2);
        assert!(
            stderr(&o).contains("no examcap store there"),
            "{}",
            stderr(&o)
        );
        assert!(stdout(&o).is_empty());
    }
    assert!(!missing.exists());
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
    // A server that is not there is not the caller's mistake (exit 1, as
    // for report and reschedule); an address without a scheme is (exit 2).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let o = run(&["backlog", "export", "--server", &url]);
    assert_exit(&o, 1);
    let o = run(&["backlog", "export", "--server", "127.0.0.1:9"]);
    assert_exit(&o, 2);
}

/// `backlog export --out` into the data directory it reads is refused
/// before anything is read or written: `--out STORE/db` replaced sled's own
/// file, and the store no longer opened.
#[test]
fn backlog_export_never_writes_into_the_store_it_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    drop(examcap::store::SledStore::open(&store).expect("store opens"));
    let files = || {
        let mut all: Vec<(std::ffi::OsString, Vec<u8>)> = std::fs::read_dir(&store)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().unwrap().is_file())
            .map(|e| (e.file_name(), std::fs::read(e.path()).unwrap()))
            .collect();
        all.sort();
        all
    };
    let before = files();
    assert!(before.iter().any(|(n, _)| n == "db"), "{before:?}");
    let through_link = dir.path().join("link");
    std::os::unix::fs::symlink(&store, &through_link).unwrap();
    let export = |out: &Path| {
        run(&[
            "backlog",
            "export",
            "--data-dir",
            arg(&store),
            "--out",
            arg(out),
        ])
    };
    for out in [
        store.join("db"),
        store.join("new.json"),
        through_link.join("db"),
    ] {
        let o = export(&out);
        assert_exit(&o, 2);
        assert!(
            stderr(&o).contains("inside the data directory"),
            "{}",
            stderr(&o)
        );
    }
    assert_eq!(files(), before);
    // Elsewhere it writes the (empty) backlog.
    let out = dir.path().join("backlog.json");
    assert_exit(&export(&out), 0);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "[]\n");
    let o = run(&["audit", "--data-dir", arg(&store)]);
    assert_exit(&o, 0);
}

/// Damaged database files are said as such, with nothing of sled's own
/// panic on stderr (sled 0.34 panics on some cuts; the store catches it).
#[test]
fn a_damaged_store_is_named_without_a_panic_message() {
    let dir = tempfile::tempdir().unwrap();
    {
        use examcap::store::Store;
        let s = examcap::store::SledStore::open(dir.path()).expect("store opens");
        // Three opens of small and large records, as the store's own test
        // of damaged files: small ones live in the log, large in blobs.
        drop(s);
        for round in 0..3 {
            let s = examcap::store::SledStore::open(dir.path()).expect("store opens");
            for i in round * 60..round * 60 + 60 {
                let rec = examcap::store::ScenarioRecord {
                    id: format!("s{i}"),
                    name: "n".into(),
                    start_week: "2026-W14".into(),
                    horizon_weeks: 3,
                    created_unix: i,
                    drill: None,
                    scenario_json: "x".repeat(if i % 6 == 0 { 200_000 } else { 2_000 }),
                };
                s.put_scenario(&rec, &[]).unwrap();
                s.set_published(&format!("p{i}"), &[]).unwrap();
            }
        }
    }
    let db = dir.path().join("db");
    let mut cuts_seen = 0;
    let len = std::fs::metadata(&db).unwrap().len();
    for cut in [64u64, 512, 1000, 4096, 65_536, len / 4, len / 2, len - 1] {
        let copy = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                std::fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
            }
        }
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(copy.path().join("db"))
            .unwrap();
        f.set_len(cut).unwrap();
        drop(f);
        for args in [
            &["audit", "--data-dir", arg(copy.path())][..],
            &["backlog", "export", "--data-dir", arg(copy.path())][..],
        ] {
            let o = run(args);
            // assert_exit also refuses any "panicked" on stderr.
            if o.status.code() != Some(0) {
                // Not the caller's mistake: exit 1, as for a store in use.
                assert_exit(&o, 1);
                assert!(stderr(&o).contains("damaged"), "{args:?}: {}", stderr(&o));
                cuts_seen += 1;
            } else {
                assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
            }
        }
    }
    assert!(cuts_seen > 0, "no cut damaged the store");
}

/// `examcap scenario generate` of a 2-week scenario to `out`.
fn generate_to(out: &Path) -> Output {
    run(&[
        "scenario",
        "generate",
        "--seed",
        "1",
        "--weeks",
        "2",
        "--out",
        arg(out),
    ])
}

#[test]
fn out_never_replaces_an_input_a_link_or_a_special_file() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sc = write_json(d, "sc.json", &tiny());
    let before = std::fs::read(&sc).unwrap();
    // The input itself, also through another spelling of its path.
    let other_spelling = d.join(".").join("sc.json");
    for out in [&sc, &other_spelling] {
        let o = run(&["solve", "-q", arg(&sc), "--out", arg(out)]);
        assert_exit(&o, 2);
        assert!(stderr(&o).contains("also an input"), "{}", stderr(&o));
    }
    assert_eq!(std::fs::read(&sc).unwrap(), before);
    // The same for the other commands that take --out.
    let (tsc, plan) = tiny_plan(d);
    let plan_before = std::fs::read(&plan).unwrap();
    for args in [
        vec![
            "report",
            arg(&plan),
            "--scenario",
            arg(&tsc),
            "--out",
            arg(&plan),
        ],
        vec![
            "reschedule",
            "--plan",
            arg(&plan),
            "--scenario",
            arg(&tsc),
            "--surge",
            "SPK:1.5:1:2",
            "--freeze",
            "1",
            "--out",
            arg(&plan),
        ],
    ] {
        let o = run(&args);
        assert_exit(&o, 2);
        assert!(
            stderr(&o).contains("also an input"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
    assert_eq!(std::fs::read(&plan).unwrap(), plan_before);
    // A symlink keeps pointing at its target, which gets the output and
    // keeps its permissions.
    let target = d.join("target.json");
    std::fs::write(&target, "old").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
    let link = d.join("link.json");
    std::os::unix::fs::symlink("target.json", &link).unwrap();
    let o = generate_to(&link);
    assert_exit(&o, 0);
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    let written: Value = serde_json::from_slice(&std::fs::read(&target).unwrap()).unwrap();
    assert_eq!(written["horizon_weeks"], 2);
    let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    // A FIFO is written to, not replaced by a file.
    let fifo = d.join("fifo");
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    let o = generate_to(&fifo);
    assert_exit(&o, 0);
    let through: Value = serde_json::from_slice(&reader.join().unwrap()).unwrap();
    assert_eq!(through["horizon_weeks"], 2);
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    // `-` is not a file name here.
    let o = run(&[
        "scenario", "generate", "--seed", "1", "--weeks", "2", "--out", "-",
    ]);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("--out -"), "{}", stderr(&o));
    assert!(!Path::new("-").exists());
}

/// A backlog already past its target at week 0 counts in no V (DESIGN's
/// rows start at week 0), so V* = 0 while those candidates are late: the
/// summary must not say "every target is met" next to a `late` column of
/// 30 (found by an independent review). Without that backlog it may.
#[test]
fn a_late_backlog_is_not_summed_up_as_every_target_met() {
    let dir = tempfile::tempdir().unwrap();
    let sc = json!({
        "format": "examcap/scenario@1", "name": "late", "start_week": "2027-W17",
        "horizon_weeks": 3,
        "exams": [{"id": "SPK", "name": "Spreken", "resource": "booth", "seat_minutes": 60,
                   "target_wait_weeks": 1}],
        "locations": [{"id": "AMS", "name": "Amsterdam", "resources": [{"kind": "booth",
            "weekly_minutes": 6000, "extra_weekly_minutes": 1200, "extra_cost_per_minute": 1.0}]}],
        "regions": [{"id": "A", "name": "A", "options": [{"location": "AMS", "travel_cost": 1.0}]}],
        "demand": [{"region": "A", "exam": "SPK", "weekly": [100, 110, 100]}],
        "backlog": [{"region": "A", "exam": "SPK", "registered_week": -2, "candidates": 30}]
    });
    let o = run(&[
        "solve",
        "-q",
        arg(&write_json(dir.path(), "late.json", &sc)),
    ]);
    assert_exit(&o, 0);
    let text = stdout(&o);
    assert!(!text.contains("every target is met"), "{text}");
    assert!(
        text.contains("V* = 0, yet 30 candidates are late"),
        "{text}"
    );

    let mut on_time = sc.clone();
    on_time["backlog"] = json!([]);
    let o = run(&[
        "solve",
        "-q",
        arg(&write_json(dir.path(), "ok.json", &on_time)),
    ]);
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("Waiting targets: every target is met"),
        "{}",
        stdout(&o)
    );
}
