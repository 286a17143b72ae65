//! `examcap report` end to end: the HTML is parsed and every promised chart
//! counted and inspected; Debian's chromium opens it headless and takes a
//! screenshot without console errors; `--server` renders a plan read from a
//! real in-process service. Scenarios are small (2 exams, 6 weeks): no
//! national solve here.

use std::io::Read as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use scraper::{ElementRef, Html, Selector};
use serde_json::Value;

mod common;

fn examcap() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_examcap"));
    c.env_remove("EXAMCAP_TOKEN");
    c
}

#[track_caller]
fn run_ok(args: &[&str]) -> Output {
    let o = examcap().args(args).output().expect("examcap runs");
    assert!(
        o.status.success(),
        "examcap {args:?}: {:?}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// 2 exams (one rated by a rater pool), 2 locations (one closed in week 2),
/// 2 regions, 6 weeks, a backlog; its name has markup in it.
fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/report.json")).expect("fixture is JSON")
}

/// The fixture with SPK registrations ×1.8 in weeks 1–3: a surge drill.
fn surge() -> Value {
    let mut s = fixture();
    s["name"] = "surge".into();
    for d in s["demand"].as_array_mut().unwrap() {
        if d["exam"] == "SPK" {
            for (t, v) in d["weekly"].as_array_mut().unwrap().iter_mut().enumerate() {
                if (1..=3).contains(&t) {
                    *v = (v.as_f64().unwrap() * 1.8).into();
                }
            }
        }
    }
    s
}

fn arg(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// Writes the scenario and solves it; returns (scenario file, plan file).
fn solved(dir: &Path, name: &str, sc: &Value) -> (PathBuf, PathBuf) {
    let scenario = dir.join(format!("{name}.json"));
    std::fs::write(&scenario, sc.to_string()).unwrap();
    let plan = dir.join(format!("{name}-plan.json"));
    run_ok(&["solve", arg(&scenario), "--out", arg(&plan), "--quiet"]);
    (scenario, plan)
}

/// Solves the fixture and its surge and reports the surge against the base
/// (`base-plan.json` against `surge-plan.json`); returns the HTML file.
fn compare_report(dir: &Path) -> PathBuf {
    let (scenario, plan) = solved(dir, "base", &fixture());
    let (surge_sc, surge_plan) = solved(dir, "surge", &surge());
    let out = dir.join("compare.html");
    run_ok(&[
        "report",
        arg(&plan),
        "--scenario",
        arg(&scenario),
        "--compare",
        arg(&surge_plan),
        "--compare-scenario",
        arg(&surge_sc),
        "--out",
        arg(&out),
    ]);
    out
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).expect("valid selector")
}

fn figures<'a>(doc: &'a Html, kind: &str) -> Vec<ElementRef<'a>> {
    doc.select(&sel(&format!("figure.chart[data-kind=\"{kind}\"]")))
        .collect()
}

fn texts(e: ElementRef) -> Vec<String> {
    e.select(&sel("text"))
        .map(|t| t.text().collect::<String>().trim().to_string())
        .collect()
}

/// Data series: polylines drawn 2 px wide with more than 2 points (axes are
/// 1 px; legend samples have 2 points). Returns their point counts.
fn series(e: ElementRef) -> Vec<usize> {
    e.select(&sel("polyline[stroke-width=\"2\"]"))
        .map(|p| {
            p.value()
                .attr("points")
                .unwrap_or("")
                .split_whitespace()
                .count()
        })
        .filter(|&n| n > 2)
        .collect()
}

#[track_caller]
fn one_svg_with_titles(f: ElementRef, titles: &[&str]) {
    assert_eq!(f.select(&sel("svg")).count(), 1, "{}", f.html());
    let t = texts(f);
    for want in titles {
        assert!(t.iter().any(|x| x == want), "no {want:?} in {t:?}");
    }
}

fn parse(path: &Path) -> Html {
    let text = std::fs::read_to_string(path).expect("report written");
    let doc = Html::parse_document(&text);
    assert!(doc.errors.is_empty(), "HTML parse errors: {:?}", doc.errors);
    doc
}

