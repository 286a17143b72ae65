//! `loadtest`: N concurrent gRPC clients send a seeded mix of Quote, Reserve
//! and Cancel to examcap's RegistrationService for a duration or a request
//! count, then report throughput and latency per RPC and check, through
//! GetStock and ListReservations, that nothing was oversold and no
//! acknowledged reservation was lost. Exit 0 when the check passes, 1 when
//! it fails (or an RPC of the mix never succeeded), 2 on bad arguments.
#![forbid(unsafe_code)]

mod client;
mod mix;
mod rng;
mod stats;
mod target;
mod verify;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use crate::client::{Bearer, ClientLog, Shared, CALL_TIMEOUT};
use crate::mix::{Mix, Op};
use crate::stats::{render_table, RpcStats, RpcSummary};
use crate::verify::{render_verdict, verify, Republished, Verdict};

/// Longest run accepted.
const MAX_DURATION: Duration = Duration::from_secs(3600);
/// Time cap of a run given only `--requests`.
const REQUESTS_TIME_CAP: Duration = Duration::from_secs(600);
/// HTTP/2 connections when `--connections` is not given.
const DEFAULT_CONNECTIONS: u32 = 8;
/// Most requests accepted.
const MAX_REQUESTS: u64 = 100_000_000;

/// Load-test examcap's RegistrationService (Quote, Reserve, Cancel) and
/// check that nothing is oversold and no acknowledged reservation is lost.
#[derive(Debug, Parser)]
#[command(
    name = "loadtest",
    version,
    after_help = "Exit codes: 0 the check passed; 1 oversold, lost acks, or an RPC of \
                  the mix that never succeeded (Reserve: neither a seat nor sold out); \
                  2 invalid arguments."
)]
struct Cli {
    /// The examcap server; loopback only unless --allow-remote.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    server: String,
    /// Bearer token with the registration role (default: $EXAMCAP_TOKEN;
    /// none: no authorization header).
    #[arg(long)]
    token: Option<String>,
    /// Concurrent clients, each with one call in flight (1..=1024).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    clients: u32,
    /// HTTP/2 connections the clients share, round-robin (default 8, at most
    /// one per client). Fewer connections batch more calls per write: on 2
    /// cores, 8 gave about twice the Quote throughput of 64 (BENCHMARKS.md).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    connections: Option<u32>,
    /// Threads of the load generator's runtime (default: half the cores, at
    /// least 1). On loopback the clients share the machine with the server:
    /// with more runnable threads than cores, calls wait in the run queue
    /// and that wait shows as latency (BENCHMARKS.md).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: Option<u32>,
    /// Run this long, e.g. 60s, 2m, 500ms (at most 1h).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Stop after this many calls in all (at most 100000000; with no
    /// --duration, the run still stops after 10 minutes).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_REQUESTS))]
    requests: Option<u64>,
    /// Open loop: send this many calls per second in all, on a fixed schedule
    /// (latency counted from the scheduled time, so queueing shows); default:
    /// closed loop, each client sends its next call when the last is answered.
    #[arg(long, value_name = "CALLS_PER_S", value_parser = parse_rate)]
    rate: Option<f64>,
    /// Weights of the RPCs. A Cancel drawn by a client with no reservation of
    /// its own becomes a Reserve.
    #[arg(long, default_value = "quote=80,reserve=15,cancel=5")]
    mix: Mix,
    /// Only these regions (repeatable; default: every region of the published plan).
    #[arg(long)]
    region: Vec<String>,
    /// Only these exams (repeatable; default: every exam of the published plan).
    #[arg(long)]
    exam: Vec<String>,
    /// Candidates register in weeks 0..=W, drawn uniformly (default: half the horizon).
    #[arg(long, value_name = "W")]
    max_from_week: Option<u32>,
    /// Seed of every client's choices (the same seed repeats the same choices).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Allow a server that is not on this machine.
    #[arg(long)]
    allow_remote: bool,
    /// Print the summary as one JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
}

