//! The gRPC handlers of `examcap.v1`, the conversions between proto messages
//! and solver types, and [`ApiError`]: every failure of a request, with the
//! one exhaustive mapping to a gRPC status code ([`ApiError::code`]).
//!
//! Solves run on tokio's blocking pool (HiGHS is synchronous and CPU-bound)
//! behind a [`SolveGate`]: at most N at once plus a bounded queue, so a burst
//! of solve requests is turned away with RESOURCE_EXHAUSTED instead of
//! piling up. Store calls also run on the blocking pool, since they fsync.

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use examcap_solver::duals::CapacityRef;
use examcap_solver::plan::plan_scenario_cancellable;
use examcap_solver::plan::{PlanError, PlanStatus, MAX_RECOMMENDATIONS};
use examcap_solver::solve::SolveError;
use examcap_solver::validate::{FieldError, Num, ValidationErrors};
use examcap_solver::waits::{ExamWaits, Percentile};
use examcap_solver::{parse_scenario, Plan, PlanOptions, Scenario};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::Stream;
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};
use tracing::Instrument;

use crate::auth::{Auth, AuthError, Caller, Role, Rpc};
use crate::drill::{self, CapacityTarget, DemandChange, ShockSpec};
use crate::proto;
use crate::store::{AuditEntry, PlanRecord, ScenarioHead, ScenarioRecord, Store, StoreError};

/// Recommendations in a plan summary (the stored plan keeps all of them).
pub const SUMMARY_RECOMMENDATIONS: usize = 10;

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("registration callers may read only the published plan")]
    NotPublished,
    #[error("invalid scenario: {}", summarize(.0))]
    InvalidScenario(ValidationErrors),
    /// Request fields other than the scenario and the shocks are wrong:
    /// each field with its message, one `BadRequest` violation each, so a
    /// caller mends them all at once. Never empty ([`ApiError::invalid`],
    /// [`ApiError::fields`]). A path is a field's name or, for a part of
    /// a list, its path (`shocks[2].demand.exam`).
    #[error("{}", .0.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join("; "))]
    InvalidArguments(Vec<(Cow<'static, str>, String)>),
    /// Every bad field of every shock, as a scenario's errors are kept.
    #[error("invalid shock: {}", summarize(.0))]
    InvalidShock(ValidationErrors),
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },
    #[error("no plan is published yet: Publish one (or name a plan by its id)")]
    NothingPublished,
    #[error("plan {plan_id} has status {status}: only an optimal plan can be published")]
    NotOptimal { plan_id: String, status: String },
    /// A drill's plan: a what-if, which registration must never sell.
    #[error(
        "plan {plan_id} is a drill's what-if and cannot be published: to act on its shocks, \
         run Reschedule with them from the published plan, and publish that re-plan"
    )]
    DrillPlan { plan_id: String },
    /// A plan not marked as a drill's whose scenario is stored as one: a
    /// re-plan whose shocked scenario, name included, has the content of
    /// an earlier drill's (scenarios are stored once, by content, with the
    /// flags of their first writer), or a plan stored before Solve marked
    /// the plans of a drill's scenario.
    #[error(
        "plan {plan_id} cannot be published: its scenario {scenario_id} is stored as a drill's \
         what-if (a drill's shocked scenario had the same content first, its name included): \
         re-plan with another name"
    )]
    DrillScenario {
        plan_id: String,
        scenario_id: String,
    },
    /// A plan with a cell the registration stock cannot count.
    #[error("plan {plan_id} cannot be published: {cell}")]
    TooLargeToSell {
        plan_id: String,
        cell: crate::registration::stock::CellTooLarge,
    },
    #[error(
        "solve queue full: {limit} solves running or queued (a call that has gone, past its \
         deadline or cancelled, keeps its slot until its HiGHS run ends: one cannot be \
         interrupted); try again later"
    )]
    QueueFull { limit: usize },
    #[error("{0}")]
    DeadlineExceeded(String),
    #[error("the solve was cancelled")]
    Cancelled,
    #[error(transparent)]
    Freeze(#[from] examcap_solver::reschedule::FreezeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// An [`ApiError::InvalidArguments`] of the one request field `field`.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::InvalidArguments(vec![(field.into(), message.into())])
    }

    /// `Ok` when `bad` is empty, else the error naming every field in it.
    pub fn fields<F: Into<Cow<'static, str>>>(bad: Vec<(F, String)>) -> Result<(), ApiError> {
        if bad.is_empty() {
            Ok(())
        } else {
            Err(ApiError::InvalidArguments(
                bad.into_iter().map(|(f, m)| (f.into(), m)).collect(),
            ))
        }
    }

    /// The field violations of a bad request (its fields, a scenario's or
    /// the shocks'), as `(path, message)`; empty for any other error.
    pub fn violations(self) -> Vec<(Cow<'static, str>, String)> {
        match self {
            ApiError::InvalidArguments(v) => v,
            ApiError::InvalidScenario(v) | ApiError::InvalidShock(v) => v
                .errors
                .into_iter()
                .map(|f| (f.path.into(), f.message))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Both values; or, when both checks fail on request fields, every field
/// of both in one answer. Any other error is returned as it is.
pub(crate) fn both<A, B>(
    a: Result<A, ApiError>,
    b: Result<B, ApiError>,
) -> Result<(A, B), ApiError> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
        (Err(x), Err(y)) => Err(join(x, y)),
    }
}

/// `e`, with the fields of `more` added when both name request fields: a
/// check that stops a call early still reports the fields checked beside it.
pub(crate) fn also(e: ApiError, more: Result<(), ApiError>) -> ApiError {
    match more {
        Ok(()) => e,
        Err(m) => join(e, m),
    }
}

/// Two errors as one: every field of both when both name request fields,
/// else the one that does not (a missing record outranks a bad field).
fn join(x: ApiError, y: ApiError) -> ApiError {
    let is_fields = |e: &ApiError| {
        matches!(
            e,
            ApiError::InvalidArguments(_)
                | ApiError::InvalidScenario(_)
                | ApiError::InvalidShock(_)
        )
    };
    if is_fields(&x) && is_fields(&y) {
        let mut all = x.violations();
        all.extend(y.violations());
        ApiError::InvalidArguments(all)
    } else if is_fields(&x) {
        y
    } else {
        x
    }
}

/// A drill's or re-plan's `name` (empty: named after its base scenario).
pub(crate) fn name_field(name: &str) -> Result<(), ApiError> {
    match examcap_solver::validate::name_problem(name) {
        Some(m) => Err(ApiError::invalid("name", m)),
        None => Ok(()),
    }
}

