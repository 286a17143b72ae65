//! `examcap`: exam capacity planning for the Dutch civic-integration exams.
//!
//! Exit codes: 0 success (also a plan whose stage 2 hit the time limit,
//! with a warning); 1 internal error; 2 invalid input or usage; 3 the time
//! limit ran out in stage 1, so there is no plan.
#![forbid(unsafe_code)]

mod audit_cli;
mod backlog_cli;
mod demo;
mod drill_cli;
mod progress;
mod report;
mod reschedule_cli;
mod shock_cli;
mod summary;

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use clap::{Args, Parser, Subcommand};
use examcap_solver::calendar;
use examcap_solver::generate::{national, GenerateOptions, Surge};
use examcap_solver::plan::{PlanError, PlanStatus, PLAN_FORMAT};
use examcap_solver::solve::SolveError;
use examcap_solver::validate::{validate_scenario, ValidationErrors, MAX_DOCUMENT_BYTES};
use examcap_solver::{parse_scenario, plan_scenario, Plan, PlanOptions, Scenario};

use crate::progress::Progress;
use crate::summary::{render_summary, summary_json, Shown};

/// Plan exam capacity for the Dutch civic-integration exams: keep
/// registration waits under target at the lowest cost.
///
/// Start with `examcap demo`: it generates a national scenario, solves it
/// and shows the plan.
#[derive(Debug, Parser)]
#[command(
    name = "examcap",
    version,
    propagate_version = true,
    after_help = "Exit codes: 0 success; 1 internal error; 2 invalid input or usage; \
                  3 time limit reached in stage 1 (no plan)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a scenario document (examcap/scenario@1); print every error with its field path.
    Validate {
        /// The scenario JSON file, or `-` for stdin.
        file: PathBuf,
    },
    /// Solve a scenario: the plan that keeps waits under target at the lowest cost.
    Solve(SolveArgs),
    /// Make scenarios.
    #[command(subcommand)]
    Scenario(ScenarioCommand),
    /// Generate the national scenario, solve it and show the plan: the quickest way in.
    Demo(DemoArgs),
    /// Run the gRPC service (examcap.v1) until SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// A plan's weekly allocation as dated sessions per location: morning and
    /// afternoon blocks, Monday to Friday (Saturday where extra seats are
    /// bought), Dutch public holidays closed.
    Calendar(CalendarArgs),
    /// Reservations as observed demand: the backlog of the next scenario.
    #[command(subcommand)]
    Backlog(backlog_cli::BacklogCommand),
    /// The audit log, from a running server or a stopped server's data
    /// directory: every write, who made it with which role and RPC, on
    /// what, and when.
    Audit(audit_cli::AuditArgs),
    /// A plan as one self-contained HTML page with charts: flows, waits against
    /// target, capacity use, recommendations; --compare draws a drill against its base.
    Report(report::ReportArgs),
    /// A what-if drill against a running service, as ops run it: shocks
    /// (surge, demand delta, location closure, rater shortage) on a copy of
    /// a scenario, solved and compared with its plan; never published.
    Drill(drill_cli::DrillArgs),
    /// Re-plan the published plan after a surge: a feasible repair at once,
    /// then the optimal re-plan and what it moves (against a running
    /// service with --server, or offline with --plan and --scenario).
    Reschedule(reschedule_cli::RescheduleArgs),
}

#[derive(Debug, Args)]
struct CalendarArgs {
    /// The plan JSON file written by `examcap solve --out`.
    #[arg(value_name = "PLAN.json")]
    plan: PathBuf,
    /// The scenario the plan was solved from.
    #[arg(long, value_name = "SCENARIO.json")]
    scenario: PathBuf,
    /// Only this location (its id, e.g. AMS).
    #[arg(long, value_name = "ID")]
    location: Option<String>,
    /// Only these week indexes (0-based, inclusive), e.g. 10-12 or 4.
    #[arg(long, value_name = "A-B", value_parser = week_range, allow_hyphen_values = true)]
    weeks: Option<(usize, usize)>,
    /// Print the sessions (and any unplaced candidates) as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// TOML configuration (listen, data_dir, [[tokens]], limits, today); EXAMCAP_LISTEN,
    /// EXAMCAP_DATA_DIR, EXAMCAP_TODAY and EXAMCAP_TOKENS override it.
    #[arg(long, value_name = "examcap.toml")]
    config: Option<PathBuf>,
    /// Serve without bearer tokens: every caller acts as a planner (development only).
    #[arg(long)]
    allow_unauthenticated: bool,
}

#[derive(Debug, Args)]
struct SolveArgs {
    /// The scenario JSON file, or `-` for stdin.
    file: PathBuf,
    /// Wall-clock limit in seconds for the solve (a number > 0); none by default.
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds, allow_negative_numbers = true)]
    time_limit: Option<f64>,
    /// Write the full plan (allocation, waits, shadow prices, ...) as JSON to this file.
    #[arg(long, value_name = "PLAN.json")]
    out: Option<PathBuf>,
    /// Print the summary as one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Length in minutes of the "one extra session" the recommendations price.
    #[arg(long, value_name = "N", default_value_t = PlanOptions::default().session_minutes,
          value_parser = session_minutes, allow_negative_numbers = true)]
    session_minutes: f64,
    /// No progress on stderr.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Debug, Subcommand)]