/// `60s`, `2m`, `1h`, `500ms`, or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let bad = || format!("expected a duration like 60s, 2m, 500ms, got {s:?}");
    let v: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(bad()),
    };
    if !(secs > 0.0 && secs <= MAX_DURATION.as_secs_f64()) {
        return Err(format!("{s:?}: must be > 0 and at most 1h"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 1e7 => Ok(v),
        _ => Err(format!("must be calls per second in (0, 1e7], got {s:?}")),
    }
}

/// The `--json` document.
#[derive(Debug, Serialize)]
struct Summary {
    server: String,
    clients: u32,
    connections: u32,
    /// The load generator's runtime threads.
    threads: usize,
    mix: String,
    /// Open-loop calls per second, if set.
    rate: Option<f64>,
    seed: u64,
    targets: usize,
    elapsed_seconds: f64,
    rpcs: Vec<RpcSummary>,
    /// Reserve calls whose answer was lost (not checked).
    unknown_reserves: u64,
    verification: Verdict,
    passed: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let uri = match target::check_server(&cli.server, cli.allow_remote) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("loadtest: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.duration.is_none() && cli.requests.is_none() {
        eprintln!("loadtest: give --duration, --requests or both");
        return ExitCode::from(2);
    }
    let threads = cli.threads.map_or_else(default_threads, |n| n as usize);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadtest: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, uri, threads)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) if e.downcast_ref::<BadArgument>().is_some() => {
            eprintln!("loadtest: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("loadtest: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// An argument found wrong only against the published plan: exit 2, as
/// the arguments clap refuses.
#[derive(Debug)]
struct BadArgument(String);

impl std::fmt::Display for BadArgument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadArgument {}

/// Writes the report to stdout ([`examcap::client::write_stdout`]: a
/// closed pipe is not an error, and not a panic as `println!` makes it).
fn emit(text: &str) -> anyhow::Result<()> {
    examcap::client::write_stdout(text).context("cannot write to stdout")
}

/// `--threads` when not given: half the cores, at least 1.
fn default_threads() -> usize {
    (std::thread::available_parallelism().map_or(1, |n| n.get()) / 2).max(1)
}

/// Runs the load and the check; `Ok(passed)`.
/// `threads` is the runtime's worker count, for the report.
async fn run(cli: Cli, uri: tonic::transport::Uri, threads: usize) -> anyhow::Result<bool> {
    let token = cli
        .token
        .clone()
        .or_else(|| std::env::var("EXAMCAP_TOKEN").ok());
    let auth = Bearer::new(token.as_deref())?;
    let endpoint = Endpoint::from(uri)
        .connect_timeout(Duration::from_secs(5))
        .timeout(CALL_TIMEOUT);
    let connections = cli
        .connections
        .unwrap_or(DEFAULT_CONNECTIONS)
        .min(cli.clients);
    let mut channels: Vec<Channel> = Vec::new();
    for _ in 0..connections {
        let ch = endpoint
            .connect()
            .await
            .with_context(|| format!("connecting to {}", cli.server))?;
        channels.push(ch);
    }
    let targets =
        match client::discover(channels[0].clone(), auth.clone(), &cli.region, &cli.exam).await {
            Ok(t) => t,
            // A filter the plan does not allocate is a wrong argument: exit 2.
            Err(e) => match e.downcast_ref::<client::DiscoverError>() {
                Some(d) if d.is_bad_argument() => return Err(BadArgument(d.to_string()).into()),
                _ => return Err(e.context("reading the published plan")),
            },
        };
    let exams = targets.exams();
    let mut checker = client::registration(channels[0].clone(), auth.clone());
    let plan_before = client::published_id(channels[0].clone(), auth.clone()).await?;
    let before = client::stock(&mut checker, &exams)
        .await
        .context("stock before the run")?;
    let max_from_week = match cli.max_from_week {
        None => targets.horizon_weeks.saturating_sub(1) / 2,
        // Past the horizon every Quote and Reserve is INVALID_ARGUMENT: a
        // run that sent them would measure the refusals.
        Some(w) if w >= targets.horizon_weeks => {
            return Err(BadArgument(format!(
                "--max-from-week: {w} is past the published plan's horizon of {} weeks \
                 (at most {})",
                targets.horizon_weeks,
                targets.horizon_weeks.saturating_sub(1)
            ))
            .into());
        }
        Some(w) => w,
    };
    let time_cap = cli.duration.unwrap_or(REQUESTS_TIME_CAP);
    let run_id = {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        format!("{ms:x}{:x}", std::process::id())
    };
    let n_targets = targets.len();
    let start = Instant::now();
    let shared = Arc::new(Shared {
        mix: cli.mix,
        targets,
        max_from_week,
        seed: cli.seed,
        run_id,
        clients: cli.clients as usize,
        start,
        deadline: start + time_cap,
        interval: cli
            .rate
            .map(|r| Duration::from_secs_f64(f64::from(cli.clients) / r)),
        issued: AtomicU64::new(0),
        max_requests: cli.requests,
    });
    let tasks: Vec<_> = (0..cli.clients as usize)
        .map(|i| {
            let c = client::registration(channels[i % channels.len()].clone(), auth.clone());
            tokio::spawn(client::run_client(i, Arc::clone(&shared), c))
        })
        .collect();
    let mut logs: Vec<ClientLog> = Vec::new();
    for t in tasks {
        logs.push(t.await.context("a client task panicked")?);
    }
    let elapsed = start.elapsed();

    let mut stats: BTreeMap<Op, RpcStats> = BTreeMap::new();
    let mut expected = BTreeMap::new();
    let mut unknown_reserves = 0;
    let (mut replays_checked, mut replays_wrong) = (0, Vec::new());
    for log in logs {
        replays_checked += log.replays_ok + log.replays_wrong.len() as u64;
        replays_wrong.extend(log.replays_wrong);
        for (op, s) in &log.stats {
            stats.entry(*op).or_default().merge(s);
        }
        expected.extend(log.expected);
        unknown_reserves += log.unknown_reserves;
    }
    let rows: Vec<RpcSummary> = stats
        .iter()
        .map(|(op, s)| s.summary(*op, elapsed))
        .collect();
    let succeeded: u64 = rows.iter().map(|r| r.ok).sum();

    let after = client::stock(&mut checker, &exams)
        .await
        .context("stock after the run")?;
    let listed = client::list_all(&mut checker, &exams)
        .await
        .context("listing the reservations")?;
    let plan_after = client::published_id(channels[0].clone(), auth.clone()).await?;
    let republished = (plan_after != plan_before).then_some(Republished { unknown_reserves });
    let mut verdict = verify(&before, &after, &expected, &listed, republished);
    verdict.replays_checked = replays_checked;
    verdict.replays_wrong = replays_wrong;
    let never = stats::never_succeeded(&rows);
    let passed = verdict.passed() && succeeded > 0 && never.is_empty();

    let mut out = String::new();
    if cli.json {
        let mut verification = verdict;
        verification.oversold.truncate(100);
        verification.lost.truncate(100);
        verification.mismatched.truncate(100);
        verification.replays_wrong.truncate(100);
        let summary = Summary {
            server: cli.server,
            clients: cli.clients,
            connections,
            threads,
            mix: cli.mix.to_string(),
            rate: cli.rate,
            seed: cli.seed,
            targets: n_targets,
            elapsed_seconds: elapsed.as_secs_f64(),
            rpcs: rows,
            unknown_reserves,
            verification,
            passed,
        };
        out = serde_json::to_string_pretty(&summary)? + "\n";
    } else {
        let _ = writeln!(
            out,
            "loadtest: {} against {}: {} clients over {} connections ({threads} thread{}), \
             mix {}, seed {}, {}{} (region, exam) pairs, from_week 0..={max_from_week}, {:.1} s",
            if passed { "passed" } else { "FAILED" },
            cli.server,
            cli.clients,
            connections,
            if threads == 1 { "" } else { "s" },
            cli.mix,
            cli.seed,
            cli.rate
                .map_or(String::new(), |r| format!("open loop {r} calls/s, ")),
            n_targets,
            elapsed.as_secs_f64()
        );
        out += &render_table(&rows);
        if unknown_reserves > 0 {
            let _ = writeln!(
                out,
                "reserve calls with a lost answer (not checked): {unknown_reserves}"
            );
        }
        if succeeded == 0 {
            out += "no call succeeded\n";
        }
        for line in &never {
            let _ = writeln!(out, "{line}");
        }
        out += &render_verdict(&verdict);
    }
    emit(&out)?;
    Ok(passed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_take_units_and_are_capped() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("60"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h"), Ok(MAX_DURATION));
        assert_eq!(parse_rate("15000"), Ok(15000.0));
        for bad in ["0", "-5", "NaN", "inf", "x", "1e8"] {
            assert!(parse_rate(bad).is_err(), "{bad:?}");
        }
        for bad in ["", "0s", "-1s", "2h", "1d", "abc", "1.2.3s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn arguments_parse_into_the_run() {
        let cli = Cli::try_parse_from([
            "loadtest",
            "--clients",
            "8",
            "--requests",
            "300",
            "--mix",
            "reserve=1",
            "--exam",
            "KNM",
            "--exam",
            "B1",
        ])
        .unwrap();
        assert_eq!(cli.clients, 8);
        assert_eq!(cli.requests, Some(300));
        assert_eq!(cli.mix.weight(Op::Reserve), 1);
        assert_eq!(cli.exam, ["KNM", "B1"]);
        assert_eq!(cli.server, "http://127.0.0.1:50051");
        assert_eq!(cli.threads, None);
        assert!(default_threads() >= 1);
        let cli = Cli::try_parse_from(["loadtest", "--threads", "1", "--duration", "1s"]).unwrap();
        assert_eq!(cli.threads, Some(1));
        assert!(Cli::try_parse_from(["loadtest", "--threads", "0"]).is_err());
        assert!(Cli::try_parse_from(["loadtest", "--clients", "0"]).is_err());
        assert!(Cli::try_parse_from(["loadtest", "--mix", "reschedule=1"]).is_err());
    }
}