/// [`given`] for a call that gathers its bad fields: an empty `v` goes
/// to `bad` as required.
pub(crate) fn need(bad: &mut Vec<(&'static str, String)>, field: &'static str, v: &str) {
    if v.is_empty() {
        bad.push((field, "required".into()));
    }
}

/// A field the call cannot do without (an id, say): empty is a bad
/// request naming it, not NOT_FOUND of `""`.
pub(crate) fn given<'a>(field: &'static str, id: &'a str) -> Result<&'a str, ApiError> {
    if id.is_empty() {
        return Err(ApiError::invalid(field, "required"));
    }
    Ok(id)
}

fn summarize(e: &ValidationErrors) -> String {
    let first = e
        .errors
        .first()
        .map(ToString::to_string)
        .unwrap_or_default();
    if e.total > 1 {
        format!("{first} (and {} more)", e.total - 1)
    } else {
        first
    }
}

impl ApiError {
    /// The one place that decides what a failure means to a gRPC client.
    pub fn code(&self) -> Code {
        match self {
            ApiError::Auth(AuthError::Missing | AuthError::Unknown) => Code::Unauthenticated,
            ApiError::Auth(AuthError::Forbidden { .. }) | ApiError::NotPublished => {
                Code::PermissionDenied
            }
            ApiError::InvalidScenario(_)
            | ApiError::InvalidArguments(_)
            | ApiError::InvalidShock(_) => Code::InvalidArgument,
            ApiError::NotFound { .. } | ApiError::NothingPublished => Code::NotFound,
            ApiError::NotOptimal { .. }
            | ApiError::DrillPlan { .. }
            | ApiError::DrillScenario { .. }
            | ApiError::TooLargeToSell { .. }
            | ApiError::Freeze(_) => Code::FailedPrecondition,
            ApiError::QueueFull { .. } => Code::ResourceExhausted,
            ApiError::Store(e) if e.is_full() => Code::ResourceExhausted,
            // Another replica, or this one restarted, can take the call:
            // also after the first failed write itself (a disk error: the
            // health service turns NOT_SERVING and the server restarts).
            ApiError::Store(
                StoreError::Failed(_)
                | StoreError::Stalled { .. }
                | StoreError::Db(sled::Error::Io(_)),
            ) => Code::Unavailable,
            ApiError::DeadlineExceeded(_) => Code::DeadlineExceeded,
            ApiError::Cancelled => Code::Cancelled,
            ApiError::Store(_) | ApiError::Internal(_) => Code::Internal,
        }
    }
}

/// Longest status message sent. Messages quote the caller's input (an
/// unknown id, say), and the message travels percent-encoded in a header:
/// a 10,000-character id echoed whole made a header block that clients
/// refuse (h2 protocol error) instead of an INVALID_ARGUMENT.
pub const MAX_STATUS_MESSAGE: usize = 1024;
/// Longest field path or description of one `BadRequest` violation (the
/// details travel in a header too, at most 20 of them).
pub const MAX_VIOLATION_TEXT: usize = 256;

/// `text` cut to at most `max` bytes at a character boundary, with what
/// was cut said at the end.
pub fn clip(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let note = format!("… ({} bytes)", text.len());
    let mut end = max.saturating_sub(note.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{note}", &text[..end])
}

/// A status with a clipped message.
pub fn status(code: Code, message: String) -> Status {
    Status::new(code, clip(message, MAX_STATUS_MESSAGE))
}

/// A status with a clipped message and `BadRequest` details of clipped
/// (path, description) pairs.
pub fn bad_request<'a>(
    code: Code,
    message: String,
    violations: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Status {
    let violations: Vec<FieldViolation> = violations
        .into_iter()
        .map(|(path, what)| {
            FieldViolation::new(
                clip(path.to_string(), MAX_VIOLATION_TEXT),
                clip(what.to_string(), MAX_VIOLATION_TEXT),
            )
        })
        .collect();
    Status::with_error_details(
        code,
        clip(message, MAX_STATUS_MESSAGE),
        ErrorDetails::with_bad_request(violations),
    )
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        let code = e.code();
        if code == Code::Internal || matches!(&e, ApiError::Store(_)) {
            tracing::error!(error = %e, "request failed");
        }
        match &e {
            ApiError::InvalidScenario(v) | ApiError::InvalidShock(v) => bad_request(
                code,
                e.to_string(),
                v.errors
                    .iter()
                    .map(|f| (f.path.as_str(), f.message.as_str())),
            ),
            ApiError::InvalidArguments(fields) => bad_request(
                code,
                e.to_string(),
                fields.iter().map(|(f, m)| (f.as_ref(), m.as_str())),
            ),
            _ => status(code, e.to_string()),
        }
    }
}

impl From<PlanError> for ApiError {
    fn from(e: PlanError) -> Self {
        match e {
            PlanError::Invalid(v) => ApiError::InvalidScenario(v),
            PlanError::Solve(s @ SolveError::TimeLimit(_)) => ApiError::DeadlineExceeded(format!(
                "{s}: no plan; allow more time (a longer gRPC deadline or time_limit_seconds)"
            )),
            PlanError::Solve(SolveError::Cancelled) => ApiError::Cancelled,
            PlanError::Solve(s @ SolveError::Solver(..)) => ApiError::Internal(s.to_string()),
        }
    }
}

/// Whether a plan may be published: not a drill's (a what-if), and only an
/// optimal one, whose cost is minimal. Its cells must also fit the
/// registration stock's counts. `what_if`: its scenario is stored as a
/// drill's (see [`ApiError::DrillScenario`]).
pub fn check_publishable(rec: &PlanRecord, what_if: bool) -> Result<(), ApiError> {
    if rec.drill {
        return Err(ApiError::DrillPlan {
            plan_id: rec.id.clone(),
        });
    }
    if what_if {
        return Err(ApiError::DrillScenario {
            plan_id: rec.id.clone(),
            scenario_id: rec.scenario_id.clone(),
        });
    }
    match rec.plan.status {
        PlanStatus::Optimal => {}
        PlanStatus::Stage2TimeLimit => {
            return Err(ApiError::NotOptimal {
                plan_id: rec.id.clone(),
                status: "stage2_time_limit".into(),
            })
        }
    }
    match crate::registration::stock::oversized_cell(&rec.plan) {
        None => Ok(()),
        Some(cell) => Err(ApiError::TooLargeToSell {
            plan_id: rec.id.clone(),
            cell,
        }),
    }
}

/// Parses a `grpc-timeout` header value (`1..=8` digits and a unit: H, M,
/// S, m, u, n). `None` if absent or malformed (then there is no deadline).
pub fn grpc_timeout(md: &MetadataMap) -> Option<Duration> {
    parse_grpc_timeout(md.get("grpc-timeout")?.to_str().ok()?)
}

/// Parses the value of a `grpc-timeout` header (see [`grpc_timeout`]).
pub fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// At most `slots` solves at once, and at most `slots + queue` admitted
/// (running or waiting); beyond that a solve is refused at once.
pub struct SolveGate {
    slots: Arc<Semaphore>,
    admitted: Arc<AtomicUsize>,
    limit: usize,
}

/// A place in the solve queue; released when dropped.
pub struct Ticket {
    admitted: Arc<AtomicUsize>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

impl SolveGate {
    pub fn new(slots: usize, queue: usize) -> Self {
        let slots = slots.max(1);
        SolveGate {
            slots: Arc::new(Semaphore::new(slots)),
            admitted: Arc::new(AtomicUsize::new(0)),
            limit: slots.saturating_add(queue),
        }
    }

    /// Takes a place in the queue, or RESOURCE_EXHAUSTED.
    pub fn admit(&self) -> Result<Ticket, ApiError> {
        self.admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .map_err(|_| ApiError::QueueFull { limit: self.limit })?;
        Ok(Ticket {
            admitted: self.admitted.clone(),
        })
    }

    pub(crate) async fn slot(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::Internal("solve slots closed".into()))
    }

    /// [`SolveGate::slot`], or [`ApiError::Cancelled`] as soon as `caller`
    /// (the call's event channel) closes: a caller that goes away while
    /// queued gives its place up at once, not when a slot frees.
    pub(crate) async fn slot_while_open<T>(
        &self,
        caller: &mpsc::UnboundedSender<T>,
    ) -> Result<OwnedSemaphorePermit, ApiError> {
        tokio::select! {
            permit = self.slot() => permit,
            () = caller.closed() => Err(ApiError::Cancelled),
        }
    }
}

/// What the handlers share.
struct Inner {
    store: Arc<dyn Store>,
    auth: Auth,
    gate: SolveGate,
    /// Reservations and the published plan's seat stock (RegistrationService).
    book: Arc<crate::registration::book::Book>,
    /// Held by Publish while it moves the published pointer and installs
    /// the stock, so that concurrent Publishes leave both on the same plan.
    publishing: tokio::sync::Mutex<()>,
}

/// The implementation of every examcap.v1 service; cheap to clone.
#[derive(Clone)]
pub struct Api {
    inner: Arc<Inner>,
}

pub(crate) fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Api {
    pub fn new(
        store: Arc<dyn Store>,
        auth: Auth,
        gate: SolveGate,
        book: Arc<crate::registration::book::Book>,
    ) -> Self {
        Api {
            inner: Arc::new(Inner {
                store,
                auth,
                gate,
                book,
                publishing: tokio::sync::Mutex::new(()),
            }),
        }
    }

    pub(crate) fn book(&self) -> &crate::registration::book::Book {
        &self.inner.book
    }

    pub(crate) fn check<T>(&self, req: &Request<T>, rpc: Rpc) -> Result<Caller, ApiError> {
        let caller = self
            .inner
            .auth
            .check(req.metadata(), rpc)
            .inspect_err(|e| {
                tracing::warn!(rpc = rpc.name(), error = %e, "call refused");
            })?;
        tracing::Span::current().record("caller", caller.name.as_str());
        Ok(caller)
    }

    /// Runs a store call on the blocking pool (sled flushes with fsync).
    pub(crate) async fn db<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || f(&*store))
            .await
            .map_err(|e| ApiError::Internal(format!("storage task failed: {e}")))?
            .map_err(ApiError::from)
    }

    pub(crate) async fn scenario_record(&self, id: &str) -> Result<ScenarioRecord, ApiError> {
        let key = id.to_string();
        self.db(move |s| s.get_scenario(&key))
            .await?
            .ok_or_else(|| ApiError::NotFound {
                what: "scenario",
                id: id.into(),
            })
    }

    pub(crate) async fn plan_record(&self, id: &str) -> Result<PlanRecord, ApiError> {
        let key = id.to_string();
        self.db(move |s| s.get_plan(&key))
            .await?
            .ok_or_else(|| ApiError::NotFound {
                what: "plan",
                id: id.into(),
            })
    }

    /// Validates and stores a scenario; returns its record and whether it was new.
    pub(crate) async fn store_scenario(
        &self,
        sc: &Scenario,
        drill: Option<crate::store::DrillOrigin>,
        (caller, rpc): (&Caller, Rpc),
    ) -> Result<(ScenarioRecord, bool), ApiError> {
        let rec = scenario_record(sc, drill)?;
        let r = rec.clone();
        let entry = audit_entry(caller, rpc, &rec.id);
        let created = self.db(move |s| s.put_scenario(&r, &[entry])).await?;
        if created {
            Ok((rec, true))
        } else {
            // Keep what was stored first (its time and drill marking).
            let id = rec.id.clone();
            Ok((self.scenario_record(&id).await?, false))
        }
    }

    /// Reads a stored scenario back into solver types (re-validated: the
    /// store is trusted, but a corrupt record must not reach the solver).
    pub(crate) fn load_scenario(rec: &ScenarioRecord) -> Result<Scenario, ApiError> {
        parse_scenario(rec.scenario_json.as_bytes()).map_err(|e| {
            ApiError::Internal(format!("stored scenario {} no longer valid: {e}", rec.id))
        })
    }

    /// Solves on the blocking pool once a slot is free. `deadline` (from the
    /// gRPC timeout) caps the time limit, queueing time included.
    pub(crate) async fn run_solve(
        &self,
        ticket: Ticket,
        sc: Scenario,
        mut opts: PlanOptions,
        deadline: Option<Instant>,
        progress: Option<mpsc::UnboundedSender<Result<proto::SolveEvent, Status>>>,
    ) -> Result<Plan, ApiError> {
        let permit = match &progress {
            Some(tx) => self.inner.gate.slot_while_open(tx).await?,
            None => self.inner.gate.slot().await?,
        };
        cap_time_limit(&mut opts, deadline, "solve")?;
        let span = tracing::Span::current();
        let cancel = Arc::new(AtomicBool::new(false));
        let watcher = progress.as_ref().map(|tx| cancel_on_close(tx, &cancel));
        let job = tokio::task::spawn_blocking(move || {
            let _enter = span.enter();
            // Held until the solve really ends (cancelled or not).
            let _held = (ticket, permit);
            plan_scenario_cancellable(
                &sc,
                &opts,
                &|p| {
                    if let Some(tx) = &progress {
                        // A closed channel means the client went away: stop sending.
                        let _ = tx.send(Ok(progress_event(p)));
                    }
                },
                Some(cancel),
            )
        });
        let out = job.await;
        if let Some(w) = watcher {
            w.abort();
        }
        out.map_err(|e| ApiError::Internal(format!("solve task failed: {e}")))?
            .map_err(ApiError::from)
    }

    /// Stores a plan under its fingerprint and returns the record.
    pub(crate) async fn store_plan(
        &self,
        plan: Plan,
        scenario_id: &str,
        drill: bool,
        (caller, rpc): (&Caller, Rpc),
    ) -> Result<PlanRecord, ApiError> {
        let rec = plan_record(plan, scenario_id, drill);
        let r = rec.clone();
        let entry = audit_entry(caller, rpc, &rec.id);
        self.db(move |s| s.put_plan(&r, &[entry])).await?;
        Ok(rec)
    }

    pub(crate) fn gate(&self) -> &SolveGate {
        &self.inner.gate
    }
}