enum ScenarioCommand {
    /// Generate a national scenario (40 COROP regions, 12 locations, B1 and NT2 exams);
    /// the same options always give the same document.
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
struct GenerateArgs {
    /// Seed of the random demand, holidays and closures.
    #[arg(long, value_parser = whole::<u64>, allow_negative_numbers = true)]
    seed: u64,
    /// Planning horizon in weeks (1..=520).
    #[arg(long, default_value_t = 52, value_parser = clap::value_parser!(u16).range(1..=520),
          allow_negative_numbers = true)]
    weeks: u16,
    /// ISO week of week index 0, e.g. 2027-W01.
    #[arg(long, value_name = "YYYY-Www", default_value = "2027-W01", value_parser = iso_week)]
    start_week: String,
    /// Split every region into K identical parts (1..=64), each with 1/K of the demand.
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=64),
          allow_negative_numbers = true)]
    regions_split: u8,
    /// Multiply one exam's demand in weeks FROM..=TO, e.g. SPREKEN_B1:1.6:10:16; repeatable.
    #[arg(long, value_name = "EXAM:MULT:FROM:TO")]
    surge: Vec<Surge>,
    /// Write the scenario to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Where the scenario (nl-national.json) and the plan (plan.json) go.
    #[arg(long, value_name = "DIR", default_value = "examcap-demo")]
    data_dir: PathBuf,
    /// No progress on stderr.
    #[arg(long, short)]
    quiet: bool,
}

fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("must be a number of seconds > 0, got {s:?}")),
    }
}

fn session_minutes(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (1.0..=1e6).contains(&v) => Ok(v),
        _ => Err(format!(
            "must be a number of minutes in [1, 1e6], got {s:?}"
        )),
    }
}

/// A count given on the command line. With `allow_negative_numbers`, `-1`
/// gets this message instead of clap's "unexpected argument '-1' found".
pub(crate) fn whole<T: Count>(s: &str) -> Result<T, String> {
    s.parse::<T>().map_err(|_| {
        let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if digits {
            // A whole number all the same: say it is too large, not that
            // it is not a whole number.
            format!("must be at most {}, got {s}", T::MAX)
        } else {
            format!("must be a whole number >= 0, got {s:?}")
        }
    })
}

/// The unsigned types [`whole`] reads, with their largest value.
pub(crate) trait Count: std::str::FromStr {
    const MAX: u64;
}

impl Count for u32 {
    const MAX: u64 = u32::MAX as u64;
}

impl Count for u64 {
    const MAX: u64 = u64::MAX;
}

impl Count for usize {
    const MAX: u64 = usize::MAX as u64;
}

fn week_range(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("expected week indexes A-B with A <= B, e.g. 10-12, got {s:?}");
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a: usize = a.trim().parse().map_err(|_| bad())?;
    let b: usize = b.trim().parse().map_err(|_| bad())?;
    if a > b {
        return Err(bad());
    }
    Ok((a, b))
}

fn iso_week(s: &str) -> Result<String, String> {
    match examcap_solver::validate::iso_week_problem(s) {
        None => Ok(s.to_string()),
        Some(problem) => Err(problem),
    }
}

/// Why a command failed; decides the exit code.
#[derive(Debug)]
enum Failure {
    /// Invalid input (exit 2); the message is printed as is.
    Input(String),
    /// The time limit ran out before stage 1 finished (exit 3).
    TimeLimit(String),
    /// Anything else (exit 1).
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Internal(e)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate { file } => cmd_validate(&file),
        Command::Solve(a) => cmd_solve(&a),
        Command::Scenario(ScenarioCommand::Generate(a)) => cmd_generate(&a),
        Command::Demo(a) => cmd_demo(&a),
        Command::Serve(a) => cmd_serve(&a),
        Command::Calendar(a) => cmd_calendar(&a),
        Command::Backlog(c) => backlog_cli::cmd_backlog(&c),
        Command::Audit(a) => audit_cli::cmd_audit(&a),
        Command::Report(a) => report::run(&a),
        Command::Drill(a) => drill_cli::cmd_drill(&a),
        Command::Reschedule(a) => reschedule_cli::cmd_reschedule(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            let (code, msg) = match f {
                Failure::Input(m) => (2, m),
                Failure::TimeLimit(m) => (3, m),
                Failure::Internal(e) => (1, format!("examcap: error: {}", chain(&e))),
            };
            let mut err = io::stderr().lock();
            let _ = writeln!(err, "{msg}");
            ExitCode::from(code)
        }
    }
}

/// An error and its causes, `a: b: c` (see [`examcap::client::joined_messages`]).
fn chain(e: &anyhow::Error) -> String {
    examcap::client::joined_messages(e.chain())
}

fn cmd_validate(file: &Path) -> Result<(), Failure> {
    let sc = load(file)?;
    let line = format!(
        "{}: valid {} \"{}\": {} weeks from {}, {}, {}, {}, {}, {}, {}\n",
        label(file),
        sc.format,
        Shown(&sc.name),
        sc.horizon_weeks,
        sc.start_week,
        count(sc.exams.len(), "exam"),
        count(sc.locations.len(), "location"),
        count(sc.rating_pools.len(), "rating pool"),
        count(sc.regions.len(), "region"),
        count(sc.demand.len(), "demand row"),
        count(sc.backlog.len(), "backlog row"),
    );
    emit(&line)
}