#[test]
fn the_report_has_one_svg_per_promised_chart() {
    let dir = tempfile::tempdir().unwrap();
    let (scenario, plan) = solved(dir.path(), "base", &fixture());
    let out = dir.path().join("report.html");
    let o = run_ok(&[
        "report",
        arg(&plan),
        "--scenario",
        arg(&scenario),
        "--out",
        arg(&out),
    ]);
    // Not a terminal: no progress, only the closing line.
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("wrote the report"), "{err}");
    assert!(!err.contains("chart 1/"), "{err}");
    let doc = parse(&out);

    // Self-contained: no script, nothing loaded, a policy that forbids both.
    assert_eq!(doc.select(&sel("script")).count(), 0);
    assert_eq!(doc.select(&sel("[src], link, img, iframe")).count(), 0);
    let csp = doc
        .select(&sel("meta[http-equiv=\"Content-Security-Policy\"]"))
        .next()
        .expect("a Content-Security-Policy");
    assert!(csp
        .value()
        .attr("content")
        .unwrap()
        .contains("default-src 'none'"));
    // Text from the scenario is escaped, never markup.
    assert_eq!(doc.select(&sel("small")).count(), 0);
    let h1: String = doc.select(&sel("h1")).next().unwrap().text().collect();
    assert!(h1.contains("report <small> & \"quoted\""), "{h1}");

    let weeks = 6;
    let flows = figures(&doc, "flow");
    assert_eq!(flows.len(), 2, "one flow chart per exam");
    for f in &flows {
        one_svg_with_titles(
            *f,
            &["week", "candidates", "registrations", "examined", "backlog"],
        );
        assert_eq!(series(*f), vec![weeks; 3], "{}", f.html());
    }
    let waits = figures(&doc, "wait");
    assert_eq!(waits.len(), 2, "one wait chart per exam");
    for f in &waits {
        one_svg_with_titles(
            *f,
            &[
                "registration week",
                "wait (weeks)",
                "mean wait",
                "longest wait",
            ],
        );
        assert!(texts(*f).iter().any(|t| t.starts_with("target (")));
        assert!(series(*f).len() >= 2, "{}", f.html());
    }
    let seats = figures(&doc, "seat-use");
    assert_eq!(seats.len(), 1);
    one_svg_with_titles(
        seats[0],
        &["week", "location", "AMS speaking_booth", "UTR pc"],
    );
    // A cell per (location, kind) and week, on top of the white background.
    let cells = |f: ElementRef| {
        f.select(&sel("rect[fill]"))
            .filter(|r| r.value().attr("fill") != Some("#FFFFFF"))
            .count()
    };
    // AMS is closed in week 2 (white): 4 rows × 6 weeks less 2 closed cells.
    assert_eq!(cells(seats[0]), 4 * weeks - 2, "{}", seats[0].html());
    let raters = figures(&doc, "rater-use");
    assert_eq!(raters.len(), 1);
    one_svg_with_titles(raters[0], &["week", "rater pool", "RATERS"]);
    assert_eq!(cells(raters[0]), weeks);
    assert!(figures(&doc, "compare-backlog").is_empty());

    // The recommendations table holds the plan's top ones, in order.
    let p: Value = serde_json::from_slice(&std::fs::read(&plan).unwrap()).unwrap();
    let recs = p["recommendations"].as_array().unwrap();
    assert!(!recs.is_empty());
    let rows: Vec<String> = doc
        .select(&sel("#recommendations tr"))
        .skip(1)
        .map(|r| r.select(&sel("td")).next().unwrap().text().collect())
        .collect();
    assert_eq!(rows.len(), recs.len().min(10));
    let c = &recs[0]["capacity"];
    assert_eq!(
        rows[0],
        format!(
            "{} {}",
            c["location"].as_str().unwrap(),
            c["kind"].as_str().unwrap()
        )
    );

    // A list the time limit cut says that places may be missing.
    assert!(!doc.html().contains("The time limit stopped the search"));
    let mut cut = p.clone();
    cut["recommendations_cut"] = true.into();
    let cut_plan = dir.path().join("cut-plan.json");
    std::fs::write(&cut_plan, cut.to_string()).unwrap();
    let cut_out = dir.path().join("cut.html");
    run_ok(&[
        "report",
        arg(&cut_plan),
        "--scenario",
        arg(&scenario),
        "--out",
        arg(&cut_out),
    ]);
    let html = std::fs::read_to_string(&cut_out).unwrap();
    assert!(html.contains("The time limit stopped the search"), "{html}");
}