/// Whether a stored scenario is a what-if: a drill's, or a re-plan's of a
/// drill's plan. Every plan of it is a drill's (Solve with any options
/// included), never published, and a re-plan of one is a what-if too.
pub(crate) fn what_if(rec: &ScenarioRecord) -> bool {
    rec.drill.as_ref().is_some_and(|d| !d.reschedule)
}

/// The record a scenario is stored as (its id is its content hash).
fn scenario_record(
    sc: &Scenario,
    drill: Option<crate::store::DrillOrigin>,
) -> Result<ScenarioRecord, ApiError> {
    Ok(ScenarioRecord {
        id: sc.content_hash(),
        name: sc.name.clone(),
        start_week: sc.start_week.clone(),
        horizon_weeks: sc.horizon_weeks,
        created_unix: now_unix(),
        drill,
        scenario_json: serde_json::to_string(sc)
            .map_err(|e| ApiError::Internal(format!("scenario to JSON: {e}")))?,
    })
}

/// The record a plan is stored as (its id is its fingerprint).
fn plan_record(plan: Plan, scenario_id: &str, drill: bool) -> PlanRecord {
    PlanRecord {
        id: plan.fingerprint(),
        scenario_id: scenario_id.into(),
        created_unix: now_unix(),
        drill,
        plan,
    }
}

/// The audit entry of `caller`'s `rpc` on `target`, now.
fn audit_entry(caller: &Caller, rpc: Rpc, target: &str) -> AuditEntry {
    AuditEntry {
        who: caller.name.clone(),
        role: caller.role.name().into(),
        rpc: rpc.name().into(),
        target: target.into(),
        unix_time: now_unix(),
    }
}

/// Runs a request's work on the blocking pool (reading a stored scenario
/// of up to 16 MiB, applying shocks, validating), so that it never holds
/// a tokio worker while other calls wait; DEADLINE_EXCEEDED when the
/// call's deadline passes first (the work then ends unheard; it has no
/// side effects). A drill's shocks on a large scenario held the worker
/// for seconds, and two of them stalled every other call of the server.
pub(crate) async fn off_runtime<T, F>(
    deadline: Option<Instant>,
    what: &str,
    f: F,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
{
    let job = tokio::task::spawn_blocking(f);
    let joined = match deadline {
        Some(d) => tokio::time::timeout_at(d.into(), job)
            .await
            .map_err(|_| ApiError::DeadlineExceeded(format!("the deadline passed while {what}")))?,
        None => job.await,
    };
    joined.map_err(|e| ApiError::Internal(format!("{what} failed: {e}")))?
}

/// Refuses a shocked scenario larger than a scenario document may be: a
/// drill or re-plan stores it, and a stored scenario past the limit could
/// not be read back (every later solve, publish or report of it failed).
fn shocked_fits(shocked: &Scenario) -> Result<(), ApiError> {
    let limit = examcap_solver::validate::MAX_DOCUMENT_BYTES;
    let bytes = serde_json::to_vec(shocked)
        .map_err(|e| ApiError::Internal(format!("scenario to JSON: {e}")))?
        .len();
    if bytes > limit {
        return Err(ApiError::invalid(
            "shocks",
            format!(
                "the shocked scenario would be {bytes} bytes as JSON, more than the {limit} \
                 bytes (16 MiB) a scenario may be"
            ),
        ));
    }
    Ok(())
}

/// Caps `opts.time_limit_seconds` at what is left until `deadline`
/// (queueing time counts), or DEADLINE_EXCEEDED if nothing is left.
/// Returns the time left, if there is a deadline.
pub(crate) fn cap_time_limit(
    opts: &mut PlanOptions,
    deadline: Option<Instant>,
    what: &str,
) -> Result<Option<Duration>, ApiError> {
    let Some(d) = deadline else {
        return Ok(None);
    };
    let left = d.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(ApiError::DeadlineExceeded(format!(
            "the deadline passed while the {what} was queued"
        )));
    }
    let secs = left.as_secs_f64();
    opts.time_limit_seconds = Some(opts.time_limit_seconds.map_or(secs, |t| t.min(secs)));
    Ok(Some(left))
}

/// A streaming client that goes away cancels its solve: the returned task
/// sets `cancel` (checked by the solver before each HiGHS run) once `tx`'s
/// receiver is dropped. Abort the task when the solve ends.
pub(crate) fn cancel_on_close<T: Send + 'static>(
    tx: &mpsc::UnboundedSender<T>,
    cancel: &Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let (tx, cancel) = (tx.clone(), cancel.clone());
    tokio::spawn(async move {
        tx.closed().await;
        cancel.store(true, Ordering::Relaxed);
    })
}

fn progress_event(p: examcap_solver::plan::PlanProgress) -> proto::SolveEvent {
    proto::SolveEvent {
        event: Some(proto::solve_event::Event::Progress(progress_proto(p))),
    }
}

pub(crate) fn progress_proto(p: examcap_solver::plan::PlanProgress) -> proto::Progress {
    proto::Progress {
        step: p.step.name().into(),
        done: u32::try_from(p.done).unwrap_or(u32::MAX),
        total: u32::try_from(p.total).unwrap_or(u32::MAX),
        elapsed_seconds: p.elapsed.as_secs_f64(),
    }
}

/// Solve options from a request, checked: every bad one is named.
fn plan_options(r: &proto::SolveRequest) -> Result<PlanOptions, ApiError> {
    let mut o = PlanOptions::default();
    let mut bad = Vec::new();
    if r.session_minutes != 0.0 {
        // Shorter than a minute is not a session, and what it saves would
        // drown in the solver's tolerance.
        if !(r.session_minutes.is_finite() && (1.0..=1e6).contains(&r.session_minutes)) {
            bad.push((
                "session_minutes",
                format!("must be in [1, 1e6], got {}", Num(r.session_minutes)),
            ));
        }
        o.session_minutes = r.session_minutes;
    }
    if r.recommendations != 0 {
        // Each place listed is re-solved: the list is kept short.
        if r.recommendations as usize > MAX_RECOMMENDATIONS {
            bad.push((
                "recommendations",
                format!(
                    "must be at most {MAX_RECOMMENDATIONS} (each place is re-solved), got {}",
                    r.recommendations
                ),
            ));
        }
        o.recommendations = r.recommendations as usize;
    }
    if r.time_limit_seconds != 0.0 {
        if !(r.time_limit_seconds.is_finite() && r.time_limit_seconds > 0.0) {
            bad.push((
                "time_limit_seconds",
                format!(
                    "must be a number of seconds > 0, got {}",
                    Num(r.time_limit_seconds)
                ),
            ));
        }
        o.time_limit_seconds = Some(r.time_limit_seconds);
    }
    ApiError::fields(bad)?;
    Ok(o)
}

fn status_proto(s: PlanStatus) -> proto::PlanStatus {
    match s {
        PlanStatus::Optimal => proto::PlanStatus::Optimal,
        PlanStatus::Stage2TimeLimit => proto::PlanStatus::Stage2TimeLimit,
    }
}

fn percentile(p: Option<Percentile>) -> Option<proto::Percentile> {
    p.map(|p| proto::Percentile {
        weeks: p.weeks,
        at_least: p.at_least,
    })
}

pub(crate) fn exam_wait(w: &ExamWaits) -> proto::ExamWait {
    proto::ExamWait {
        exam: w.exam.clone(),
        target_weeks: w.target_weeks,
        p50: percentile(w.p50),
        p90: percentile(w.p90),
        max: percentile(w.max),
        served_candidates: w.served_candidates,
        late_candidates: w.late_candidates,
        beyond_candidates: w.beyond_candidates,
        censored_candidates: w.censored_candidates,
    }
}

/// Extra capacity the integral plan uses.
pub(crate) fn extra_capacity(plan: &Plan) -> proto::ExtraCapacity {
    proto::ExtraCapacity {
        seat_minutes: plan.extra_seats.iter().map(|e| e.minutes).sum(),
        seat_cost: plan.rounded.extra_seat_cost,
        rater_minutes: plan.extra_raters.iter().map(|e| e.minutes).sum(),
        rater_cost: plan.rounded.extra_rater_cost,
    }
}

/// The headline numbers of a stored plan.
pub fn summary(rec: &PlanRecord) -> proto::PlanSummary {
    let plan = &rec.plan;
    proto::PlanSummary {
        plan_id: rec.id.clone(),
        scenario_id: rec.scenario_id.clone(),
        status: status_proto(plan.status) as i32,
        stage1_violation: plan.stage1_violation,
        stage2_cost: plan.stage2_cost,
        rounded_violation: plan.rounded.violation,
        rounded_cost: plan.rounded.cost,
        waits: plan.waits.iter().map(exam_wait).collect(),
        recommendations: plan
            .recommendations
            .iter()
            .take(SUMMARY_RECOMMENDATIONS)
            .map(|r| {
                let (capacity, location, kind, pool) = match &r.capacity {
                    CapacityRef::Seats { location, kind } => {
                        ("seats", location.clone(), kind.clone(), String::new())
                    }
                    CapacityRef::Raters { pool } => {
                        ("raters", String::new(), String::new(), pool.clone())
                    }
                };
                proto::Recommendation {
                    capacity: capacity.into(),
                    location,
                    kind,
                    pool,
                    week: u32::try_from(r.week).unwrap_or(u32::MAX),
                    session_minutes: r.session_minutes,
                    violation_reduction: r.violation_reduction,
                    cost_reduction: r.cost_reduction,
                }
            })
            .collect(),
        extra: Some(extra_capacity(plan)),
        drill: rec.drill,
        solve_seconds: plan.seconds.total,
        recommendations_cut: plan.recommendations_cut,
    }
}