fn cmd_solve(a: &SolveArgs) -> Result<(), Failure> {
    let sc = load(&a.file)?;
    if let Some(out) = &a.out {
        check_out(out, &[&a.file])?;
    }
    let opts = PlanOptions {
        time_limit_seconds: a.time_limit,
        session_minutes: a.session_minutes,
        ..PlanOptions::default()
    };
    let plan = solve(&sc, &opts, a.quiet)?;
    if let Some(out) = &a.out {
        write_plan(out, &plan)?;
        if !a.quiet {
            eprintln!("examcap: wrote the plan to {}", out.display());
        }
    }
    if a.json {
        let mut text = serde_json::to_string(&summary_json(&plan)).context("summary to JSON")?;
        text.push('\n');
        emit(&text)
    } else {
        emit(&render_summary(&plan))
    }
}

fn cmd_generate(a: &GenerateArgs) -> Result<(), Failure> {
    let weeks = usize::from(a.weeks);
    for s in &a.surge {
        if s.from_week >= weeks {
            return Err(Failure::Input(format!(
                "examcap: --surge {s}: from week {} is past the horizon (weeks 0..={})",
                s.from_week,
                weeks - 1
            )));
        }
    }
    let opts = GenerateOptions {
        seed: a.seed,
        weeks,
        start_week: a.start_week.clone(),
        regions_split: usize::from(a.regions_split),
        surges: a.surge.clone(),
    };
    let sc = national(&opts);
    validate_scenario(&sc).map_err(|e| {
        Failure::Input(format!(
            "{e}\nexamcap: these options give an invalid scenario ({})",
            count(e.total, "error")
        ))
    })?;
    match &a.out {
        Some(out) => {
            check_writable(out)?;
            write_scenario(out, &sc)?;
            eprintln!(
                "examcap: wrote {}: {}, {} weeks from {}",
                out.display(),
                sc.name,
                sc.horizon_weeks,
                sc.start_week
            );
            Ok(())
        }
        None => {
            let mut text = serde_json::to_string_pretty(&sc).context("scenario to JSON")?;
            text.push('\n');
            emit(&text)
        }
    }
}

fn cmd_demo(a: &DemoArgs) -> Result<(), Failure> {
    let dir = &a.data_dir;
    fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let opts = GenerateOptions {
        seed: 1,
        weeks: 52,
        ..GenerateOptions::default()
    };
    let generated = national(&opts);
    let mut bytes = serde_json::to_vec_pretty(&generated).context("scenario to JSON")?;
    bytes.push(b'\n');
    let scenario_path = dir.join("nl-national.json");
    write_atomically(&scenario_path, &bytes)?;
    // Solve what is on disk, so the plan's scenario hash is that file's.
    let sc = parse_scenario(&bytes)
        .map_err(|e| anyhow!("the generated national scenario is invalid:\n{e}"))?;
    if !a.quiet {
        eprintln!(
            "examcap: wrote {}: {} exams, {} locations, {} regions, {} weeks from {}",
            scenario_path.display(),
            sc.exams.len(),
            sc.locations.len(),
            sc.regions.len(),
            sc.horizon_weeks,
            sc.start_week
        );
    }
    // The real thing: an in-process gRPC server with a sled store, driven
    // over gRPC (upload, streamed solve, publish, surge drill).
    let json = String::from_utf8(bytes).context("the scenario JSON is UTF-8")?;
    let plan_path = dir.join("plan.json");
    // A store another process holds is the operator's to fix (exit 2), as
    // for `serve` on it.
    let mut text = demo::run(dir, json, a.quiet).map_err(|e| {
        let operators = e.chain().any(|c| {
            c.downcast_ref::<examcap::server::ServerError>()
                .is_some_and(|s| s.is_input())
        });
        if operators {
            Failure::Input(format!("examcap: {}", chain(&e)))
        } else {
            Failure::Internal(e)
        }
    })?;
    // The binary is not on PATH after `scripts/demo`: show where it is.
    let exe = std::env::current_exe()
        .map(|p| shell_arg(&p))
        .unwrap_or_else(|_| "examcap".into());
    let (scen, planp) = (shell_arg(&scenario_path), shell_arg(&plan_path));
    let w = scen.chars().count().max(planp.chars().count());
    text.push_str(&format!(
        "\nFiles\n  {scen:<w$}  the scenario (examcap/scenario@1)\n  \
         {planp:<w$}  the full plan: allocation, waits per cohort, shadow prices\n\
         \nNext steps\n  \
         # this summary as one JSON object\n  \
         {exe} solve {scen} --json\n  \
         # the plan as one HTML page with charts (open it in a browser)\n  \
         {exe} report {planp} --scenario {scen} --out report.html\n  \
         # what a 60% Spreken B1 surge in weeks 10-16 does to the waits\n  \
         {exe} scenario generate --seed 1 --surge SPREKEN_B1:1.6:10:16 --out surge.json\n  \
         {exe} solve surge.json --out surge-plan.json\n  \
         {exe} report {planp} --scenario {scen} --compare surge-plan.json \\\n      \
         --compare-scenario surge.json --out surge.html\n  \
         # every command and option\n  \
         {exe} help\n"
    ));
    emit(&text)
}

