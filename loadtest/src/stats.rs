//! What each RPC did: a latency histogram (microseconds) and the outcomes,
//! kept per client and merged at the end, so recording never takes a lock.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use tonic::Code;

use crate::mix::Op;

/// Highest latency the histograms track: a minute, far above any request
/// timeout; longer ones are recorded as a minute.
const MAX_LATENCY_US: u64 = 60_000_000;

/// How one call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// RESOURCE_EXHAUSTED from Reserve: the cells were full. The service
    /// doing its job, not a failure.
    SoldOut,
    Error(Code),
    /// An OK reply without the message the contract promises (e.g. Reserve
    /// without a reservation): a server bug, counted as a failure.
    Malformed,
}

/// The canonical gRPC name of a status code, as in the gRPC spec.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// One RPC's record.
#[derive(Debug, Clone)]
pub struct RpcStats {
    latency_us: Histogram<u64>,
    ok: u64,
    sold_out: u64,
    errors: BTreeMap<&'static str, u64>,
}

impl Default for RpcStats {
    fn default() -> Self {
        RpcStats {
            latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("1..=60e6 with 3 significant digits is a valid histogram"),
            ok: 0,
            sold_out: 0,
            errors: BTreeMap::new(),
        }
    }
}

impl RpcStats {
    pub fn record(&mut self, latency: Duration, outcome: Outcome) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_us.saturating_record(us.max(1));
        match outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::SoldOut => self.sold_out += 1,
            Outcome::Error(code) => *self.errors.entry(code_name(code)).or_default() += 1,
            Outcome::Malformed => *self.errors.entry("MALFORMED_REPLY").or_default() += 1,
        }
    }

    pub fn merge(&mut self, other: &RpcStats) {
        self.latency_us
            .add(&other.latency_us)
            .expect("histograms with the same bounds always add");
        self.ok += other.ok;
        self.sold_out += other.sold_out;
        for (code, n) in &other.errors {
            *self.errors.entry(code).or_default() += n;
        }
    }

    pub fn count(&self) -> u64 {
        self.latency_us.len()
    }

    /// The summary over `elapsed` (the measured run time).
    pub fn summary(&self, op: Op, elapsed: Duration) -> RpcSummary {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let q = |q: f64| {
            if self.count() == 0 {
                0
            } else {
                self.latency_us.value_at_quantile(q)
            }
        };
        RpcSummary {
            rpc: op.name(),
            count: self.count(),
            ok: self.ok,
            sold_out: self.sold_out,
            errors: self.errors.clone(),
            per_second: self.count() as f64 / secs,
            ok_per_second: self.ok as f64 / secs,
            latency_us: Latency {
                p50: q(0.50),
                p90: q(0.90),
                p99: q(0.99),
                max: if self.count() == 0 {
                    0
                } else {
                    self.latency_us.max()
                },
            },
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

/// One RPC's line of the report (and its `--json` object).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RpcSummary {
    pub rpc: &'static str,
    /// Calls answered (any outcome).
    pub count: u64,
    pub ok: u64,
    /// Reserve calls answered RESOURCE_EXHAUSTED (sold out); not failures.
    pub sold_out: u64,
    /// Failures by gRPC code.
    pub errors: BTreeMap<&'static str, u64>,
    pub per_second: f64,
    pub ok_per_second: f64,
    pub latency_us: Latency,
}

fn ms(us: u64) -> String {
    format!("{}.{:03}", us / 1000, us % 1000)
}

/// The report table: one line per RPC, latencies in milliseconds with
/// microsecond precision.
pub fn render_table(rows: &[RpcSummary]) -> String {
    let mut out = format!(
        "{:<8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}  errors\n",
        "rpc", "count", "req/s", "ok/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "sold out"
    );
    for r in rows {
        let errors = if r.errors.is_empty() {
            "-".to_string()
        } else {
            r.errors
                .iter()
                .map(|(c, n)| format!("{c}={n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            out,
            "{:<8} {:>9} {:>9.1} {:>9.1} {:>9} {:>9} {:>9} {:>9} {:>9}  {errors}",
            r.rpc,
            r.count,
            r.per_second,
            r.ok_per_second,
            ms(r.latency_us.p50),
            ms(r.latency_us.p90),
            ms(r.latency_us.p99),
            ms(r.latency_us.max),
            r.sold_out,
        );
    }
    out
}

/// The RPCs of the run that were called but never answered as they should
/// be: no OK (and, for Reserve, no "sold out" either). A run whose every
/// Reserve was refused (a token without the registration role, say) has
/// checked nothing about overselling, whatever its Quotes did.
pub fn never_succeeded(rows: &[RpcSummary]) -> Vec<String> {
    rows.iter()
        .filter(|r| r.count > 0 && r.ok + r.sold_out == 0)
        .map(|r| {
            let codes: Vec<String> = r.errors.iter().map(|(c, n)| format!("{c} {n}")).collect();
            format!("{}: no call succeeded ({})", r.rpc, codes.join(", "))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rpc_never_answered_ok_is_named_and_sold_out_counts_as_answered() {
        let mut quote = RpcStats::default();
        quote.record(us(100), Outcome::Ok);
        let mut reserve = RpcStats::default();
        reserve.record(us(100), Outcome::Error(Code::PermissionDenied));
        reserve.record(us(100), Outcome::Error(Code::PermissionDenied));
        let d = Duration::from_secs(1);
        let rows = [quote.summary(Op::Quote, d), reserve.summary(Op::Reserve, d)];
        assert_eq!(
            never_succeeded(&rows),
            ["Reserve: no call succeeded (PERMISSION_DENIED 2)"]
        );
        let mut sold_out = RpcStats::default();
        sold_out.record(us(100), Outcome::SoldOut);
        assert!(never_succeeded(&[rows[0].clone(), sold_out.summary(Op::Reserve, d)]).is_empty());
    }

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn percentiles_and_rates_come_from_the_recorded_calls() {
        let mut s = RpcStats::default();
        // 1..=1000 µs once each: p50 ≈ 500, p90 ≈ 900, p99 ≈ 990, max 1000.
        for v in 1..=1000 {
            s.record(us(v), Outcome::Ok);
        }
        let r = s.summary(Op::Quote, Duration::from_secs(2));
        assert_eq!(r.count, 1000);
        assert_eq!(r.ok, 1000);
        assert_eq!((r.latency_us.p50, r.latency_us.p90), (500, 900));
        assert_eq!((r.latency_us.p99, r.latency_us.max), (990, 1000));
        assert_eq!(r.per_second, 500.0);
    }

    #[test]
    fn outcomes_are_counted_apart_and_merge_adds_up() {
        let mut a = RpcStats::default();
        a.record(us(100), Outcome::Ok);
        a.record(us(200), Outcome::SoldOut);
        a.record(us(300), Outcome::Error(Code::Unavailable));
        let mut b = RpcStats::default();
        b.record(us(5_000), Outcome::Error(Code::Unavailable));
        b.record(us(50), Outcome::Error(Code::Internal));
        b.record(us(60), Outcome::Malformed);
        // Beyond the histogram's top: saturates, still counted.
        b.record(Duration::from_secs(3600), Outcome::Ok);
        a.merge(&b);
        let r = a.summary(Op::Reserve, Duration::from_secs(1));
        assert_eq!((r.count, r.ok, r.sold_out), (7, 2, 1));
        assert_eq!(r.errors.values().sum::<u64>(), 4);
        assert_eq!(r.errors.get("MALFORMED_REPLY"), Some(&1));
        assert_eq!(r.errors.get("UNAVAILABLE"), Some(&2));
        assert_eq!(r.errors.get("INTERNAL"), Some(&1));
        assert_eq!(r.ok_per_second, 2.0);
        assert!(r.latency_us.max >= MAX_LATENCY_US, "{:?}", r.latency_us);
    }

    #[test]
    fn an_rpc_never_called_reports_zeros() {
        let r = RpcStats::default().summary(Op::Cancel, Duration::from_secs(1));
        assert_eq!(r.count, 0);
        assert_eq!(
            r.latency_us,
            Latency {
                p50: 0,
                p90: 0,
                p99: 0,
                max: 0
            }
        );
    }

    #[test]
    fn the_table_shows_milliseconds_to_the_microsecond_and_errors_by_code() {
        let mut s = RpcStats::default();
        s.record(us(1_234), Outcome::Ok);
        s.record(us(1_234), Outcome::Error(Code::DeadlineExceeded));
        s.record(us(1_234), Outcome::SoldOut);
        let quiet = RpcStats::default();
        let t = render_table(&[
            s.summary(Op::Reserve, Duration::from_secs(1)),
            quiet.summary(Op::Cancel, Duration::from_secs(1)),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("rpc"), "{t}");
        let cols: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            cols,
            [
                "Reserve",
                "3",
                "3.0",
                "1.0",
                "1.234",
                "1.234",
                "1.234",
                "1.234",
                "1",
                "DEADLINE_EXCEEDED=1"
            ],
            "{t}"
        );
        assert!(
            lines[2].starts_with("Cancel") && lines[2].ends_with(" -"),
            "{t}"
        );
    }

    #[test]
    fn every_code_has_its_canonical_name() {
        assert_eq!(code_name(Code::ResourceExhausted), "RESOURCE_EXHAUSTED");
        assert_eq!(code_name(Code::Unauthenticated), "UNAUTHENTICATED");
        assert_eq!(code_name(Code::from_i32(14)), "UNAVAILABLE");
    }
}