/// A structured proto scenario in solver types, unchecked: the caller runs
/// `validate_scenario` on it, exactly as on a parsed JSON document.
pub fn scenario_from_proto(p: proto::Scenario) -> Scenario {
    use examcap_solver::scenario as s;
    let unavailable = |u: Vec<proto::Unavailable>| {
        u.into_iter()
            .map(|u| s::Unavailable {
                from_week: u.from_week,
                to_week: u.to_week,
                factor: u.factor,
            })
            .collect()
    };
    Scenario {
        format: p.format,
        name: p.name,
        start_week: p.start_week,
        horizon_weeks: p.horizon_weeks as usize,
        exams: p
            .exams
            .into_iter()
            .map(|e| s::Exam {
                id: e.id,
                name: e.name,
                resource: e.resource,
                seat_minutes: e.seat_minutes,
                rating_pool: e.rating_pool,
                rating_minutes: e.rating_minutes,
                target_wait_weeks: e.target_wait_weeks,
                priority: e.priority.unwrap_or(1.0),
            })
            .collect(),
        locations: p
            .locations
            .into_iter()
            .map(|l| s::Location {
                id: l.id,
                name: l.name,
                resources: l
                    .resources
                    .into_iter()
                    .map(|r| s::Resource {
                        kind: r.kind,
                        weekly_minutes: r.weekly_minutes,
                        extra_weekly_minutes: r.extra_weekly_minutes,
                        extra_cost_per_minute: r.extra_cost_per_minute,
                    })
                    .collect(),
                unavailable: unavailable(l.unavailable),
            })
            .collect(),
        rating_pools: p
            .rating_pools
            .into_iter()
            .map(|q| s::RatingPool {
                id: q.id,
                weekly_minutes: q.weekly_minutes,
                extra_weekly_minutes: q.extra_weekly_minutes,
                extra_cost_per_minute: q.extra_cost_per_minute,
                unavailable: unavailable(q.unavailable),
            })
            .collect(),
        regions: p
            .regions
            .into_iter()
            .map(|r| s::Region {
                id: r.id,
                name: r.name,
                options: r
                    .options
                    .into_iter()
                    .map(|o| s::RegionOption {
                        location: o.location,
                        travel_cost: o.travel_cost,
                    })
                    .collect(),
            })
            .collect(),
        demand: p
            .demand
            .into_iter()
            .map(|d| s::Demand {
                region: d.region,
                exam: d.exam,
                weekly: d.weekly,
            })
            .collect(),
        backlog: p
            .backlog
            .into_iter()
            .map(|b| s::Backlog {
                region: b.region,
                exam: b.exam,
                registered_week: b.registered_week,
                candidates: b.candidates,
            })
            .collect(),
        // Left out, as in the JSON form: 1 (a plain proto3 double read 0).
        weights: p.weights.map_or_else(s::Weights::default, |w| s::Weights {
            waiting_per_candidate_week: w
                .waiting_per_candidate_week
                .unwrap_or(s::Weights::default().waiting_per_candidate_week),
        }),
    }
}

fn scenario_info(r: &ScenarioHead) -> proto::ScenarioInfo {
    proto::ScenarioInfo {
        scenario_id: r.id.clone(),
        name: r.name.clone(),
        start_week: r.start_week.clone(),
        horizon_weeks: u32::try_from(r.horizon_weeks).unwrap_or(u32::MAX),
        created_unix: r.created_unix,
        drill: r.drill.as_ref().is_some_and(|d| !d.reschedule),
        reschedule: r.drill.as_ref().is_some_and(|d| d.reschedule),
        base_scenario_id: r
            .drill
            .as_ref()
            .map(|d| d.base_scenario_id.clone())
            .unwrap_or_default(),
    }
}

/// The GetPlan filters.
#[derive(Debug, Default)]
pub struct PlanFilter {
    pub exam: Option<String>,
    pub location: Option<String>,
    pub from_week: Option<i64>,
    pub to_week: Option<i64>,
}

impl PlanFilter {
    fn is_empty(&self) -> bool {
        self.exam.is_none()
            && self.location.is_none()
            && self.from_week.is_none()
            && self.to_week.is_none()
    }

    /// The filter's exam and location that are not of `sc`, each with its
    /// message: a typo must not look like an exam or a location with
    /// nothing planned.
    fn unknown(&self, sc: &Scenario) -> Vec<(&'static str, String)> {
        let mut bad = Vec::new();
        if let Some(e) = self
            .exam
            .as_ref()
            .filter(|e| !sc.exams.iter().any(|x| &x.id == *e))
        {
            bad.push(("exam", format!("{e:?} is not an exam of the scenario")));
        }
        if let Some(l) =
            (self.location.as_ref()).filter(|l| !sc.locations.iter().any(|x| &x.id == *l))
        {
            bad.push((
                "location",
                format!("{l:?} is not a location of the scenario"),
            ));
        }
        bad
    }

    fn week(&self, w: i64) -> bool {
        self.from_week.is_none_or(|f| w >= f) && self.to_week.is_none_or(|t| w <= t)
    }

    /// Applies the filter to allocation, extras, cohorts, waits, where
    /// targets break, shadow prices and recommendations (the last two as the
    /// extras: by location, week and the exam's kind or pool). `sc` tells
    /// the resource kind and rater pool of the filtered exam.
    ///
    /// The filter's exam and location must be of `sc`: the caller checks
    /// them ([`PlanFilter::unknown`]) with the request's other fields, so
    /// that one answer names every bad field.
    pub fn apply(&self, plan: &mut Plan, sc: Option<&Scenario>) -> Result<(), ApiError> {
        let (kind, pool) = match (&self.exam, sc) {
            (Some(e), Some(sc)) => match sc.exams.iter().find(|x| &x.id == e) {
                Some(exam) => (Some(exam.resource.clone()), exam.rating_pool.clone()),
                None => {
                    return Err(ApiError::Internal(format!(
                        "exam {e:?} is not of the scenario: the filter was not checked"
                    )))
                }
            },
            _ => (None, None),
        };
        let exam_ok = |e: &str| self.exam.as_deref().is_none_or(|x| x == e);
        let loc_ok = |l: &str| self.location.as_deref().is_none_or(|x| x == l);
        plan.allocation
            .retain(|a| exam_ok(&a.exam) && loc_ok(&a.location) && self.week(a.week as i64));
        // Seat capacity (extras, shadow prices, recommendations) by
        // location, week and the exam's kind; rater capacity by week and the
        // exam's pool.
        let seats_ok = |location: &str, k: &str, week: usize| {
            loc_ok(location) && self.week(week as i64) && kind.as_deref().is_none_or(|x| x == k)
        };
        let raters_ok = |q: &str, week: usize| {
            self.week(week as i64)
                && (self.exam.is_none() || pool.as_deref().is_some_and(|p| p == q))
        };
        plan.extra_seats
            .retain(|x| seats_ok(&x.location, &x.kind, x.week));
        plan.extra_raters.retain(|x| raters_ok(&x.pool, x.week));
        plan.cohorts.retain_mut(|s| {
            s.cohorts.retain(|c| self.week(c.registered_week));
            exam_ok(&s.exam) && !s.cohorts.is_empty()
        });
        plan.waits.retain(|w| exam_ok(&w.exam));
        plan.over_target.retain(|o| exam_ok(&o.exam));
        let row_ok = |c: &CapacityRef, week: usize| match c {
            CapacityRef::Seats { location, kind: k } => seats_ok(location, k, week),
            CapacityRef::Raters { pool: q } => raters_ok(q, week),
        };
        plan.shadow_prices.retain(|p| row_ok(&p.capacity, p.week));
        plan.recommendations.retain(|r| row_ok(&r.capacity, r.week));
        Ok(())
    }
}

type SolveStream = Pin<Box<dyn Stream<Item = Result<proto::SolveEvent, Status>> + Send>>;

impl Api {
    /// The plan of `rec` through `filter` as a response, or every bad field: those of
    /// `bad` (found by the caller) and the filter's unknown exam and location.
    async fn plan_response(
        &self,
        rec: PlanRecord,
        filter: &PlanFilter,
        mut bad: Vec<(&'static str, String)>,
    ) -> Result<(proto::PlanSummary, String), ApiError> {
        let summary = summary(&rec);
        let mut plan = rec.plan;
        let sc = if filter.exam.is_some() || filter.location.is_some() {
            let srec = self.scenario_record(&rec.scenario_id).await?;
            let sc = Self::load_scenario(&srec)?;
            bad.extend(filter.unknown(&sc));
            Some(sc)
        } else {
            None
        };
        ApiError::fields(bad)?;
        if !filter.is_empty() {
            filter.apply(&mut plan, sc.as_ref())?;
        }
        let json = serde_json::to_string(&plan)
            .map_err(|e| ApiError::Internal(format!("plan to JSON: {e}")))?;
        Ok((summary, json))
    }
}

#[tonic::async_trait]
impl proto::scenario_service_server::ScenarioService for Api {
    #[tracing::instrument(name = "ScenarioService/PutScenario", skip_all, fields(caller))]
    async fn put_scenario(
        &self,
        req: Request<proto::PutScenarioRequest>,
    ) -> Result<Response<proto::PutScenarioResponse>, Status> {
        let caller = self.check(&req, Rpc::PutScenario)?;
        let r = req.into_inner();
        let sc =
            tokio::task::spawn_blocking(move || match (r.scenario_json.is_empty(), r.scenario) {
                (false, None) => {
                    parse_scenario(r.scenario_json.as_bytes()).map_err(ApiError::InvalidScenario)
                }
                (true, Some(p)) => {
                    let sc = scenario_from_proto(p);
                    examcap_solver::validate::validate_scenario(&sc)
                        .map_err(ApiError::InvalidScenario)?;
                    // Stored as JSON: the structured form has the same
                    // limit as `scenario_json`.
                    let bytes = serde_json::to_vec(&sc).map_or(usize::MAX, |b| b.len());
                    let max = examcap_solver::validate::MAX_DOCUMENT_BYTES;
                    if bytes > max {
                        return Err(ApiError::invalid(
                            "scenario",
                            format!("larger than the 16 MiB limit as a document ({bytes} bytes)"),
                        ));
                    }
                    Ok(sc)
                }
                (false, Some(_)) => Err(ApiError::invalid(
                    "scenario",
                    "set one of scenario_json and scenario, not both",
                )),
                (true, None) => Err(ApiError::invalid(
                    "scenario_json",
                    "required (or a structured scenario)",
                )),
            })
            .await
            .map_err(|e| ApiError::Internal(format!("validation task failed: {e}")))??;
        let (rec, created) = self
            .store_scenario(&sc, None, (&caller, Rpc::PutScenario))
            .await?;
        tracing::info!(scenario = %rec.id, created, "scenario stored");
        Ok(Response::new(proto::PutScenarioResponse {
            scenario_id: rec.id.clone(),
            created,
            scenario: Some(scenario_info(&ScenarioHead::from(&rec))),
        }))
    }