fn cmd_serve(a: &ServeArgs) -> Result<(), Failure> {
    use examcap::config::Config;
    let mut config = match &a.config {
        Some(path) => {
            Config::from_file(path).map_err(|e| Failure::Input(format!("examcap: {e}")))?
        }
        None => Config::default(),
    };
    config
        .apply_env(|k| std::env::var(k).ok())
        .map_err(|e| Failure::Input(format!("examcap: {e}")))?;
    config.allow_unauthenticated |= a.allow_unauthenticated;
    config
        .check()
        .map_err(|e| Failure::Input(format!("examcap: {e}")))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.runtime_workers())
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let served = runtime.block_on(async move {
        let telemetry = examcap::telemetry::init(examcap::telemetry::otlp_endpoint_from_env())
            .map_err(|e| Failure::Internal(anyhow!(e)))?;
        let served = examcap::server::serve(config).await;
        let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
        served.map_err(|e| {
            if e.is_input() {
                Failure::Input(format!("examcap: {e}"))
            } else {
                Failure::Internal(anyhow!(e))
            }
        })
    });
    // A solve whose call the drain cut is still inside HiGHS on a blocking
    // thread, and one HiGHS run cannot be interrupted. Dropping the runtime
    // would wait for it (half a minute or more for a large scenario, past
    // Kubernetes' SIGKILL), so the leftovers get a moment and are then left
    // behind: their results were never acknowledged, and every acknowledged
    // write is on disk already.
    runtime.shutdown_timeout(LEFTOVER_WAIT);
    served
}

/// How long `serve` waits, once stopped, for blocking work that outlived
/// the drain (a cut solve still in HiGHS) before it exits without it.
const LEFTOVER_WAIT: Duration = Duration::from_secs(1);

/// Runs `fut` (a call to a server) to completion on a runtime of its own.
pub(crate) fn block_on<T>(fut: impl std::future::Future<Output = T>) -> Result<T, Failure> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(fut))
}

/// Reads a plan document; every failure is an input error naming the file.
/// It must be a plan (its `format`); at most the scenario
/// size limit is read.
pub(crate) fn read_plan(path: &Path) -> Result<Plan, Failure> {
    let bytes = read_capped(path)?;
    let plan: Plan = serde_json::from_slice(&bytes).map_err(|e| {
        // Name the row field when that is what does not read (serde only
        // gives a line and column).
        let doc = serde_json::from_slice::<serde_json::Value>(&bytes).ok();
        // Another examcap document (a scenario given where the plan goes)
        // is named by its format, not by the first plan field it lacks.
        let format = doc.as_ref().and_then(|v| v.get("format")?.as_str());
        if let Some(other) = format.filter(|f| *f != PLAN_FORMAT) {
            return Failure::Input(format!(
                "{}: format: expected {PLAN_FORMAT:?}, got {other:?}{}",
                path.display(),
                if other.starts_with("examcap/scenario") {
                    " (a scenario: the plan file is what `examcap solve --out` writes)"
                } else {
                    ""
                }
            ));
        }
        let row = doc.as_ref().and_then(plan_row_error);
        match row {
            Some(what) => Failure::Input(format!("{}: {what}", path.display())),
            None => Failure::Input(format!(
                "{}: not an {PLAN_FORMAT} document: {e}",
                path.display()
            )),
        }
    })?;
    if plan.format != PLAN_FORMAT {
        return Err(Failure::Input(format!(
            "{}: format {:?}, expected {PLAN_FORMAT:?}",
            path.display(),
            plan.format
        )));
    }
    Ok(plan)
}

/// The first plan row field of the wrong type, as `path: message`: row
/// ids are strings, weeks and candidates whole numbers ≥ 0, minutes numbers.
fn plan_row_error(v: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    let whole = |x: &Value| x.as_u64().is_some();
    let number = |x: &Value| x.as_f64().is_some();
    let text = |x: &Value| x.is_string();
    /// A field, its test, and what it must be.
    type Field<'a> = (&'a str, &'a dyn Fn(&Value) -> bool, &'a str);
    let rows: [(&str, &[Field]); 3] = [
        (
            "allocation",
            &[
                ("region", &text, "a string"),
                ("exam", &text, "a string"),
                ("location", &text, "a string"),
                ("week", &whole, "a whole number >= 0"),
                ("candidates", &whole, "a whole number >= 0"),
            ],
        ),
        (
            "extra_seats",
            &[
                ("location", &text, "a string"),
                ("kind", &text, "a string"),
                ("week", &whole, "a whole number >= 0"),
                ("lp_minutes", &number, "a number"),
                ("minutes", &number, "a number"),
            ],
        ),
        (
            "extra_raters",
            &[
                ("pool", &text, "a string"),
                ("week", &whole, "a whole number >= 0"),
                ("lp_minutes", &number, "a number"),
                ("minutes", &number, "a number"),
            ],
        ),
    ];
    for (list, fields) in rows {
        let Some(list_rows) = v.get(list).and_then(Value::as_array) else {
            continue;
        };
        for (i, row) in list_rows.iter().enumerate() {
            for &(field, ok, want) in fields {
                match row.get(field) {
                    Some(x) if ok(x) => {}
                    Some(x) => {
                        let got = x.to_string();
                        let got = got.get(..40).unwrap_or(&got);
                        return Some(format!("{list}[{i}].{field}: must be {want}, got {got}"));
                    }
                    None => return Some(format!("{list}[{i}].{field}: missing")),
                }
            }
        }
    }
    None
}

