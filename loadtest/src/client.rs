//! The gRPC side: find what to book in the published plan, run the clients,
//! and read back the stock and the reservations for the check.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use examcap::proto::plan_service_client::PlanServiceClient;
use examcap::proto::registration_service_client::RegistrationServiceClient;
use examcap::proto::{
    CancelRequest, GetPublishedRequest, GetPublishedResponse, GetStockRequest,
    ListReservationsRequest, QuoteRequest, Reservation, ReservationState, ReserveRequest,
    StockCell,
};
use serde::Deserialize;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use crate::mix::{Mix, Op};
use crate::rng::Rng;
use crate::stats::{code_name, Outcome, RpcStats};
use crate::verify::{
    CellKey, Expect, Expected, Found, Listed, Listing, ReplayMismatch, Stock, StockCount,
};

/// Largest reply accepted: the published plan JSON of a national scenario is
/// a few MiB.
const MAX_MESSAGE: usize = 64 << 20;

/// Why the published plan gives nothing to book.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoverError {
    #[error("the published plan is not plan JSON with an allocation: {0}")]
    Plan(String),
    #[error("the published plan allocates no seats{0}")]
    Empty(String),
    /// A `--region` or `--exam` the published plan does not allocate.
    #[error("{flag}: {id:?} has no seats in the published plan")]
    Unknown { flag: &'static str, id: String },
}

impl DiscoverError {
    /// Whether the arguments, not the plan, are wrong: a filter naming
    /// what the plan does not allocate, or filters that together match
    /// nothing.
    pub fn is_bad_argument(&self) -> bool {
        match self {
            DiscoverError::Unknown { .. } => true,
            DiscoverError::Empty(filter) => !filter.is_empty(),
            DiscoverError::Plan(_) => false,
        }
    }
}

/// The (region, exam) pairs to book, weighted by their planned seats so the
/// load falls where the seats are, and the horizon's length.
#[derive(Debug, Clone, PartialEq)]
pub struct Targets {
    pairs: Vec<(String, String)>,
    /// Running totals of the pairs' seats, for a weighted draw.
    cumulative: Vec<u64>,
    pub horizon_weeks: u32,
}

#[derive(Deserialize)]
struct PlanDoc {
    scenario: Option<ScenarioRef>,
    allocation: Vec<Row>,
}

#[derive(Deserialize)]
struct ScenarioRef {
    horizon_weeks: u32,
}

#[derive(Deserialize)]
struct Row {
    region: String,
    exam: String,
    week: u32,
    candidates: u64,
}

impl Targets {
    /// The pairs of a plan's allocation, limited to `regions` and `exams`
    /// when those are not empty.
    pub fn from_plan_json(
        json: &str,
        regions: &[String],
        exams: &[String],
    ) -> Result<Targets, DiscoverError> {
        let doc: PlanDoc =
            serde_json::from_str(json).map_err(|e| DiscoverError::Plan(e.to_string()))?;
        let last_allocated = doc.allocation.iter().map(|r| r.week + 1).max().unwrap_or(0);
        let horizon_weeks = doc
            .scenario
            .map_or(last_allocated, |s| s.horizon_weeks.max(last_allocated));
        let keep = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
        for (flag, list, of_row) in [
            (
                "--region",
                regions,
                (|r: &Row| &r.region) as fn(&Row) -> &String,
            ),
            ("--exam", exams, |r: &Row| &r.exam),
        ] {
            let allocated: BTreeSet<&String> = doc
                .allocation
                .iter()
                .filter(|r| r.candidates > 0)
                .map(of_row)
                .collect();
            if let Some(id) = list.iter().find(|id| !allocated.contains(id)) {
                return Err(DiscoverError::Unknown {
                    flag,
                    id: id.clone(),
                });
            }
        }
        let mut seats: BTreeMap<(String, String), u64> = BTreeMap::new();
        for r in doc.allocation {
            if r.candidates > 0 && keep(regions, &r.region) && keep(exams, &r.exam) {
                *seats.entry((r.region, r.exam)).or_default() += r.candidates;
            }
        }
        if seats.is_empty() {
            let filter = if regions.is_empty() && exams.is_empty() {
                String::new()
            } else {
                format!(" for --region {regions:?} --exam {exams:?}")
            };
            return Err(DiscoverError::Empty(filter));
        }
        let mut total = 0;
        let (pairs, cumulative) = seats
            .into_iter()
            .map(|(pair, n)| {
                total += n;
                (pair, total)
            })
            .unzip();
        Ok(Targets {
            pairs,
            cumulative,
            horizon_weeks,
        })
    }