    #[tracing::instrument(name = "ScenarioService/GetScenario", skip_all, fields(caller))]
    async fn get_scenario(
        &self,
        req: Request<proto::GetScenarioRequest>,
    ) -> Result<Response<proto::GetScenarioResponse>, Status> {
        self.check(&req, Rpc::GetScenario)?;
        let rec = self
            .scenario_record(given("scenario_id", &req.get_ref().scenario_id)?)
            .await?;
        Ok(Response::new(proto::GetScenarioResponse {
            scenario: Some(scenario_info(&ScenarioHead::from(&rec))),
            scenario_json: rec.scenario_json,
        }))
    }

    #[tracing::instrument(name = "ScenarioService/ListScenarios", skip_all, fields(caller))]
    async fn list_scenarios(
        &self,
        req: Request<proto::ListScenariosRequest>,
    ) -> Result<Response<proto::ListScenariosResponse>, Status> {
        self.check(&req, Rpc::ListScenarios)?;
        let r = req.into_inner();
        let after = list_after("scenarios", &r.page_token)?;
        let all = self.db(|s| s.list_scenario_heads()).await?;
        let key = |h: &ScenarioHead| (h.created_unix, h.seq, h.id.clone());
        let (page, next_page_token) = page_of(all, key, after, r.page_size, "scenarios")?;
        Ok(Response::new(proto::ListScenariosResponse {
            scenarios: page.iter().map(scenario_info).collect(),
            next_page_token,
        }))
    }
}

#[tonic::async_trait]
impl proto::plan_service_server::PlanService for Api {
    type SolveStream = SolveStream;

    #[tracing::instrument(name = "PlanService/Solve", skip_all, fields(caller, scenario))]
    async fn solve(
        &self,
        req: Request<proto::SolveRequest>,
    ) -> Result<Response<Self::SolveStream>, Status> {
        let caller = self.check(&req, Rpc::Solve)?;
        let deadline = grpc_timeout(req.metadata()).and_then(|d| Instant::now().checked_add(d));
        let r = req.into_inner();
        tracing::Span::current().record("scenario", r.scenario_id.as_str());
        // The id and the options in one answer when both are wrong.
        let (id, opts) = both(given("scenario_id", &r.scenario_id), plan_options(&r))?;
        let rec = self.scenario_record(id).await?;
        let sc = Self::load_scenario(&rec)?;
        // Admitted before the stream starts, so a full queue is the call's status.
        let ticket = self.gate().admit()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let api = self.clone();
        let what_if = what_if(&rec);
        let scenario_id = rec.id;
        tokio::spawn(
            async move {
                let result = api
                    .run_solve(ticket, sc, opts, deadline, Some(tx.clone()))
                    .await;
                let event = match result {
                    // The caller went away after the last HiGHS run: the
                    // solve is cancelled all the same, and stores nothing.
                    Ok(_) if tx.is_closed() => Err(ApiError::Cancelled),
                    Ok(plan) => api
                        .store_plan(plan, &scenario_id, what_if, (&caller, Rpc::Solve))
                        .await
                        .map(|rec| {
                            tracing::info!(plan = %rec.id, "plan stored");
                            proto::SolveEvent {
                                event: Some(proto::solve_event::Event::Done(summary(&rec))),
                            }
                        }),
                    Err(e) => Err(e),
                };
                let _ = tx.send(event.map_err(|e| {
                    tracing::warn!(error = %e, "solve failed");
                    Status::from(e)
                }));
            }
            .in_current_span(),
        );
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(rx))))
    }

    #[tracing::instrument(name = "PlanService/GetPlan", skip_all, fields(caller, plan))]
    async fn get_plan(
        &self,
        req: Request<proto::GetPlanRequest>,
    ) -> Result<Response<proto::GetPlanResponse>, Status> {
        let caller = self.check(&req, Rpc::GetPlan)?;
        let r = req.into_inner();
        tracing::Span::current().record("plan", r.plan_id.as_str());
        if caller.role == Role::Registration {
            let published = self.db(|s| s.published()).await?;
            if published.as_deref() != Some(r.plan_id.as_str()) {
                return Err(ApiError::NotPublished.into());
            }
        }
        // Every bad field in one answer: the request's shape first, then,
        // when the plan is found, the filter's exam and location.
        let mut bad = Vec::new();
        need(&mut bad, "plan_id", &r.plan_id);
        if let (Some(f), Some(t)) = (r.from_week, r.to_week) {
            if f > t {
                bad.push(("to_week", format!("{t} is before from_week {f}")));
            }
        }
        let filter = PlanFilter {
            exam: Some(r.exam).filter(|s| !s.is_empty()),
            location: Some(r.location).filter(|s| !s.is_empty()),
            from_week: r.from_week,
            to_week: r.to_week,
        };
        let rec = match self.plan_record(&r.plan_id).await {
            Ok(rec) => rec,
            // A missing (or empty) id with other bad fields: those are
            // what the caller mends first.
            Err(e) => {
                ApiError::fields(bad)?;
                return Err(e.into());
            }
        };
        let (summary, plan_json) = self.plan_response(rec, &filter, bad).await?;
        Ok(Response::new(proto::GetPlanResponse {
            summary: Some(summary),
            plan_json,
        }))
    }

    #[tracing::instrument(name = "PlanService/ListPlans", skip_all, fields(caller))]
    async fn list_plans(
        &self,
        req: Request<proto::ListPlansRequest>,
    ) -> Result<Response<proto::ListPlansResponse>, Status> {
        self.check(&req, Rpc::ListPlans)?;
        let r = req.into_inner();
        let after = list_after("plans", &r.page_token)?;
        let scenario = r.scenario_id;
        // A mistyped id is NOT_FOUND, not an empty list that reads as
        // "this scenario has no plans".
        if !scenario.is_empty() {
            self.scenario_record(&scenario).await?;
        }
        let (plans, published) = self
            .db(|s| Ok((s.list_plan_heads()?, s.published()?)))
            .await?;
        let plans: Vec<_> = plans
            .into_iter()
            .filter(|p| scenario.is_empty() || p.scenario_id == scenario)
            .collect();
        let key = |h: &crate::store::PlanHead| (h.created_unix, h.seq, h.id.clone());
        let (page, next_page_token) = page_of(plans, key, after, r.page_size, "plans")?;
        let plans = page
            .iter()
            .map(|p| proto::PlanInfo {
                plan_id: p.id.clone(),
                scenario_id: p.scenario_id.clone(),
                status: status_proto(p.status) as i32,
                stage1_violation: p.stage1_violation,
                stage2_cost: p.stage2_cost,
                created_unix: p.created_unix,
                published: published.as_deref() == Some(p.id.as_str()),
                drill: p.drill,
            })
            .collect();
        Ok(Response::new(proto::ListPlansResponse {
            plans,
            next_page_token,
        }))
    }

    #[tracing::instrument(name = "PlanService/Publish", skip_all, fields(caller, plan))]
    async fn publish(
        &self,
        req: Request<proto::PublishRequest>,
    ) -> Result<Response<proto::PublishResponse>, Status> {
        let caller = self.check(&req, Rpc::Publish)?;
        let id = req.into_inner().plan_id;
        tracing::Span::current().record("plan", id.as_str());
        let rec = self.plan_record(given("plan_id", &id)?).await?;
        let scenario = self.scenario_record(&rec.scenario_id).await?;
        check_publishable(&rec, what_if(&scenario))?;
        let stock = crate::registration::stock_for_publish(rec, scenario).await?;
        let key = id.clone();
        let (previous, conflicts) = {
            let _one_at_a_time = self.inner.publishing.lock().await;
            let entry = audit_entry(&caller, Rpc::Publish, &key);
            let previous = self.db(move |s| s.set_published(&key, &[entry])).await?;
            // Every reservation is kept; cells with fewer seats now are reported.
            (previous, self.book().install(stock))
        };
        tracing::info!(plan = %id, previous = previous.as_deref().unwrap_or(""), "plan published");
        Ok(Response::new(proto::PublishResponse {
            plan_id: id,
            previous_plan_id: previous.unwrap_or_default(),
            conflicts: conflicts
                .iter()
                .map(crate::registration::stock_cell)
                .collect(),
        }))
    }

    #[tracing::instrument(name = "PlanService/GetPublished", skip_all, fields(caller))]
    async fn get_published(
        &self,
        req: Request<proto::GetPublishedRequest>,
    ) -> Result<Response<proto::GetPublishedResponse>, Status> {
        self.check(&req, Rpc::GetPublished)?;
        let id = self
            .db(|s| s.published())
            .await?
            .ok_or(ApiError::NothingPublished)?;
        let rec = self.plan_record(&id).await?;
        let (summary, plan_json) = self
            .plan_response(rec, &PlanFilter::default(), Vec::new())
            .await?;
        Ok(Response::new(proto::GetPublishedResponse {
            summary: Some(summary),
            plan_json,
        }))
    }
}

/// Most shocks one drill or reschedule may apply. One per region, exam and
/// week of a year is 40 × 13 × 52 = 27,040; a week range makes one shock
/// cover many weeks, so this leaves room. Without a cap, a million shocks
/// (20 MB, inside the message limit) held a solve slot for seconds before
/// the solve began, and were stored with the scenario.
pub const MAX_SHOCKS: usize = 100_000;