#[test]
fn progress_shows_on_a_terminal_only() {
    let dir = tempfile::tempdir().unwrap();
    let (scenario, plan) = solved(dir.path(), "base", &fixture());
    let out = dir.path().join("report.html");
    let cmd = format!(
        "{} report {} --scenario {} --out {}",
        env!("CARGO_BIN_EXE_examcap"),
        arg(&plan),
        arg(&scenario),
        arg(&out)
    );
    // util-linux `script` runs the command on a pseudo-terminal (Debian
    // ships it in bsdutils, an essential package).
    let on_tty = |extra: &str| {
        let o = Command::new("script")
            .args(["-qec", &format!("{cmd}{extra}"), "/dev/null"])
            .env_remove("EXAMCAP_TOKEN")
            .stdin(Stdio::null())
            .output()
            .expect("util-linux `script` runs");
        assert!(o.status.success(), "{o:?}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let shown = on_tty("");
    // 2 exams × 2 charts, seats, raters: 6 charts, one line rewritten in place.
    assert!(shown.contains("report: chart 1/6"), "{shown:?}");
    assert!(shown.contains("report: chart 6/6 ("), "{shown:?}");
    assert!(shown.contains("\x1b[K"), "{shown:?}");
    assert!(shown.contains("wrote the report"), "{shown:?}");
    let quiet = on_tty(" --quiet");
    assert!(!quiet.contains("report: chart"), "{quiet:?}");
    assert!(!quiet.contains("wrote the report"), "{quiet:?}");
}

#[test]
fn compare_draws_both_plans_on_one_chart_with_deltas() {
    let dir = tempfile::tempdir().unwrap();
    let out = compare_report(dir.path());
    let doc = parse(&out);
    for kind in ["compare-backlog", "compare-wait"] {
        let figs = figures(&doc, kind);
        assert_eq!(figs.len(), 2, "{kind}: one per exam");
        for f in figs {
            one_svg_with_titles(f, &["base-plan.json", "surge-plan.json"]);
            assert!(
                series(f).len() >= 2,
                "{kind}: both series drawn: {}",
                f.html()
            );
        }
    }
    // The surge adds SPK candidates: its backlog and V go up, and the delta says so.
    let row = |name: &str| -> Vec<String> {
        doc.select(&sel("#deltas tr"))
            .map(|r| {
                r.select(&sel("td"))
                    .map(|c| c.text().collect())
                    .collect::<Vec<String>>()
            })
            .find(|cells| cells.first().is_some_and(|c| c == name))
            .unwrap_or_else(|| panic!("no {name} row"))
    };
    let v = row("candidate-weeks over target (V)");
    let num = |s: &str| s.replace(',', "").parse::<f64>().unwrap();
    assert!(num(&v[2]) > num(&v[1]), "{v:?}");
    assert!(v[3].starts_with('+'), "{v:?}");
    assert!(
        (num(&v[3]) - (num(&v[2]) - num(&v[1]))).abs() < 0.01,
        "{v:?}"
    );
}

#[test]
fn mismatched_inputs_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (scenario, plan) = solved(dir.path(), "base", &fixture());
    let (surge_sc, _) = solved(dir.path(), "surge", &surge());
    let out = dir.path().join("r.html");
    let o = examcap()
        .args([
            "report",
            arg(&plan),
            "--scenario",
            arg(&surge_sc),
            "--out",
            arg(&out),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("surge.json") && err.contains("is for scenario"),
        "{err}"
    );
    assert!(!out.exists());

    // A plan over other weeks cannot be drawn against this one.
    let mut longer = fixture();
    longer["horizon_weeks"] = 7.into();
    for d in longer["demand"].as_array_mut().unwrap() {
        d["weekly"].as_array_mut().unwrap().push(5.into());
    }
    let (longer_sc, longer_plan) = solved(dir.path(), "longer", &longer);
    let o = examcap()
        .args(["report", arg(&plan), "--scenario", arg(&scenario)])
        .args([
            "--compare",
            arg(&longer_plan),
            "--compare-scenario",
            arg(&longer_sc),
        ])
        .args(["--out", arg(&out)])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("same weeks"), "{err}");

    // Hand-edited plans that do not fit their scenario, refused with each
    // bad row named and nothing written: an unknown location; a row
    // written twice (each copy fits, together they overbook the cell: a
    // plan has one row per cell, as `reschedule --plan` checks); an edited
    // header.
    let good: Value = serde_json::from_slice(&std::fs::read(&plan).unwrap()).unwrap();
    let mut nowhere = good.clone();
    nowhere["allocation"][0]["location"] = "NOWHERE".into();
    let mut twice = good.clone();
    let rows = twice["allocation"].as_array_mut().unwrap();
    let busiest = rows
        .iter()
        .max_by_key(|r| r["candidates"].as_u64().unwrap())
        .unwrap()
        .clone();
    rows.push(busiest);
    let mut moved = good.clone();
    moved["scenario"]["start_week"] = "2030-W01".into();
    let edited = dir.path().join("edited-plan.json");
    for (doc, says) in [
        (
            nowhere,
            "allocation[0].location: unknown location \"NOWHERE\"",
        ),
        (
            twice,
            "a plan has one row per region, exam, location and week",
        ),
        (moved, "scenario.start_week"),
    ] {
        std::fs::write(&edited, doc.to_string()).unwrap();
        let o = examcap()
            .args(["report", arg(&edited), "--scenario", arg(&scenario)])
            .args(["--out", arg(&out)])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2));
        let err = String::from_utf8_lossy(&o.stderr);
        // The file as given, not its name alone (two plans may share one).
        let named = format!("{} does not fit its scenario", edited.display());
        assert!(err.contains(&named) && err.contains(says), "{says}: {err}");
        assert!(!out.exists());
    }

    // Stdin holds one document: the plan and its scenario cannot both be
    // read from it (the second read found it empty and blamed the plan).
    let o = examcap()
        .args(["report", "-", "--scenario", "-", "--out", arg(&out)])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("PLAN and --scenario are both `-`"), "{err}");

    // Any file name is a file name, UTF-8 or not, --compare's too (it was
    // refused by the argument parser, naming no argument).
    let odd = dir
        .path()
        .join(std::ffi::OsStr::from_bytes(b"plan-\xff.json"));
    std::fs::copy(&plan, &odd).unwrap();
    let o = examcap()
        .args(["report", arg(&plan), "--scenario", arg(&scenario)])
        .arg("--compare")
        .arg(&odd)
        .args(["--out", arg(&out)])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(out.exists());
    std::fs::remove_file(&out).unwrap();

    // A plan file without its scenario is a usage error.
    let o = examcap()
        .args(["report", arg(&plan), "--out", arg(&out)])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--scenario"));
}