fn cmd_calendar(a: &CalendarArgs) -> Result<(), Failure> {
    one_stdin(&[("PLAN", Some(&a.plan)), ("--scenario", Some(&a.scenario))])?;
    let sc = load(&a.scenario)?;
    let path = &a.plan;
    let mut plan = read_plan(path)?;
    if plan.scenario.content_hash != sc.content_hash() {
        return Err(Failure::Input(format!(
            "{}: the plan is for scenario \"{}\" ({}, sha256 {}), not {} (\"{}\", sha256 {})",
            path.display(),
            Shown(&plan.scenario.name),
            Shown(&plan.scenario.start_week),
            summary::short(&plan.scenario.content_hash),
            label(&a.scenario),
            Shown(&sc.name),
            summary::short(&sc.content_hash()),
        )));
    }
    // A row that does not fit the scenario would be dated after the
    // horizon or left out of the text without a word.
    if let Err(errors) = examcap_solver::reschedule::check_published(&sc, &plan) {
        return Err(Failure::Input(format!(
            "{}: does not fit {}:\n{errors}",
            path.display(),
            label(&a.scenario)
        )));
    }
    if let Some(id) = &a.location {
        if !sc.locations.iter().any(|l| &l.id == id) {
            let known: Vec<&str> = sc.locations.iter().map(|l| l.id.as_str()).collect();
            return Err(Failure::Input(format!(
                "examcap: --location {id}: unknown location (the scenario has {})",
                known.join(", ")
            )));
        }
    }
    if let Some((from, to)) = a.weeks {
        if to >= plan.scenario.horizon_weeks {
            return Err(Failure::Input(format!(
                "examcap: --weeks {from}-{to}: past the horizon (weeks 0-{})",
                plan.scenario.horizon_weeks.saturating_sub(1)
            )));
        }
    }
    // Cells are independent: filtering the allocation filters the calendar.
    plan.allocation.retain(|r| {
        a.location.as_ref().is_none_or(|id| &r.location == id)
            && a.weeks
                .is_none_or(|(from, to)| from <= r.week && r.week <= to)
    });
    let cal = calendar::sessions(&plan, &sc);
    for u in &cal.unplaced {
        let saturday = cal
            .closed_saturdays
            .iter()
            .find(|c| c.location == u.location && c.week == u.week);
        let why = match saturday {
            Some(c) => format!(
                "they are what the extra minutes bought that week seat, on Saturday {}, \
                 which is {}",
                c.date.format("%Y-%m-%d"),
                c.holiday
            ),
            None => "no open day".to_string(),
        };
        eprintln!(
            "examcap: warning: {} of {} at {} in week {} not placed: {why}",
            count(u.candidates as usize, "candidate"),
            u.exam,
            u.location,
            u.week
        );
    }
    for c in &cal.crowded {
        let days: Vec<String> = c
            .closed
            .iter()
            .map(|(d, name)| format!("{} {name}", d.format("%Y-%m-%d")))
            .collect();
        eprintln!(
            "examcap: warning: {} week {}: closed on {}, but the scenario keeps {:.0}% of its \
             capacity that week (at most {:.0}% is open): the week's candidates crowd the \
             open blocks; give the location an `unavailable` factor of {} for week {}",
            c.location,
            c.week,
            days.join(", "),
            c.factor * 100.0,
            c.open_share * 100.0,
            c.open_share,
            c.week
        );
    }
    for c in &cal.closed_saturdays {
        eprintln!(
            "examcap: warning: {} week {}: the plan buys extra {} minutes, which go on Saturday, \
             but {} is {}: the candidates they were bought for are not placed (the weekdays \
             have only the regular minutes)",
            c.location,
            c.week,
            c.kinds.join(" and "),
            c.date.format("%Y-%m-%d"),
            c.holiday,
        );
    }
    if a.json {
        let mut text = serde_json::to_string(&cal).context("calendar to JSON")?;
        text.push('\n');
        return emit(&text);
    }
    let mut text = String::new();
    for loc in &sc.locations {
        if a.location.as_ref().is_some_and(|id| id != &loc.id) {
            continue;
        }
        text.push_str(&format!("{} {}\n", loc.id, Shown(&loc.name)));
        let rows: Vec<_> = cal
            .sessions
            .iter()
            .filter(|s| s.location == loc.id)
            .collect();
        if rows.is_empty() {
            text.push_str("  no sessions\n");
            continue;
        }
        let w = rows.iter().map(|s| s.exam.len()).max().unwrap_or(0).max(4);
        text.push_str(&format!(
            "  {:<10}  {:<3}  {:<9}  {:<w$}  {:>10}  {:>12}\n",
            "date", "day", "block", "exam", "candidates", "seat minutes"
        ));
        for s in rows {
            text.push_str(&format!(
                "  {}  {:<3}  {:<9}  {:<w$}  {:>10}  {:>12}\n",
                s.date.format("%Y-%m-%d"),
                s.date.format("%a"),
                s.block.name(),
                s.exam,
                s.candidates,
                minutes_text(s.seat_minutes)
            ));
        }
    }
    emit(&text)
}