/// A request's shocks in scenario terms: at least one, at most
/// [`MAX_SHOCKS`]; each one's parts, or what it lacks. [`apply_shocks`]
/// reports the lacks together with the other shocks' errors.
pub(crate) fn shock_specs(
    shocks: &[proto::Shock],
) -> Result<Vec<Result<ShockSpec, FieldError>>, ApiError> {
    if shocks.is_empty() {
        return Err(ApiError::invalid("shocks", "give at least one shock"));
    }
    if shocks.len() > MAX_SHOCKS {
        return Err(ApiError::invalid(
            "shocks",
            format!(
                "{} shocks, more than the {MAX_SHOCKS} allowed: a week range covers many weeks in one shock",
                shocks.len()
            ),
        ));
    }
    Ok(shocks
        .iter()
        .enumerate()
        .map(|(i, s)| shock_spec(i, s))
        .collect())
}

/// `base` with a request's shocks applied, renamed to `name`, and the
/// shocks: or every shock's missing part and every other shock's fields
/// that do not fit, in one answer.
pub(crate) fn apply_shocks(
    base: &Scenario,
    shocks: &[Result<ShockSpec, FieldError>],
    name: &str,
) -> Result<(Scenario, Vec<ShockSpec>), ApiError> {
    let shocked = drill::apply_parsed(
        base,
        shocks.iter().map(|s| s.as_ref().map_err(Clone::clone)),
        name,
    )
    .map_err(ApiError::InvalidShock)?;
    let specs = shocks
        .iter()
        .filter_map(|s| s.as_ref().ok().cloned())
        .collect();
    Ok((shocked, specs))
}

/// A drill's or re-plan's shocked scenario, checked as a stored scenario
/// must be (valid, within the document limit): [`apply_shocks`], with the
/// request's `other` field errors in the same answer as the shocks'.
pub(crate) fn shocked_scenario(
    base: &Scenario,
    shocks: &[Result<ShockSpec, FieldError>],
    name: &str,
    other: Result<(), ApiError>,
) -> Result<(Scenario, Vec<ShockSpec>), ApiError> {
    let ((), (shocked, specs)) = both(other, apply_shocks(base, shocks, name))?;
    examcap_solver::validate::validate_scenario(&shocked).map_err(ApiError::InvalidScenario)?;
    shocked_fits(&shocked)?;
    Ok((shocked, specs))
}

/// A shock in proto terms: what [`shock_spec`] reads back (week numbers
/// past u32 saturate; they are clipped to the horizon either way).
pub fn shock_proto(s: &ShockSpec) -> proto::Shock {
    let kind = match s {
        ShockSpec::Demand {
            region,
            exam,
            from_week,
            to_week,
            change,
        } => proto::shock::Kind::Demand(proto::DemandShock {
            region: region.clone().unwrap_or_default(),
            exam: exam.clone().unwrap_or_default(),
            from_week: u32::try_from(*from_week).unwrap_or(u32::MAX),
            to_week: u32::try_from(*to_week).unwrap_or(u32::MAX),
            change: Some(match change {
                DemandChange::Multiplier(m) => proto::demand_shock::Change::Multiplier(*m),
                DemandChange::Delta(d) => proto::demand_shock::Change::Delta(*d),
            }),
        }),
        ShockSpec::Capacity {
            target,
            from_week,
            to_week,
            factor,
        } => proto::shock::Kind::Capacity(proto::CapacityShock {
            target: Some(match target {
                CapacityTarget::Location(l) => proto::capacity_shock::Target::Location(l.clone()),
                CapacityTarget::RatingPool(q) => {
                    proto::capacity_shock::Target::RatingPool(q.clone())
                }
            }),
            from_week: u32::try_from(*from_week).unwrap_or(u32::MAX),
            to_week: u32::try_from(*to_week).unwrap_or(u32::MAX),
            factor: *factor,
        }),
    };
    proto::Shock { kind: Some(kind) }
}

/// A proto shock in scenario terms; `i` is its index, for error paths.
fn shock_spec(i: usize, s: &proto::Shock) -> Result<ShockSpec, FieldError> {
    use proto::capacity_shock::Target;
    use proto::demand_shock::Change;
    use proto::shock::Kind;
    let missing = |field: &str, what: &str| FieldError {
        path: format!("shocks[{i}].{field}"),
        message: format!("missing: set {what}"),
    };
    let nonempty = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
    match &s.kind {
        Some(Kind::Demand(d)) => Ok(ShockSpec::Demand {
            region: nonempty(&d.region),
            exam: nonempty(&d.exam),
            from_week: d.from_week as usize,
            to_week: d.to_week as usize,
            change: match d.change {
                Some(Change::Multiplier(m)) => DemandChange::Multiplier(m),
                Some(Change::Delta(x)) => DemandChange::Delta(x),
                None => return Err(missing("demand", "multiplier or delta")),
            },
        }),
        Some(Kind::Capacity(c)) => Ok(ShockSpec::Capacity {
            target: match &c.target {
                Some(Target::Location(l)) => CapacityTarget::Location(l.clone()),
                Some(Target::RatingPool(q)) => CapacityTarget::RatingPool(q.clone()),
                None => return Err(missing("capacity", "location or rating_pool")),
            },
            from_week: c.from_week as usize,
            to_week: c.to_week as usize,
            factor: c.factor,
        }),
        None => Err(missing("kind", "demand or capacity")),
    }
}

fn wait_changes(before: &Plan, after: &Plan) -> Vec<proto::WaitChange> {
    wait_changes_of(&before.waits, &after.waits)
}

/// Waits per exam before and after, every exam of either side once.
pub(crate) fn wait_changes_of(before: &[ExamWaits], after: &[ExamWaits]) -> Vec<proto::WaitChange> {
    let mut exams: Vec<&str> = before.iter().map(|w| w.exam.as_str()).collect();
    for w in after {
        if !exams.contains(&w.exam.as_str()) {
            exams.push(&w.exam);
        }
    }
    exams
        .into_iter()
        .map(|e| proto::WaitChange {
            exam: e.to_string(),
            before: before.iter().find(|w| w.exam == e).map(exam_wait),
            after: after.iter().find(|w| w.exam == e).map(exam_wait),
        })
        .collect()
}

impl Api {
    /// The plan a drill compares with: the published plan if it is of the
    /// base scenario, else the newest optimal plan of it, else a fresh solve.
    async fn base_plan(
        &self,
        caller: &Caller,
        base: &ScenarioRecord,
        sc: &Scenario,
        deadline: Option<Instant>,
    ) -> Result<PlanRecord, ApiError> {
        let (heads, published) = self
            .db(|s| Ok((s.list_plan_heads()?, s.published()?)))
            .await?;
        let of_base: Vec<_> = heads.iter().filter(|p| p.scenario_id == base.id).collect();
        // Plans are never removed: the one chosen is there to read.
        if let Some(p) = of_base
            .iter()
            .find(|p| published.as_deref() == Some(p.id.as_str()))
            .or_else(|| {
                of_base
                    .iter()
                    .rev()
                    .find(|p| p.status == PlanStatus::Optimal)
            })
        {
            return self.plan_record(&p.id).await;
        }
        let ticket = self.gate().admit()?;
        let plan = self
            .run_solve(ticket, sc.clone(), PlanOptions::default(), deadline, None)
            .await?;
        // Stored with its audit entry in one write.
        self.store_plan(plan, &base.id, what_if(base), (caller, Rpc::RunDrill))
            .await
    }
}

/// Part of a unary call's deadline kept back so that the handler answers
/// DEADLINE_EXCEEDED itself before tonic's own timeout cancels the call
/// (tonic reports an expired server-side timeout as CANCELLED).
pub(crate) fn deadline_margin(timeout: Duration) -> Duration {
    (timeout / 10).clamp(Duration::from_millis(1), Duration::from_millis(500))
}

impl Api {
    async fn drill(
        &self,
        caller: Caller,
        r: proto::RunDrillRequest,
        deadline: Option<Instant>,
    ) -> Result<proto::RunDrillResponse, ApiError> {
        // The name is checked with whatever stops the call first, and else
        // with the shocks, so that one answer names every bad field.
        // Without a base, the shocks' fields that need no scenario are
        // named beside it (only the missing base was).
        let shocks = shock_specs(&r.shocks);
        let id = given("base_scenario_id", &r.base_scenario_id).map_err(|e| {
            let own = shocks.as_ref().map(|s| {
                drill::check_without_scenario(s.iter().map(|s| s.as_ref().map_err(Clone::clone)))
            });
            match own {
                Ok(Err(v)) => join(ApiError::InvalidShock(v), e),
                _ => e,
            }
        });
        let (shocks, id) = both(shocks, id).map_err(|e| also(e, name_field(&r.name)))?;
        let base_rec = self.scenario_record(id).await?;
        let (rec, given_name) = (base_rec.clone(), r.name.clone());
        let (base_sc, shocked, shocks) =
            off_runtime(deadline, "the shocks were applied", move || {
                let base_sc = Self::load_scenario(&rec)?;
                let name = if given_name.is_empty() {
                    examcap_solver::validate::derived_name(&base_sc.name, "+drill")
                } else {
                    given_name.clone()
                };
                let (shocked, shocks) =
                    shocked_scenario(&base_sc, &shocks, &name, name_field(&given_name))?;
                Ok((base_sc, shocked, shocks))
            })
            .await?;

        let base_plan = self
            .base_plan(&caller, &base_rec, &base_sc, deadline)
            .await?;
        let origin = crate::store::DrillOrigin {
            base_scenario_id: base_rec.id.clone(),
            shocks: serde_json::to_value(&shocks)
                .map_err(|e| ApiError::Internal(format!("shocks to JSON: {e}")))?,
            reschedule: false,
        };
        // Stored once solved, so a drill refused for a full queue or cut by
        // its deadline leaves no scenario without a plan behind.
        let ticket = self.gate().admit()?;
        let plan = self
            .run_solve(
                ticket,
                shocked.clone(),
                PlanOptions::default(),
                deadline,
                None,
            )
            .await?;
        // The scenario, its plan and both audit entries in one write: a
        // process killed between separate writes left the scenario without
        // its plan (and a deadline could drop a future between them).
        let rec = scenario_record(&shocked, Some(origin))?;
        let drill_plan = plan_record(plan, &rec.id, true);
        let audit = [&rec.id, &drill_plan.id].map(|id| audit_entry(&caller, Rpc::RunDrill, id));
        let (r, p) = (rec.clone(), drill_plan.clone());
        let (created, plan_created) = self
            .db(move |s| s.put_scenario_and_plan(&r, &p, &audit))
            .await?;
        // Keep what was stored first (its time and drill marking): shocks
        // that change nothing give the base scenario and its plan back.
        let drill_rec = if created {
            rec
        } else {
            self.scenario_record(&rec.id).await?
        };
        let drill_plan = if plan_created {
            drill_plan
        } else {
            self.plan_record(&drill_plan.id).await?
        };
        tracing::info!(scenario = %drill_rec.id, plan = %drill_plan.id, "drill solved");

        let (b, d) = (&base_plan.plan, &drill_plan.plan);
        Ok(proto::RunDrillResponse {
            drill_scenario_id: drill_rec.id.clone(),
            drill: Some(summary(&drill_plan)),
            base: Some(summary(&base_plan)),
            comparison: Some(proto::Comparison {
                delta_violation: d.stage1_violation - b.stage1_violation,
                delta_cost: d.stage2_cost - b.stage2_cost,
                delta_rounded_violation: d.rounded.violation - b.rounded.violation,
                delta_rounded_cost: d.rounded.cost - b.rounded.cost,
                waits: wait_changes(b, d),
                extra_before: Some(extra_capacity(b)),
                extra_after: Some(extra_capacity(d)),
            }),
        })
    }
}