    /// A (region, exam) pair with probability proportional to its seats.
    pub fn pick(&self, rng: &mut Rng) -> (&str, &str) {
        let total = *self.cumulative.last().expect("targets are never empty");
        let x = rng.below(total);
        let i = self.cumulative.partition_point(|&c| c <= x);
        let (r, e) = &self.pairs[i];
        (r, e)
    }

    /// The exams booked, for the check.
    pub fn exams(&self) -> BTreeSet<String> {
        self.pairs.iter().map(|(_, e)| e.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }
}

/// Adds `authorization: Bearer <token>` to every call (when a token is set).
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    pub fn new(token: Option<&str>) -> anyhow::Result<Self> {
        token
            .map(|t| {
                format!("Bearer {t}")
                    .parse()
                    .map_err(|_| anyhow::anyhow!("--token: not printable ASCII"))
            })
            .transpose()
            .map(Bearer)
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

pub type RegClient = RegistrationServiceClient<InterceptedService<Channel, Bearer>>;

pub fn registration(channel: Channel, auth: Bearer) -> RegClient {
    RegistrationServiceClient::with_interceptor(channel, auth)
        .max_decoding_message_size(MAX_MESSAGE)
}

/// The published plan's bookable pairs.
pub async fn discover(
    channel: Channel,
    auth: Bearer,
    regions: &[String],
    exams: &[String],
) -> anyhow::Result<Targets> {
    let published = get_published(channel, auth).await?;
    Ok(Targets::from_plan_json(
        &published.plan_json,
        regions,
        exams,
    )?)
}

/// The published plan's id (empty when none is published), to tell
/// whether another plan was published while the load ran.
pub async fn published_id(channel: Channel, auth: Bearer) -> anyhow::Result<String> {
    let published = get_published(channel, auth).await?;
    Ok(published.summary.map(|s| s.plan_id).unwrap_or_default())
}

async fn get_published(channel: Channel, auth: Bearer) -> anyhow::Result<GetPublishedResponse> {
    let mut plans =
        PlanServiceClient::with_interceptor(channel, auth).max_decoding_message_size(MAX_MESSAGE);
    Ok(plans
        .get_published(GetPublishedRequest {})
        .await
        .map_err(|s| status("GetPublished", s))?
        .into_inner())
}

/// What every client shares.
pub struct Shared {
    pub mix: Mix,
    pub targets: Targets,
    /// `from_week` is drawn from `0..=max_from_week`.
    pub max_from_week: u32,
    pub seed: u64,
    /// Unique per run, so idempotency keys never repeat across runs on the
    /// same data.
    pub run_id: String,
    pub clients: usize,
    pub start: Instant,
    pub deadline: Instant,
    /// Open loop: each client sends one call every `interval`, on a fixed
    /// schedule from `start`; None: closed loop (next call when the last
    /// answer is in).
    pub interval: Option<Duration>,
    /// Calls started so far, against `max_requests`.
    pub issued: AtomicU64,
    pub max_requests: Option<u64>,
}

/// One client's record.
#[derive(Debug, Default)]
pub struct ClientLog {
    pub stats: BTreeMap<Op, RpcStats>,
    /// Every reservation it was answered about, with what it expects.
    pub expected: Expected,
    /// Reserve calls whose answer was lost: their keys (not checked, since
    /// whether they took a seat is unknown).
    pub unknown_reserves: u64,
    /// Replays of acknowledged Reserves that returned the same reservation.
    pub replays_ok: u64,
    /// And those that did not.
    pub replays_wrong: Vec<ReplayMismatch>,
}

/// Whether a failed call may still have changed the server.
fn outcome_unknown(code: Code) -> bool {
    matches!(
        code,
        Code::DeadlineExceeded
            | Code::Unavailable
            | Code::Cancelled
            | Code::Unknown
            | Code::Internal
    )
}

/// Every this many calls of a client, an acknowledged Reserve is sent again
/// with the same key and body; it must return the same reservation.
const REPLAY_EVERY: u64 = 32;

/// Sends an acknowledged Reserve again: the same reservation must come back,
/// marked as replayed. Not timed (it is a check, not load).
async fn replay_reserve(
    client: &mut RegClient,
    request: ReserveRequest,
    first: String,
    log: &mut ClientLog,
) {
    let key = request.idempotency_key.clone();
    let got = match client.reserve(request).await {
        Ok(r) => {
            let r = r.into_inner();
            match r.reservation {
                Some(res) if res.id == first && r.replayed => return log.replays_ok += 1,
                Some(res) => format!("{} (replayed: {})", res.id, r.replayed),
                None => "no reservation".to_string(),
            }
        }
        // The answer was lost: nothing learnt either way.
        Err(s) if outcome_unknown(s.code()) => return,
        Err(s) => code_name(s.code()).to_string(),
    };
    log.replays_wrong.push(ReplayMismatch { key, first, got });
}

/// Where in each interval client `index` sends: spread evenly, so the
/// clients do not fire in one burst.
fn stagger(every: Duration, index: usize, clients: usize) -> Duration {
    every.mul_f64(index as f64 / clients.max(1) as f64)
}

/// tokio's timers tick in whole milliseconds and round a deadline up to the
/// next tick, so a sleep until the scheduled time wakes up to a millisecond
/// late, and that lateness counts as latency. The open loop sleeps until one
/// tick before (see [`counted_from`]).
const TIMER_TICK: Duration = Duration::from_millis(1);

/// When an open-loop client wakes for a call scheduled `at`: one timer tick
/// early, so it sends within about a tick of `at` instead of up to a tick
/// after it.
fn wake_for(at: Instant) -> Instant {
    at.checked_sub(TIMER_TICK).unwrap_or(at)
}

/// Where the latency of a call scheduled `at` and sent at `sent` counts
/// from: the scheduled time, or the send if that was earlier. Never later
/// than the schedule (a late send still counts its wait: no coordinated
/// omission), and an early send counts from when it went out, so each
/// latency is at least what it would have been measured from `at`.
fn counted_from(at: Instant, sent: Instant) -> Instant {
    at.min(sent)
}

/// Runs one client until the deadline or the request budget.
pub async fn run_client(index: usize, shared: Arc<Shared>, mut client: RegClient) -> ClientLog {
    let mut rng = Rng::for_client(shared.seed, index);
    let mut log = ClientLog::default();
    // Its own active reservations: the ones Cancel may pick.
    let mut active: Vec<String> = Vec::new();
    let mut n = 0u64;
    loop {
        if Instant::now() >= shared.deadline {
            break;
        }
        if let Some(max) = shared.max_requests {
            if shared.issued.fetch_add(1, Ordering::Relaxed) >= max {
                break;
            }
        }
        // Open loop: latency counts from the scheduled send time, so a
        // server that falls behind shows as queueing instead of a client
        // that politely waits (coordinated omission).
        let scheduled = match shared.interval {
            Some(every) => {
                let at =
                    shared.start + every.mul_f64(n as f64) + stagger(every, index, shared.clients);
                if at >= shared.deadline {
                    break;
                }
                tokio::time::sleep_until(wake_for(at).into()).await;
                counted_from(at, Instant::now())
            }
            None => Instant::now(),
        };
        n += 1;
        let mut op = shared.mix.pick(rng.next_u64());
        // Nothing of its own to cancel yet: book one instead.
        if op == Op::Cancel && active.is_empty() {
            op = Op::Reserve;
        }
        let (region, exam) = shared.targets.pick(&mut rng);
        let from_week = rng.below(u64::from(shared.max_from_week) + 1) as u32;
        let mut replay = None;
        let outcome = match op {
            Op::Quote => {
                let r = client
                    .quote(QuoteRequest {
                        region: region.to_string(),
                        exam: exam.to_string(),
                        from_week,
                        max_offers: 3,
                    })
                    .await;
                r.map_or_else(|s| Outcome::Error(s.code()), |_| Outcome::Ok)
            }
            Op::Reserve => {
                let request = ReserveRequest {
                    idempotency_key: format!("lt-{}-{index}-{n}", shared.run_id),
                    candidate_ref: format!("cand-{}-{index}-{n}", shared.run_id),
                    region: region.to_string(),
                    exam: exam.to_string(),
                    location: None,
                    week: None,
                    from_week,
                };
                let r = client.reserve(request.clone()).await;
                match r.map(|r| r.into_inner().reservation) {
                    Ok(Some(res)) => {
                        let cell = CellKey::of_reservation(&res);
                        log.expected.insert(res.id.clone(), (cell, Expect::Active));
                        if n % REPLAY_EVERY == 0 {
                            replay = Some((request, res.id.clone()));
                        }
                        active.push(res.id);
                        Outcome::Ok
                    }
                    Ok(None) => Outcome::Malformed,
                    Err(s) if s.code() == Code::ResourceExhausted => Outcome::SoldOut,
                    Err(s) => {
                        if outcome_unknown(s.code()) {
                            log.unknown_reserves += 1;
                        }
                        Outcome::Error(s.code())
                    }
                }
            }
            Op::Cancel => {
                let i = rng.below(active.len() as u64) as usize;
                let id = active.swap_remove(i);
                let r = client
                    .cancel(CancelRequest {
                        reservation_id: id.clone(),
                    })
                    .await;
                let entry = log.expected.get_mut(&id).map(|e| &mut e.1);
                match r {
                    Ok(_) => {
                        if let Some(e) = entry {
                            *e = Expect::Cancelled;
                        }
                        Outcome::Ok
                    }
                    Err(s) => {
                        if let Some(e) = entry {
                            *e = Expect::Either;
                        }
                        Outcome::Error(s.code())
                    }
                }
            }
        };
        log.stats
            .entry(op)
            .or_default()
            .record(scheduled.elapsed(), outcome);
        if let Some((request, first)) = replay {
            replay_reserve(&mut client, request, first, &mut log).await;
        }
    }
    log
}

/// A failed call as `RPC: CODE: message`.
fn status(rpc: &str, s: Status) -> anyhow::Error {
    anyhow::anyhow!("{rpc}: {}: {}", code_name(s.code()), s.message())
}

impl CellKey {
    /// The cell a reservation holds a seat in, by its calendar week.
    pub fn of_reservation(r: &Reservation) -> CellKey {
        CellKey {
            location: r.location.clone(),
            exam: r.exam.clone(),
            iso_week: r.iso_week.clone(),
        }
    }

    /// A GetStock cell, by its calendar week.
    pub fn of_stock(c: &StockCell) -> CellKey {
        CellKey {
            location: c.location.clone(),
            exam: c.exam.clone(),
            iso_week: c.iso_week.clone(),
        }
    }
}

/// GetStock of `exams`, every week and location.
pub async fn stock(client: &mut RegClient, exams: &BTreeSet<String>) -> anyhow::Result<Stock> {
    let mut out = Stock::new();
    for exam in exams {
        let r = client
            .get_stock(GetStockRequest {
                exam: exam.clone(),
                from_week: 0,
                to_week: None,
                location: String::new(),
            })
            .await
            .map_err(|s| status("GetStock", s))?
            .into_inner();
        for c in r.cells {
            out.insert(
                CellKey::of_stock(&c),
                StockCount {
                    planned: c.planned,
                    reserved: c.reserved,
                    conflict: c.conflict,
                },
            );
        }
    }
    Ok(out)
}

/// Every reservation of `exams`, cancelled ones included, page by page.
pub async fn list_all(client: &mut RegClient, exams: &BTreeSet<String>) -> anyhow::Result<Listing> {
    let mut out = Listing::new();
    for exam in exams {
        let mut token = String::new();
        loop {
            let r = client
                .list_reservations(ListReservationsRequest {
                    exam: exam.clone(),
                    include_cancelled: true,
                    page_size: 1000,
                    page_token: token.clone(),
                    ..Default::default()
                })
                .await
                .map_err(|s| status("ListReservations", s))?
                .into_inner();
            for res in r.reservations {
                let state = match ReservationState::try_from(res.state) {
                    Ok(ReservationState::Active) => Listed::Active,
                    Ok(ReservationState::Cancelled) => Listed::Cancelled,
                    _ => Listed::Other(res.state),
                };
                let cell = CellKey::of_reservation(&res);
                out.insert(res.id, Found { state, cell });
            }
            if r.next_page_token.is_empty() {
                break;
            }
            anyhow::ensure!(
                r.next_page_token != token,
                "ListReservations: the server returned the same page token twice ({token:?})"
            );
            token = r.next_page_token;
        }
    }
    Ok(out)
}

/// How long a single call may take before it counts as DEADLINE_EXCEEDED.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = r#"{"format":"examcap/plan@1","scenario":{"horizon_weeks":8},"allocation":[
        {"region":"R1","exam":"KNM","location":"AMS","week":0,"candidates":30},
        {"region":"R1","exam":"KNM","location":"AMS","week":3,"candidates":10},
        {"region":"R2","exam":"KNM","location":"UTR","week":1,"candidates":0},
        {"region":"R2","exam":"B1","location":"UTR","week":5,"candidates":60}
    ],"other":{"ignored":true}}"#;

    /// After a re-publish whose plan starts a week later, a seat taken in
    /// the old plan's week 2 is the new plan's week 1: the same cell, and
    /// the check must see it so (found by an independent review: every such
    /// cell was a "stock/list mismatch" and the run failed).
    #[test]
    fn a_reservation_and_the_stock_meet_in_their_calendar_week() {
        let res = Reservation {
            location: "AMS".into(),
            exam: "KNM".into(),
            week: 2,
            iso_week: "2027-W04".into(),
            state: ReservationState::Active as i32,
            ..Default::default()
        };
        let cell = StockCell {
            location: "AMS".into(),
            exam: "KNM".into(),
            week: 1,
            iso_week: "2027-W04".into(),
            planned: 5,
            reserved: 1,
            ..Default::default()
        };
        let key = CellKey::of_stock(&cell);
        assert_eq!(CellKey::of_reservation(&res), key);

        let mut after = Stock::new();
        after.insert(
            key.clone(),
            StockCount {
                planned: 5,
                reserved: 1,
                conflict: 0,
            },
        );
        let mut listed = Listing::new();
        listed.insert(
            "r1".into(),
            Found {
                state: Listed::Active,
                cell: CellKey::of_reservation(&res),
            },
        );
        let mut expected = Expected::new();
        expected.insert("r1".into(), (key, Expect::Active));
        let v = crate::verify::verify(&after, &after, &expected, &listed, None);
        assert!(v.passed(), "{v:?}");
    }

    #[test]
    fn open_loop_latency_counts_from_the_schedule_or_an_earlier_send() {
        let at = Instant::now() + Duration::from_secs(1);
        assert_eq!(wake_for(at), at - TIMER_TICK);
        // Late: from the schedule, so the wait counts.
        let late = at + Duration::from_micros(700);
        assert_eq!(counted_from(at, late), at);
        // Early: from the send.
        let early = at - Duration::from_micros(300);
        assert_eq!(counted_from(at, early), early);
        assert_eq!(counted_from(at, at), at);
    }

    #[test]
    fn targets_are_weighted_by_planned_seats() {
        let t = Targets::from_plan_json(PLAN, &[], &[]).unwrap();
        assert_eq!(t.horizon_weeks, 8);
        // R2/KNM has no seats: never booked.
        assert_eq!(t.len(), 2);
        assert_eq!(t.exams().into_iter().collect::<Vec<_>>(), ["B1", "KNM"]);
        let mut rng = Rng::for_client(1, 0);
        let mut n = BTreeMap::<(String, String), u32>::new();
        for _ in 0..10_000 {
            let (r, e) = t.pick(&mut rng);
            *n.entry((r.into(), e.into())).or_default() += 1;
        }
        // 40 seats against 60: 40% and 60%, within a couple of percent.
        let knm = n[&("R1".to_string(), "KNM".to_string())];
        assert!((3_800..=4_200).contains(&knm), "{n:?}");
        assert_eq!(n.values().sum::<u32>(), 10_000);
    }

    #[test]
    fn filters_limit_the_targets_and_an_empty_result_is_an_error() {
        let t = Targets::from_plan_json(PLAN, &["R1".into()], &[]).unwrap();
        assert_eq!(t.len(), 1);
        let e = Targets::from_plan_json(PLAN, &["R2".into()], &["KNM".into()]).unwrap_err();
        assert!(
            matches!(e, DiscoverError::Empty(ref f) if f.contains("R2")),
            "{e}"
        );
        assert!(e.is_bad_argument());
        // An id the plan does not allocate is named with its flag.
        for (regions, exams, flag, id) in [
            (vec!["R1".into(), "NOPE".into()], vec![], "--region", "NOPE"),
            (vec![], vec!["XYZ".into()], "--exam", "XYZ"),
        ] {
            let e = Targets::from_plan_json(PLAN, &regions, &exams).unwrap_err();
            assert_eq!(
                e,
                DiscoverError::Unknown {
                    flag,
                    id: id.into()
                }
            );
            assert!(e.is_bad_argument());
        }
        // A scenario reference must carry the horizon; with no reference at
        // all, the last allocated week bounds it.
        let t = Targets::from_plan_json(&PLAN.replace("\"horizon_weeks\":8", "\"x\":0"), &[], &[]);
        assert!(t.is_err(), "the scenario reference has no horizon");
        let no_ref =
            r#"{"allocation":[{"region":"R","exam":"E","location":"L","week":4,"candidates":1}]}"#;
        assert_eq!(
            Targets::from_plan_json(no_ref, &[], &[])
                .unwrap()
                .horizon_weeks,
            5
        );
        let e = Targets::from_plan_json("{\"allocation\":[]}", &[], &[]).unwrap_err();
        assert_eq!(e, DiscoverError::Empty(String::new()));
        assert!(!e.is_bad_argument());
        let e = Targets::from_plan_json("not json", &[], &[]).unwrap_err();
        assert!(matches!(e, DiscoverError::Plan(_)));
    }
}