/// Seat minutes for a table: to 12 significant digits, which drops the
/// float noise of candidates × seat minutes (3 × 0.1 is 0.30000000000000004)
/// and keeps every digit a scenario gives (60.625 stays 60.625), and in
/// exponent form where that would print dozens of digits (a scenario may
/// give an exam 1e-300 seat minutes).
fn minutes_text(m: f64) -> String {
    let Ok(m) = format!("{m:.11e}").parse::<f64>() else {
        return m.to_string();
    };
    if m != 0.0 && !(1e-4..1e15).contains(&m.abs()) {
        format!("{m:e}")
    } else {
        m.to_string()
    }
}

/// Runs the pipeline with progress on stderr and maps its errors to exit codes.
fn solve(sc: &Scenario, opts: &PlanOptions, quiet: bool) -> Result<Plan, Failure> {
    let progress = Progress::new(quiet);
    let t0 = Instant::now();
    let result = plan_scenario(sc, opts, &|p| progress.event(p));
    let took = progress::duration(t0.elapsed());
    match result {
        Ok(plan) => {
            progress.finish(&format!("examcap: solved in {took}"));
            if plan.status == PlanStatus::Stage2TimeLimit {
                eprintln!(
                    "examcap: warning: time limit reached in stage2: the waiting promise \
                     (V*) is exact but the cost is not minimal"
                );
            }
            Ok(plan)
        }
        Err(PlanError::Solve(e @ SolveError::TimeLimit(_))) => {
            progress.close();
            Err(Failure::TimeLimit(format!(
                "examcap: {e} (after {took}); no plan. Try a larger --time-limit."
            )))
        }
        Err(PlanError::Invalid(e)) => {
            progress.close();
            Err(invalid("scenario", &e))
        }
        Err(e) => {
            progress.close();
            Err(Failure::Internal(anyhow!(e).context("solve failed")))
        }
    }
}

/// Reads and validates a scenario; every failure is an input error.
fn load(file: &Path) -> Result<Scenario, Failure> {
    let bytes = read_capped(file)?;
    parse_scenario(&bytes).map_err(|e| invalid(&label(file), &e))
}

/// The `path: message` lines first, then one line naming the file.
fn invalid(what: &str, e: &ValidationErrors) -> Failure {
    Failure::Input(format!(
        "{e}\nexamcap: {what}: not a valid examcap/scenario@1 document ({})",
        count(e.total, "error")
    ))
}

/// At most one byte more than a scenario may have: parse_scenario rejects
/// the oversized rest without it ever being read.
fn read_capped(file: &Path) -> Result<Vec<u8>, Failure> {
    let limit = MAX_DOCUMENT_BYTES as u64 + 1;
    let mut buf = Vec::new();
    let read = if is_stdin(file) {
        io::stdin().lock().take(limit).read_to_end(&mut buf)
    } else {
        fs::File::open(file).and_then(|f| f.take(limit).read_to_end(&mut buf))
    };
    read.map_err(|e| Failure::Input(format!("{}: cannot read: {e}", label(file))))?;
    Ok(buf)
}

fn is_stdin(file: &Path) -> bool {
    file.as_os_str() == "-"
}

/// A plan id given to an option that, offline, takes a file (so any file
/// name is taken): with `--server` it must be text.
pub(crate) fn plan_id_arg<'a>(what: &str, id: &'a Path) -> Result<&'a str, Failure> {
    id.to_str().ok_or_else(|| {
        Failure::Input(format!(
            "examcap: {what} {}: with --server this is a plan id, which is text",
            id.display()
        ))
    })
}

/// At most one of a command's input files may be `-`: stdin holds one
/// document, and the second read found it empty and blamed that file.
pub(crate) fn one_stdin(inputs: &[(&str, Option<&Path>)]) -> Result<(), Failure> {
    let on_stdin: Vec<&str> = inputs
        .iter()
        .filter(|(_, p)| p.is_some_and(is_stdin))
        .map(|(name, _)| *name)
        .collect();
    if on_stdin.len() > 1 {
        let (all, but) = if on_stdin.len() == 2 {
            ("both", "one of them as a file")
        } else {
            ("all", "all but one as files")
        };
        return Err(Failure::Input(format!(
            "examcap: {} are {all} `-`, but stdin holds one document: give {but}",
            on_stdin.join(" and ")
        )));
    }
    Ok(())
}

fn label(file: &Path) -> String {
    if is_stdin(file) {
        "stdin".to_string()
    } else {
        file.display().to_string()
    }
}

fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Writes to stdout ([`examcap::client::write_stdout`]: a closed pipe is
/// not an error).
fn emit(text: &str) -> Result<(), Failure> {
    examcap::client::write_stdout(text)
        .map_err(|e| anyhow!(e).context("cannot write to stdout").into())
}

/// The directory of `out` must exist and `out` must not be one, checked
/// before a long solve rather than after it.
fn check_writable(out: &Path) -> Result<(), Failure> {
    let dir = parent_dir(out);
    if is_stdin(out) {
        return Err(Failure::Input(
            "--out -: give a file name (without --out the output goes to stdout)".into(),
        ));
    }
    if out.file_name().is_none() || out.is_dir() {
        return Err(Failure::Input(format!(
            "{}: cannot write: not a file name",
            out.display()
        )));
    }
    if !dir.is_dir() {
        return Err(Failure::Input(format!(
            "{}: cannot write: directory {} does not exist",
            out.display(),
            dir.display()
        )));
    }
    Ok(())
}

/// [`check_writable`], and `out` must not be one of the command's `inputs`:
/// the output would replace what it is made from.
pub(crate) fn check_out(out: &Path, inputs: &[&Path]) -> Result<(), Failure> {
    check_writable(out)?;
    match inputs.iter().find(|i| !is_stdin(i) && same_path(out, i)) {
        Some(i) => Err(Failure::Input(format!(
            "{}: cannot write: it is also an input of this command ({}); write the output elsewhere",
            out.display(),
            i.display()
        ))),
        None => Ok(()),
    }
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Writes a scenario document (as `scenario generate` does).
pub(crate) fn write_scenario(out: &Path, sc: &Scenario) -> Result<(), Failure> {
    write_atomically(out, &scenario_bytes(sc)?)
}

/// A scenario document as written to a file.
pub(crate) fn scenario_bytes(sc: &Scenario) -> Result<Vec<u8>, Failure> {
    let mut bytes = serde_json::to_vec_pretty(sc).context("scenario to JSON")?;
    // Indented where it fits the document limit; compact where only that
    // does, so that `validate`, `solve` and the service read it back.
    if bytes.len() >= examcap_solver::validate::MAX_DOCUMENT_BYTES {
        bytes = serde_json::to_vec(sc).context("scenario to JSON")?;
    }
    bytes.push(b'\n');
    Ok(bytes)
}

/// Whether two paths name the same file: spelled alike, or the same file
/// once their directories are resolved (links followed), whether or not the
/// file exists yet.
pub(crate) fn same_path(a: &Path, b: &Path) -> bool {
    a == b || matches!((resolved(a), resolved(b)), (Some(x), Some(y)) if x == y)
}

/// `path` with every link followed: the file itself if it exists, else its
/// resolved directory joined with its name (`None` if neither resolves).
fn resolved(path: &Path) -> Option<PathBuf> {
    fs::canonicalize(path).ok().or_else(|| {
        let name = path.file_name()?;
        Some(fs::canonicalize(parent_dir(path)).ok()?.join(name))
    })
}

/// Whether `path` (existing or not) lies inside the directory `dir`.
pub(crate) fn within(path: &Path, dir: &Path) -> bool {
    matches!((resolved(path), fs::canonicalize(dir)), (Some(p), Ok(d)) if p.starts_with(&d))
}

fn write_plan(out: &Path, plan: &Plan) -> Result<(), Failure> {
    write_atomically(out, &plan_bytes(plan)?)
}

/// A plan document as written to a file.
pub(crate) fn plan_bytes(plan: &Plan) -> Result<Vec<u8>, Failure> {
    let mut bytes = serde_json::to_vec_pretty(plan).context("plan to JSON")?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Writes a temporary file next to `path`, syncs it and renames it over
/// `path`: readers see the old file or the new one, never half of one.
/// A symlink keeps pointing where it did: its target is replaced (with the
/// target's permissions). What is not a regular file (a device, a FIFO,
/// `/dev/stdout`) is written to, not replaced.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    stage(path, bytes)?.commit()
}

/// [`write_atomically`] for the several outputs of one command: every file
/// is written and synced beside its destination before any is put in
/// place, so a command that cannot write one of them replaces none
/// (`reschedule` once replaced `--out` and then failed on `--out-scenario`).
pub(crate) fn write_all_atomically(files: &[(&Path, Vec<u8>)]) -> Result<(), Failure> {
    let staged = files
        .iter()
        .map(|(path, bytes)| stage(path, bytes))
        .collect::<Result<Vec<_>, _>>()?;
    staged.into_iter().try_for_each(Staged::commit)
}

/// A file written in full beside its destination, not yet in place:
/// [`Staged::commit`] renames it over the destination, and dropping it
/// instead removes it.
pub(crate) struct Staged {
    /// The temporary file; `None` once renamed, or for a destination that
    /// was written directly (not a regular file).
    tmp: Option<PathBuf>,
    /// The file replaced: a symlink's target, not the link.
    dest: PathBuf,
}

impl Staged {
    fn commit(mut self) -> Result<(), Failure> {
        let Some(tmp) = self.tmp.take() else {
            return Ok(());
        };
        fs::rename(&tmp, &self.dest).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            anyhow!(e)
                .context(format!("{}: cannot write", self.dest.display()))
                .into()
        })
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = fs::remove_file(tmp);
        }
    }
}