/// Entries per page of a paged list (ListReservations, ListAuditEntries)
/// when the request gives no page size, and the most per page.
const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

/// The page size a paged list serves for a requested `page_size`.
pub(crate) fn page_size(requested: u32) -> usize {
    let size = match requested {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    };
    size as usize
}

/// The page token that resumes after the entry numbered `id` of a list
/// (`kind`: audit).
fn page_token(kind: &str, id: u64) -> String {
    format!("{kind}.{id}")
}

/// The entry number a `page_token` of a `kind` list resumes after: `None`
/// for the first page (an empty token); a token not made by
/// [`page_token`] for this list is INVALID_ARGUMENT.
fn page_after(kind: &str, token: &str) -> Result<Option<u64>, ApiError> {
    if token.is_empty() {
        return Ok(None);
    }
    token
        .strip_prefix(kind)
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|&id| page_token(kind, id) == token)
        .map(Some)
        .ok_or_else(|| ApiError::invalid("page_token", "not a token from a previous response"))
}

/// Where a list of stored heads is in order (oldest first): created_unix,
/// then the store's sequence number, then the id (heads made for records
/// from before heads all have sequence number 0).
type ListKey = (i64, u64, String);

/// The page token that resumes a `kind` list (scenarios, plans) after the
/// head at `key`.
fn list_token(kind: &str, key: &ListKey) -> String {
    format!("{kind}.{}.{}.{}", key.0, key.1, key.2)
}

/// The head a `kind` list's `page_token` resumes after (see
/// [`page_after`]).
fn list_after(kind: &str, token: &str) -> Result<Option<ListKey>, ApiError> {
    if token.is_empty() {
        return Ok(None);
    }
    let key = token
        .strip_prefix(kind)
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|rest| {
            let mut parts = rest.splitn(3, '.');
            let created = parts.next()?.parse::<i64>().ok()?;
            let seq = parts.next()?.parse::<u64>().ok()?;
            Some((created, seq, parts.next()?.to_string()))
        })
        .filter(|key| list_token(kind, key) == token);
    key.map(Some)
        .ok_or_else(|| ApiError::invalid("page_token", "not a token from a previous response"))
}

/// One page of `items`, listed in `key` order: those after `after`, at most
/// [`page_size`]`(requested)`, and the token of the next page (empty on
/// the last). Keyed by the last head shown, so heads stored meanwhile
/// neither repeat nor hide one. Records are never deleted, so a token of a
/// previous page names one of `items`; one that does not (forged, or from
/// a list with another filter, which skipped this list's heads) is
/// INVALID_ARGUMENT.
fn page_of<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> ListKey,
    after: Option<ListKey>,
    requested: u32,
    kind: &str,
) -> Result<(Vec<T>, String), ApiError> {
    if let Some(a) = &after {
        if !items.iter().any(|x| key(x) == *a) {
            return Err(ApiError::invalid(
                "page_token",
                "not a token from a previous response to this request",
            ));
        }
    }
    let size = page_size(requested);
    let mut rest = items
        .into_iter()
        .filter(|x| after.as_ref().is_none_or(|a| key(x) > *a));
    let page: Vec<T> = rest.by_ref().take(size).collect();
    let next = match (rest.next(), page.last()) {
        (Some(_), Some(last)) => list_token(kind, &key(last)),
        _ => String::new(),
    };
    Ok((page, next))
}