/// Runs Debian's chromium headless on `page` with a screenshot; returns the
/// console lines it logged. Fails (never skips) when chromium is missing.
fn chromium_screenshot(page: &Path, png: &Path, profile: &Path) -> Vec<String> {
    let log = png.with_extension("log");
    let mut child = match Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1000,2400",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // A file, not a pipe: chromium logs a lot and a full pipe would stall it.
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!(
            "cannot run chromium ({e}): the browser test needs Debian's chromium; \
             scripts/setup.sh installs it (scripts/test runs it)"
        ),
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut text = String::new();
    std::fs::File::open(&log)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(status.success(), "chromium failed: {status:?}\n{text}");
    // Console messages (errors, failed loads, policy violations) are logged
    // as `...:CONSOLE:<line>] "message", source: ...`.
    text.lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect()
}

/// Width and height from a PNG's IHDR, if `bytes` is a PNG.
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let sig = b"\x89PNG\r\n\x1a\n";
    if bytes.len() < 24 || &bytes[..8] != sig || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    Some((be(&bytes[16..20]), be(&bytes[20..24])))
}

#[test]
fn chromium_opens_the_report_without_console_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = compare_report(dir.path());

    // The check itself works: a page that logs an error is caught.
    let bad = dir.path().join("bad.html");
    std::fs::write(
        &bad,
        "<!DOCTYPE html><html><body><p>x</p><script>console.error('boom')</script></body></html>",
    )
    .unwrap();
    let console = chromium_screenshot(&bad, &dir.path().join("bad.png"), &dir.path().join("p1"));
    assert!(
        console.iter().any(|l| l.contains("boom")),
        "the console error of the control page was not seen: {console:?}"
    );

    let png = dir.path().join("report.png");
    let console = chromium_screenshot(&out, &png, &dir.path().join("p2"));
    assert!(console.is_empty(), "console messages: {console:#?}");
    let bytes = std::fs::read(&png).expect("a screenshot");
    assert_eq!(
        png_size(&bytes),
        Some((1000, 2400)),
        "not the PNG asked for"
    );
    // Charts and tables compress far worse than an empty page (a few KB).
    assert!(
        bytes.len() > 40_000,
        "suspiciously small screenshot: {} bytes",
        bytes.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn report_from_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let srv = common::start(common::config(&dir.path().join("store"))).await;
    let addr = srv.addr;
    let url = format!("http://{addr}");
    let channel = srv.channel().await;
    let base = common::solve_scenario(channel.clone(), &fixture()).await;
    let other = common::solve_scenario(channel, &surge()).await;

    let out = dir.path().join("served.html");
    // The CLI blocks, so it runs off the runtime that serves it.
    let report = |args: Vec<String>, env_token: Option<&'static str>| {
        let o = out.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = examcap();
            c.arg("report").args(args).args(["--out", arg(&o)]);
            if let Some(t) = env_token {
                c.env("EXAMCAP_TOKEN", t);
            }
            c.output().unwrap()
        })
    };
    let args = |a: &[&str]| -> Vec<String> {
        let mut v = vec!["--server".to_string(), url.clone()];
        v.extend(a.iter().map(|s| s.to_string()));
        v
    };
    // The drill role may read plans and scenarios: ops render drills.
    let output = report(
        args(&["--plan", &base, "--compare", &other]),
        Some(common::DRILL),
    )
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let doc = parse(&out);
    assert_eq!(figures(&doc, "flow").len(), 2);
    assert_eq!(figures(&doc, "rater-use").len(), 1);
    // Labelled by scenario name and short plan id.
    let label =
        |sc: Value, id: &str| format!("{} · plan {}", sc["name"].as_str().unwrap(), &id[..12]);
    for f in figures(&doc, "compare-backlog") {
        one_svg_with_titles(f, &[&label(fixture(), &base), &label(surge(), &other)]);
    }

    // An unknown plan id is NOT_FOUND, an input error (exit 2) naming it.
    let output = report(
        args(&["--plan", "no-such-plan", "--token", common::DRILL]),
        None,
    )
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("no-such-plan") && err.contains("NotFound"),
        "{err}"
    );
    // Without a token: an input error that says where the token goes.
    let output = report(args(&["--plan", &base]), None).await.unwrap();
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("Unauthenticated") && err.contains("give --token or set EXAMCAP_TOKEN"),
        "{err}"
    );

    // An address without a scheme is a usage error, named as such.
    let output = report(
        vec![
            "--server".into(),
            addr.to_string(),
            "--plan".into(),
            base.clone(),
        ],
        None,
    )
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("expected http://"));

    // No token: the service refuses, and the report says why.
    let output = report(args(&["--plan", &base]), None).await.unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("Unauthenticated"));

    // Registration may read the published plan but not its scenario: the
    // refused call is named with the id it asked for, the scenario's.
    srv.plans()
        .await
        .publish(common::req(
            examcap::proto::PublishRequest {
                plan_id: base.clone(),
            },
            common::PLANNER,
        ))
        .await
        .unwrap();
    let output = report(args(&["--plan", &base]), Some(common::REGISTRATION))
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    let scenario_id = examcap_solver::parse_scenario(&serde_json::to_vec(&fixture()).unwrap())
        .unwrap()
        .content_hash();
    assert!(
        err.contains(&format!("GetScenario {scenario_id}: PermissionDenied")),
        "{err}"
    );

    srv.stop().await;
}