/// The first half of [`write_atomically`]: `bytes` in a synced temporary
/// file beside `path`'s target (or written to a target that is not a
/// regular file).
fn stage(path: &Path, bytes: &[u8]) -> Result<Staged, Failure> {
    let cannot = |e: io::Error| -> Failure {
        anyhow!(e)
            .context(format!("{}: cannot write", path.display()))
            .into()
    };
    let target = match fs::canonicalize(path) {
        Ok(t) => t,
        // A dangling symlink: create what it points to.
        Err(_) => match fs::read_link(path) {
            Ok(link) => parent_dir(path).join(link),
            Err(_) => path.to_path_buf(),
        },
    };
    let existing = fs::metadata(&target).ok();
    if existing.as_ref().is_some_and(|m| !m.is_file()) {
        return OpenOptions::new()
            .write(true)
            .open(&target)
            .and_then(|mut f| f.write_all(bytes))
            .map(|()| Staged {
                tmp: None,
                dest: target.clone(),
            })
            .map_err(cannot);
    }
    let path = target.as_path();
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{}: cannot write: not a file name", path.display()))?;
    let dir = parent_dir(path);
    let mut last_err = None;
    for attempt in 0..100 {
        let tmp = dir.join(format!(
            ".{}.{}.{attempt}.tmp",
            name.to_string_lossy(),
            std::process::id()
        ));
        let file = match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                last_err = Some(e);
                break;
            }
        };
        // Removed again on any error below, by the drop.
        let staged = Staged {
            tmp: Some(tmp),
            dest: path.to_path_buf(),
        };
        let written = (|| {
            let mut f = file;
            if let Some(m) = &existing {
                f.set_permissions(m.permissions())?;
            }
            f.write_all(bytes)?;
            f.sync_all()
        })();
        match written {
            Ok(()) => return Ok(staged),
            Err(e) => {
                last_err = Some(e);
                break;
            }
        }
    }
    let e = last_err.unwrap_or_else(|| io::Error::other("no free temporary file name"));
    Err(anyhow!(e)
        .context(format!("{}: cannot write", path.display()))
        .into())
}

/// A path as a shell word: as is when safe, else single-quoted.
fn shell_arg(path: &Path) -> String {
    let s = path.display().to_string();
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scenario file is indented where that fits the document limit and
    /// compact where only that does: an indented re-plan scenario of 28.8
    /// MB was written that `validate` then refused (found by a reviewer).
    #[test]
    fn a_scenario_file_is_compact_where_indented_would_pass_the_limit() {
        let mut sc =
            examcap_solver::parse_scenario(include_bytes!("../tests/fixtures/tiny.json")).unwrap();
        let small = scenario_bytes(&sc).unwrap();
        assert!(small.starts_with(b"{\n  "), "indented");
        let range = examcap_solver::scenario::Unavailable {
            from_week: 0,
            to_week: 0,
            factor: 0.5,
        };
        sc.locations[0].unavailable = vec![range; 300_000];
        let pretty = serde_json::to_vec_pretty(&sc).unwrap().len();
        let limit = examcap_solver::validate::MAX_DOCUMENT_BYTES;
        assert!(pretty > limit, "{pretty}");
        let bytes = scenario_bytes(&sc).unwrap();
        assert!(bytes.len() <= limit, "{}", bytes.len());
        assert_eq!(examcap_solver::parse_scenario(&bytes).unwrap(), sc);
    }
    use clap::CommandFactory;

    #[test]
    fn seat_minutes_print_short_whatever_their_size() {
        assert_eq!(minutes_text(1350.0), "1350");
        assert_eq!(minutes_text(67.5), "67.5");
        assert_eq!(minutes_text(5.0 * 12.125), "60.625");
        assert_eq!(minutes_text(3.0 * 0.1), "0.3");
        assert_eq!(minutes_text(0.015), "0.015");
        assert_eq!(minutes_text(0.0049), "0.0049");
        assert_eq!(minutes_text(123456789.123), "123456789.123");
        assert_eq!(minutes_text(0.0), "0");
        assert_eq!(minutes_text(1e-300), "1e-300");
        assert_eq!(minutes_text(4e-5), "4e-5");
        assert_eq!(minutes_text(2.5e20), "2.5e20");
        assert_eq!(minutes_text(f64::MAX), "1.79769313486e308");
    }

    #[test]
    fn an_error_chain_quotes_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot open {dir}: {source}")]
        struct Open {
            dir: &'static str,
            source: io::Error,
        }
        let inner = io::Error::other("lock held");
        let e = anyhow!(Open {
            dir: "d",
            source: inner
        })
        .context("serve");
        assert_eq!(chain(&e), "serve: cannot open d: lock held");
        let e = anyhow!(io::Error::other("disk full")).context("cannot write x");
        assert_eq!(chain(&e), "cannot write x: disk full");
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn value_parsers() {
        assert_eq!(positive_seconds("1.5"), Ok(1.5));
        for bad in ["-1", "0", "nan", "inf", "", "abc", "1e400"] {
            assert!(positive_seconds(bad).is_err(), "{bad}");
        }
        assert_eq!(iso_week("2027-W01"), Ok("2027-W01".into()));
        for bad in ["2027-W1", "2027-W54", "27-W01", "2027W01x"] {
            assert!(iso_week(bad).is_err(), "{bad}");
        }
        assert!(session_minutes("240").is_ok());
        assert!(session_minutes("0").is_err());
        // Shorter than a minute is not a session (and its saving drowns in
        // the solver's tolerance).
        assert!(session_minutes("0.5").is_err());
        assert!(session_minutes("1").is_ok());
        assert_eq!(week_range("10-12"), Ok((10, 12)));
        assert_eq!(week_range("4"), Ok((4, 4)));
        for bad in ["12-10", "x", "1-", "-3", "1-2-3", ""] {
            assert!(week_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shell_words() {
        assert_eq!(
            shell_arg(Path::new("examcap-demo/plan.json")),
            "examcap-demo/plan.json"
        );
        assert_eq!(shell_arg(Path::new("my dir/it's")), r"'my dir/it'\''s'");
    }
}