#[tonic::async_trait]
impl proto::audit_service_server::AuditService for Api {
    #[tracing::instrument(name = "AuditService/ListAuditEntries", skip_all, fields(caller))]
    async fn list_audit_entries(
        &self,
        req: Request<proto::ListAuditEntriesRequest>,
    ) -> Result<Response<proto::ListAuditEntriesResponse>, Status> {
        self.check(&req, Rpc::ListAuditEntries)?;
        let r = req.into_inner();
        let size = page_size(r.page_size);
        let after = page_after("audit", &r.page_token)?;
        let mut page = self.db(move |s| s.audit_page(after, size + 1)).await?;
        let next_page_token = if page.len() > size {
            page.truncate(size);
            page.last()
                .map(|(id, _)| page_token("audit", *id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(proto::ListAuditEntriesResponse {
            entries: page
                .into_iter()
                .map(|(_, e)| proto::AuditEntry {
                    who: e.who,
                    role: e.role,
                    rpc: e.rpc,
                    target: e.target,
                    unix_time: e.unix_time,
                })
                .collect(),
            next_page_token,
        }))
    }
}

#[tonic::async_trait]
impl proto::drill_service_server::DrillService for Api {
    #[tracing::instrument(name = "DrillService/RunDrill", skip_all, fields(caller, base))]
    async fn run_drill(
        &self,
        req: Request<proto::RunDrillRequest>,
    ) -> Result<Response<proto::RunDrillResponse>, Status> {
        let caller = self.check(&req, Rpc::RunDrill)?;
        let deadline = grpc_timeout(req.metadata())
            .and_then(|d| Instant::now().checked_add(d.saturating_sub(deadline_margin(d))));
        let r = req.into_inner();
        tracing::Span::current().record("base", r.base_scenario_id.as_str());
        let work = self.drill(caller, r, deadline);
        let out = match deadline {
            Some(d) => tokio::time::timeout_at(d.into(), work)
                .await
                .unwrap_or_else(|_| {
                    Err(ApiError::DeadlineExceeded(
                        "the drill did not finish before the deadline".into(),
                    ))
                }),
            None => work.await,
        };
        Ok(Response::new(out?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::MetadataValue;

    /// A request's work runs off the runtime: on a one-thread runtime the
    /// call's deadline still answers while the work goes on (work run on
    /// the runtime's thread held every other call until it was done).
    #[tokio::test(flavor = "current_thread")]
    async fn work_off_the_runtime_answers_at_the_deadline() {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let deadline = Instant::now() + Duration::from_millis(50);
        let r = off_runtime(Some(deadline), "the shocks were applied", move || {
            // Held until the test lets go: done only after the deadline.
            let _ = wait.recv_timeout(Duration::from_secs(30));
            Ok(())
        })
        .await;
        let _ = release.send(());
        match r {
            Err(ApiError::DeadlineExceeded(m)) => {
                assert_eq!(m, "the deadline passed while the shocks were applied")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(off_runtime(None, "x", || Ok(7)).await.unwrap(), 7);
    }

    /// A shocked scenario is stored: one larger than a scenario document
    /// may be is refused at `shocks` (a stored one past 16 MiB could not be
    /// read back by any later call).
    #[test]
    fn a_shocked_scenario_past_the_document_limit_is_refused() {
        let mut sc =
            examcap_solver::parse_scenario(include_bytes!("../tests/fixtures/tiny.json")).unwrap();
        shocked_fits(&sc).unwrap();
        let range = examcap_solver::scenario::Unavailable {
            from_week: 0,
            to_week: 0,
            factor: 0.5,
        };
        // 41 bytes of JSON each: {"from_week":0,"to_week":0,"factor":0.5},
        sc.locations[0].unavailable = vec![range; 420_000];
        match shocked_fits(&sc) {
            Err(ApiError::InvalidArguments(v)) => {
                assert_eq!(v.len(), 1);
                assert_eq!(v[0].0, "shocks");
                assert!(
                    v[0].1.contains("more than the 16777216 bytes"),
                    "{}",
                    v[0].1
                );
            }
            other => panic!("{other:?}"),
        }
    }

    /// GetPlan's filters shrink every per-exam and per-place list, not
    /// only the allocation (found by a reviewer: waits, where targets break
    /// and the 2,480 shadow prices of a national plan came back whole).
    #[test]
    fn the_plan_filter_cuts_every_list_by_exam_place_and_week() {
        use examcap_solver::generate::{national, GenerateOptions};
        let sc = national(&GenerateOptions {
            weeks: 4,
            ..GenerateOptions::default()
        });
        let full = examcap_solver::plan_scenario(
            &sc,
            &examcap_solver::PlanOptions {
                recommendations: 50,
                ..Default::default()
            },
            &|_| {},
        )
        .unwrap();
        let exam = sc.exams.iter().find(|e| e.id == "SPREKEN_B1").unwrap();
        let (kind, pool) = (exam.resource.clone(), exam.rating_pool.clone().unwrap());
        let location = sc.locations[0].id.clone();
        let filter = PlanFilter {
            exam: Some(exam.id.clone()),
            location: Some(location.clone()),
            from_week: Some(1),
            to_week: Some(2),
        };
        let mut plan = full.clone();
        filter.apply(&mut plan, Some(&sc)).unwrap();

        assert_eq!(plan.waits.len(), 1);
        assert_eq!(plan.waits[0].exam, exam.id);
        let want: Vec<_> = full
            .over_target
            .iter()
            .filter(|o| o.exam == exam.id)
            .collect();
        assert_eq!(plan.over_target.iter().collect::<Vec<_>>(), want);
        let row_ok = |c: &CapacityRef, week: usize| {
            (1..=2).contains(&week)
                && match c {
                    CapacityRef::Seats {
                        location: l,
                        kind: k,
                    } => *l == location && *k == kind,
                    CapacityRef::Raters { pool: q } => *q == pool,
                }
        };
        // Exactly the rows the rule keeps, in the same order.
        let want: Vec<_> = full
            .shadow_prices
            .iter()
            .filter(|p| row_ok(&p.capacity, p.week))
            .collect();
        assert!(!want.is_empty() && want.len() < full.shadow_prices.len());
        assert_eq!(plan.shadow_prices.iter().collect::<Vec<_>>(), want);
        let want: Vec<_> = full
            .recommendations
            .iter()
            .filter(|r| row_ok(&r.capacity, r.week))
            .collect();
        assert_eq!(plan.recommendations.iter().collect::<Vec<_>>(), want);
    }

    #[test]
    fn clip_keeps_short_text_and_cuts_long_text_at_a_character_boundary() {
        assert_eq!(clip("unknown id \"X\"".into(), 16), "unknown id \"X\"");
        let long = format!("unknown id \"{}\"", "é".repeat(5000));
        let cut = clip(long.clone(), MAX_STATUS_MESSAGE);
        assert!(cut.len() <= MAX_STATUS_MESSAGE, "{}", cut.len());
        assert!(cut.starts_with("unknown id \"éé"));
        assert!(cut.ends_with(&format!("… ({} bytes)", long.len())), "{cut}");
        // A message exactly at the limit is sent whole.
        let exact = "a".repeat(MAX_STATUS_MESSAGE);
        assert_eq!(clip(exact.clone(), MAX_STATUS_MESSAGE), exact);
    }

    #[test]
    fn a_huge_or_odd_number_is_quoted_as_people_write_it() {
        let msg = |session_minutes: f64, time_limit_seconds: f64| {
            plan_options(&proto::SolveRequest {
                session_minutes,
                time_limit_seconds,
                ..Default::default()
            })
            .unwrap_err()
            .to_string()
        };
        assert_eq!(
            msg(1e300, 0.0),
            "session_minutes: must be in [1, 1e6], got 1e300"
        );
        assert_eq!(
            msg(240.0, -2.5e-300),
            "time_limit_seconds: must be a number of seconds > 0, got -2.5e-300"
        );
        assert_eq!(
            msg(f64::NAN, 0.0),
            "session_minutes: must be in [1, 1e6], got NaN"
        );
        assert_eq!(
            msg(0.5, 0.0),
            "session_minutes: must be in [1, 1e6], got 0.5"
        );
    }

    #[test]
    fn a_plan_lists_at_most_fifty_recommendations() {
        let ask = |recommendations: u32| {
            plan_options(&proto::SolveRequest {
                recommendations,
                ..Default::default()
            })
        };
        assert_eq!(ask(0).unwrap().recommendations, 10);
        assert_eq!(ask(50).unwrap().recommendations, 50);
        assert_eq!(
            ask(51).unwrap_err().to_string(),
            "recommendations: must be at most 50 (each place is re-solved), got 51"
        );
    }

    #[test]
    fn an_error_quoting_a_huge_id_gives_a_clipped_status_and_details() {
        let id = "a".repeat(10_000);
        let s = Status::from(ApiError::NotFound {
            what: "plan",
            id: id.clone(),
        });
        assert_eq!(s.code(), Code::NotFound);
        assert!(s.message().len() <= MAX_STATUS_MESSAGE);
        let s = Status::from(ApiError::InvalidShock(
            [FieldError {
                path: "shocks[0].demand.exam".into(),
                message: format!("unknown exam {id:?}"),
            }]
            .into_iter()
            .collect(),
        ));
        assert!(s.message().len() <= MAX_STATUS_MESSAGE);
        let details = s.get_details_bad_request().expect("BadRequest details");
        let v = &details.field_violations[0];
        assert_eq!(v.field, "shocks[0].demand.exam");
        assert!(v.description.len() <= MAX_VIOLATION_TEXT);
        assert!(v.description.starts_with("unknown exam \"aaa"));
    }

    #[test]
    fn shocks_go_to_proto_and_back_unchanged() {
        let shocks = [
            ShockSpec::Demand {
                region: Some("AMSTERDAM".into()),
                exam: Some("SPREKEN_B1".into()),
                from_week: 10,
                to_week: 16,
                change: DemandChange::Multiplier(1.6),
            },
            ShockSpec::Demand {
                region: None,
                exam: None,
                from_week: 0,
                to_week: 3,
                change: DemandChange::Delta(-12.5),
            },
            ShockSpec::Capacity {
                target: CapacityTarget::Location("AMS".into()),
                from_week: 2,
                to_week: 2,
                factor: 0.0,
            },
            ShockSpec::Capacity {
                target: CapacityTarget::RatingPool("speaking_raters".into()),
                from_week: 5,
                to_week: 9,
                factor: 0.5,
            },
        ];
        for (i, s) in shocks.iter().enumerate() {
            assert_eq!(shock_spec(i, &shock_proto(s)).unwrap(), *s);
        }
    }

    #[test]
    fn grpc_timeout_units() {
        let mut md = MetadataMap::new();
        assert_eq!(grpc_timeout(&md), None);
        for (v, d) in [
            ("50m", Duration::from_millis(50)),
            ("2S", Duration::from_secs(2)),
            ("1H", Duration::from_secs(3600)),
            ("3M", Duration::from_secs(180)),
            ("7u", Duration::from_micros(7)),
            ("9n", Duration::from_nanos(9)),
        ] {
            md.insert("grpc-timeout", MetadataValue::from_static(v));
            assert_eq!(grpc_timeout(&md), Some(d), "{v}");
        }
        for bad in ["m", "5x", "-5m", "123456789m", "5.0S"] {
            md.insert("grpc-timeout", MetadataValue::from_static(bad));
            assert_eq!(grpc_timeout(&md), None, "{bad}");
        }
    }

    #[test]
    fn deadline_margins_never_underflow() {
        for d in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_secs(3600),
        ] {
            let m = deadline_margin(d);
            assert!(d.saturating_sub(m) <= d);
        }
        assert_eq!(
            deadline_margin(Duration::from_secs(1)),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn gate_admits_slots_plus_queue() {
        let g = SolveGate::new(1, 1);
        let a = g.admit().unwrap();
        let _b = g.admit().unwrap();
        assert_eq!(
            g.admit().err().map(|e| e.code()),
            Some(Code::ResourceExhausted)
        );
        drop(a);
        assert!(g.admit().is_ok());
    }

    #[test]
    fn codes_mean_what_they_say() {
        assert_eq!(
            ApiError::from(AuthError::Missing).code(),
            Code::Unauthenticated
        );
        assert_eq!(
            ApiError::NotOptimal {
                plan_id: "p".into(),
                status: "s".into()
            }
            .code(),
            Code::FailedPrecondition
        );
        assert_eq!(
            ApiError::DrillPlan {
                plan_id: "p".into()
            }
            .code(),
            Code::FailedPrecondition
        );
        assert_eq!(
            ApiError::DrillScenario {
                plan_id: "p".into(),
                scenario_id: "s".into()
            }
            .code(),
            Code::FailedPrecondition
        );
        // Says why a slot may be held by a call its caller gave up on (a
        // reviewer's retry just after a deadline was refused, unexplained).
        let full = ApiError::QueueFull { limit: 1 };
        assert_eq!(full.code(), Code::ResourceExhausted);
        assert!(full
            .to_string()
            .contains("keeps its slot until its HiGHS run ends"));
        let cell = crate::registration::stock::CellTooLarge {
            location: "AMS".into(),
            exam: "SPK".into(),
            week: 0,
            candidates: 1 << 33,
        };
        let e = ApiError::TooLargeToSell {
            plan_id: "p".into(),
            cell,
        };
        assert_eq!(e.code(), Code::FailedPrecondition);
        assert!(e.to_string().contains("8589934592 candidates"), "{e}");
        assert_eq!(
            ApiError::from(PlanError::Solve(SolveError::TimeLimit(
                examcap_solver::solve::Stage::Stage1
            )))
            .code(),
            Code::DeadlineExceeded
        );
    }

    #[test]
    fn a_full_disk_is_resource_exhausted_a_failed_store_unavailable_and_other_storage_failures_internal(
    ) {
        use std::io::{Error, ErrorKind};
        let io = |kind| ApiError::Store(StoreError::Db(sled::Error::Io(Error::from(kind))));
        assert_eq!(io(ErrorKind::StorageFull).code(), Code::ResourceExhausted);
        assert_eq!(io(ErrorKind::QuotaExceeded).code(), Code::ResourceExhausted);
        // The first failed write of a disk that went read-only, say: the
        // calls after it are UNAVAILABLE (Failed), and so is it.
        assert_eq!(io(ErrorKind::PermissionDenied).code(), Code::Unavailable);
        let status = Status::from(io(ErrorKind::PermissionDenied));
        assert_eq!(
            status.message(),
            "storage: I/O error on the store's files: permission denied"
        );
        assert_eq!(
            ApiError::Store(StoreError::Db(sled::Error::Unsupported("x".into()))).code(),
            Code::Internal
        );
        assert_eq!(
            ApiError::Store(StoreError::Failed("IO error".into())).code(),
            Code::Unavailable
        );
        assert_eq!(
            ApiError::Store(StoreError::Stalled { seconds: 31 }).code(),
            Code::Unavailable
        );
        let status = Status::from(io(ErrorKind::StorageFull));
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(
            status.message().starts_with("storage: "),
            "{}",
            status.message()
        );
    }
}
