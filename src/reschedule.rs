//! RescheduleService: the call ops make while the phones ring (DESIGN.md
//! "Rescheduling after a surge").
//!
//! One request streams two answers. First a greedy feasible repair
//! ([`examcap_solver::repair`]), computed before the stream opens so that a
//! broken freeze is the call's own FAILED_PRECONDITION; it is on the wire
//! in milliseconds. Then the optimal re-plan ([`examcap_solver::reschedule`])
//! on the blocking pool, with progress events, stored as a plan but never
//! published, followed by its diff against the plan started from. A
//! deadline (grpc-timeout, or `replan_time_limit_seconds`) that strikes
//! before the re-plan ends the stream with the repair and an end event
//! whose status says the optimum was not reached: ops keep the first
//! answer instead of a bare DEADLINE_EXCEEDED.

use std::collections::BTreeSet;
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use examcap_solver::plan::{PlanError, PlanStatus};
use examcap_solver::repair::{repair, Repair};
use examcap_solver::reschedule::{
    diff, diff_rows, extra_changes, replan_with, touched_by, ExtraChange, Hooks, Move,
    RescheduleError,
};
use examcap_solver::solve::SolveError;
use examcap_solver::validate::{FieldError, Num};
use examcap_solver::{Plan, PlanOptions, Scenario};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::api::{
    cancel_on_close, cap_time_limit, deadline_margin, extra_capacity, grpc_timeout, off_runtime,
    progress_proto, shock_specs, shocked_scenario, summary, wait_changes_of, Api, ApiError, Ticket,
};
use crate::auth::{Caller, Rpc};
use crate::drill::{self, ShockSpec};
use crate::proto::{self, reschedule_event::Event};
use crate::store::{DrillOrigin, PlanRecord};

/// Largest stability weight accepted: beyond it σ only scales the cost.
pub const MAX_SIGMA: f64 = 1e6;

impl From<RescheduleError> for ApiError {
    fn from(e: RescheduleError) -> Self {
        match e {
            RescheduleError::Freeze(f) => ApiError::Freeze(f),
            // The service reads the plan from its own store, where it was
            // solved for this scenario: a misfit is a broken store.
            RescheduleError::Published(v) => ApiError::Internal(format!(
                "stored plan does not fit its scenario: {}",
                v.errors
                    .first()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            )),
            RescheduleError::Plan(p) => ApiError::from(p),
        }
    }
}

/// A checked request.
struct Params {
    /// As read from the request: [`shocked_scenario`] checks them.
    shocks: Vec<Result<ShockSpec, FieldError>>,
    freeze_weeks: usize,
    sigma: f64,
    time_limit: Option<f64>,
    name: String,
    /// The request's own bad fields (σ, time limit, name). The shocks can
    /// only be checked against the plan's scenario, so these wait for them
    /// and one answer names both; `sigma` and `time_limit` are read from the
    /// request as they are, and used only once these are empty.
    bad: Vec<(&'static str, String)>,
}

/// The request read: the shocks' count checked now (a call with none, or
/// too many, stops here, naming the other bad fields too); the rest waits
/// for the shocks in [`Params::bad`].
fn params(r: &proto::RescheduleRequest) -> Result<Params, ApiError> {
    let mut bad = Vec::new();
    if !(r.sigma.is_finite() && (0.0..=MAX_SIGMA).contains(&r.sigma)) {
        bad.push((
            "sigma",
            format!("must be a number in [0, {MAX_SIGMA}], got {}", Num(r.sigma)),
        ));
    }
    let t = r.replan_time_limit_seconds;
    if !(t.is_finite() && t >= 0.0) {
        bad.push((
            "replan_time_limit_seconds",
            format!("must be a number of seconds >= 0, got {}", Num(t)),
        ));
    }
    if let Some(m) = examcap_solver::validate::name_problem(&r.name) {
        bad.push(("name", m));
    }
    let shocks =
        shock_specs(&r.shocks).map_err(|e| crate::api::also(e, ApiError::fields(bad.clone())))?;
    Ok(Params {
        shocks,
        freeze_weeks: r.freeze_weeks as usize,
        sigma: r.sigma,
        time_limit: (t > 0.0).then_some(t),
        name: r.name.clone(),
        bad,
    })
}

fn moves(m: &[Move]) -> Vec<proto::CandidateMove> {
    m.iter()
        .map(|m| proto::CandidateMove {
            location: m.location.clone(),
            week: u32::try_from(m.week).unwrap_or(u32::MAX),
            exam: m.exam.clone(),
            before: m.published,
            after: m.replanned,
        })
        .collect()
}

fn extra_change(c: &ExtraChange) -> proto::ExtraChange {
    proto::ExtraChange {
        location: c.location.clone(),
        kind: c.kind.clone(),
        pool: c.pool.clone(),
        week: u32::try_from(c.week).unwrap_or(u32::MAX),
        before_minutes: c.before_minutes,
        after_minutes: c.after_minutes,
    }
}

/// The first answer as an event.
pub fn repair_event(
    scenario_id: &str,
    touched: &BTreeSet<String>,
    published: &Plan,
    r: &Repair,
    seconds: f64,
) -> proto::RescheduleEvent {
    proto::RescheduleEvent {
        event: Some(Event::Repair(proto::Repair {
            scenario_id: scenario_id.into(),
            touched_exams: touched.iter().cloned().collect(),
            violation: r.values.violation,
            cost: r.values.cost,
            removed: r.removed,
            placed: r.placed,
            moves: moves(&diff_rows(&published.allocation, &r.allocation)),
            waits: wait_changes_of(&published.waits, &r.waits),
            extra: Some(proto::ExtraCapacity {
                seat_minutes: r.extra_seats.iter().map(|e| e.minutes).sum(),
                seat_cost: r.values.extra_seat_cost,
                rater_minutes: r.extra_raters.iter().map(|e| e.minutes).sum(),
                rater_cost: r.values.extra_rater_cost,
            }),
            seconds,
        })),
    }
}

/// The re-plan against the plan started from, as an event.
pub fn diff_event(published: &Plan, re: &Plan) -> proto::RescheduleEvent {
    proto::RescheduleEvent {
        event: Some(Event::Diff(proto::RescheduleDiff {
            moves: moves(&diff(published, re)),
            extra_changes: extra_changes(
                (&published.extra_seats, &published.extra_raters),
                (&re.extra_seats, &re.extra_raters),
            )
            .iter()
            .map(extra_change)
            .collect(),
            waits: wait_changes_of(&published.waits, &re.waits),
            extra_before: Some(extra_capacity(published)),
            extra_after: Some(extra_capacity(re)),
        })),
    }
}

/// The least time left before the deadline in which a re-plan is started.
const MIN_REPLAN_TIME: Duration = Duration::from_millis(150);

/// How much of a Reschedule call's deadline the re-plan keeps back for
/// the end event. Past HiGHS's first steps (see [`MIN_REPLAN_TIME`]) the
/// re-plan stops 20–30 ms after its time limit: from a Python client on the
/// national plan the end came at 471 and 930 ms for deadlines of 500 and
/// 1,000 ms when a tenth was kept back, while at 100–300 ms the client's
/// deadline cut the stream after the repair. At least 100 ms then, but
/// never more than half the deadline.
pub(crate) fn replan_margin(timeout: Duration) -> Duration {
    deadline_margin(timeout)
        .max(Duration::from_millis(100))
        .min(timeout / 2)
}

/// The last event of a stream.
pub fn end(status: proto::RescheduleStatus, message: impl Into<String>) -> proto::RescheduleEvent {
    proto::RescheduleEvent {
        event: Some(Event::End(proto::RescheduleEnd {
            status: status as i32,
            message: message.into(),
        })),
    }
}

/// The optimal re-plan (stored as `rec`) as an event.
pub fn replan_event(rec: &PlanRecord, seconds: f64) -> proto::RescheduleEvent {
    proto::RescheduleEvent {
        event: Some(Event::Replan(proto::Replan {
            plan: Some(summary(rec)),
            seconds,
        })),
    }
}

/// What the re-plan task needs once the repair is out.
struct ReplanJob {
    caller: Caller,
    ticket: Ticket,
    shocked: Scenario,
    scenario_id: String,
    published: Plan,
    /// The plan re-planned is a drill's: the re-plan is a what-if too,
    /// stored as a drill's and never published.
    what_if: bool,
    touched: BTreeSet<String>,
    params: Params,
    deadline: Option<Instant>,
    start: Instant,
}

type Tx = mpsc::UnboundedSender<Result<proto::RescheduleEvent, Status>>;

impl Api {
    /// Everything up to the repair: load, shock, repair, then store the
    /// shocked scenario. Errors here are the call's status, and a call
    /// refused here (bad shock, broken freeze, full queue) stores nothing.
    async fn prepare(
        &self,
        caller: Caller,
        r: proto::RescheduleRequest,
        deadline: Option<Instant>,
        start: Instant,
    ) -> Result<(proto::RescheduleEvent, ReplanJob), ApiError> {
        let mut params = params(&r)?;
        let plan_rec: PlanRecord = if r.plan_id.is_empty() {
            let id = self
                .db(|s| s.published())
                .await?
                .ok_or(ApiError::NothingPublished)?;
            self.plan_record(&id).await?
        } else {
            self.plan_record(&r.plan_id).await?
        };
        let base_rec = self.scenario_record(&plan_rec.scenario_id).await?;
        let rec = base_rec.clone();
        let (shock_specs, bad) = (
            std::mem::take(&mut params.shocks),
            std::mem::take(&mut params.bad),
        );
        let (freeze_weeks, given_name) = (params.freeze_weeks, params.name.clone());
        let (base, shocked, shocks) = off_runtime(
            deadline,
            "the shocks were applied, before the repair",
            move || {
                let base = Self::load_scenario(&rec)?;
                let freeze = if freeze_weeks > base.horizon_weeks {
                    Err(ApiError::invalid(
                        "freeze_weeks",
                        format!(
                            "must be <= the horizon ({} weeks), got {}",
                            base.horizon_weeks, freeze_weeks
                        ),
                    ))
                } else {
                    Ok(())
                };
                let name = if given_name.is_empty() {
                    examcap_solver::validate::derived_name(&base.name, "+reschedule")
                } else {
                    given_name
                };
                // A freeze past the horizon, the request's other bad fields and bad
                // shocks in one answer.
                let own = crate::api::both(freeze, ApiError::fields(bad)).map(|_| ());
                let (shocked, shocks) = shocked_scenario(&base, &shock_specs, &name, own)?;
                Ok((base, shocked, shocks))
            },
        )
        .await?;
        let origin = DrillOrigin {
            base_scenario_id: base_rec.id.clone(),
            shocks: serde_json::to_value(&shocks)
                .map_err(|e| ApiError::Internal(format!("shocks to JSON: {e}")))?,
            reschedule: !(plan_rec.drill || crate::api::what_if(&base_rec)),
        };
        let what_if = plan_rec.drill || crate::api::what_if(&base_rec);
        // Admitted before the stream starts, so a full queue is the call's status.
        let ticket = self.gate().admit()?;

        let published = plan_rec.plan;
        let freeze = params.freeze_weeks;
        let named = drill::named_exams(&base, &shocks);
        let (touched, rep, shocked, published) = tokio::task::spawn_blocking(move || {
            let touched = touched_by(&base, &shocked, &named);
            let rep = repair(&shocked, &published, &touched, freeze);
            (touched, rep, shocked, published)
        })
        .await
        .map_err(|e| ApiError::Internal(format!("repair task failed: {e}")))?;
        let rep = rep?;
        // Past the deadline already: the caller is going, so store nothing.
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(ApiError::DeadlineExceeded(
                "the deadline struck before the repair was ready".into(),
            ));
        }
        // Stored with its audit entry in one write. Audited now: the
        // re-plan (audited again with its plan id) may never come.
        let (shocked_rec, _) = self
            .store_scenario(&shocked, Some(origin), (&caller, Rpc::Reschedule))
            .await?;
        tracing::info!(
            scenario = %shocked_rec.id,
            touched = touched.len(),
            placed = rep.placed,
            removed = rep.removed,
            "repair ready"
        );
        let event = repair_event(
            &shocked_rec.id,
            &touched,
            &published,
            &rep,
            start.elapsed().as_secs_f64(),
        );
        let job = ReplanJob {
            caller,
            ticket,
            shocked,
            scenario_id: shocked_rec.id,
            published,
            what_if,
            touched,
            params,
            deadline,
            start,
        };
        Ok((event, job))
    }

    /// The optimal re-plan, its diff and the end event (see the module docs).
    async fn finish(&self, job: ReplanJob, tx: Tx) {
        let out = self.optimal(job, &tx).await;
        let last = match out {
            Ok(events) => {
                for e in events {
                    let _ = tx.send(Ok(e));
                }
                return;
            }
            Err(ApiError::DeadlineExceeded(why)) => Ok(end(
                proto::RescheduleStatus::OptimumNotReached,
                format!(
                    "{why}; only the repair was sent: it is feasible but not optimal. \
                     Ask again with more time for the optimal re-plan."
                ),
            )),
            // The client went away: nobody to tell.
            Err(ApiError::Cancelled) => return,
            Err(e) => {
                tracing::warn!(error = %e, "re-plan failed");
                Err(Status::from(e))
            }
        };
        let _ = tx.send(last);
    }

    async fn optimal(
        &self,
        job: ReplanJob,
        tx: &Tx,
    ) -> Result<Vec<proto::RescheduleEvent>, ApiError> {
        let permit = self.gate().slot_while_open(tx).await?;
        let mut opts = PlanOptions {
            time_limit_seconds: job.params.time_limit,
            ..PlanOptions::default()
        };
        // HiGHS looks at its time limit only after its first steps (about
        // 130 ms on the national speaking block): with less time left, the
        // re-plan could only overrun the caller's deadline.
        if let Some(left) = cap_time_limit(&mut opts, job.deadline, "re-plan")? {
            if left < MIN_REPLAN_TIME {
                return Err(ApiError::DeadlineExceeded(format!(
                    "{} ms of the deadline left, less than the {} ms a re-plan needs to \
                     start and stop in time",
                    left.as_millis(),
                    MIN_REPLAN_TIME.as_millis()
                )));
            }
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let watcher = cancel_on_close(tx, &cancel);
        let span = tracing::Span::current();
        let progress_tx = tx.clone();
        let ReplanJob {
            caller,
            ticket,
            shocked,
            scenario_id,
            published,
            what_if,
            touched,
            params,
            start,
            ..
        } = job;
        let solved = tokio::task::spawn_blocking(move || {
            let _enter = span.enter();
            let _held = (ticket, permit);
            let progress = |p| {
                let _ = progress_tx.send(Ok(proto::RescheduleEvent {
                    event: Some(Event::Progress(progress_proto(p))),
                }));
            };
            let re = replan_with(
                &shocked,
                &published,
                &touched,
                params.freeze_weeks,
                params.sigma,
                &opts,
                Hooks {
                    progress: &progress,
                    cancel: Some(&cancel),
                },
            );
            (re, published)
        })
        .await;
        watcher.abort();
        let (re, published) =
            solved.map_err(|e| ApiError::Internal(format!("re-plan task failed: {e}")))?;
        let re = match re {
            Err(RescheduleError::Plan(PlanError::Solve(s @ SolveError::TimeLimit(_)))) => {
                return Err(ApiError::DeadlineExceeded(format!(
                    "the re-plan's {s} (deadline or replan_time_limit_seconds)"
                )))
            }
            other => other?,
        };
        // The caller went away after the last HiGHS run: cancelled all the
        // same, nothing stored (as for a Solve).
        if tx.is_closed() {
            return Err(ApiError::Cancelled);
        }
        let status = re.status;
        let rec = self
            .store_plan(re, &scenario_id, what_if, (&caller, Rpc::Reschedule))
            .await?;
        tracing::info!(plan = %rec.id, "re-plan stored (not published)");
        let (end_status, message) = match status {
            PlanStatus::Optimal if rec.drill => (
                proto::RescheduleStatus::Optimal,
                format!(
                    "optimal re-plan {} stored as a what-if: it re-plans a drill's plan, and \
                     cannot be published",
                    rec.id
                ),
            ),
            PlanStatus::Optimal => (
                proto::RescheduleStatus::Optimal,
                format!(
                    "optimal re-plan {} stored, not published: PlanService.Publish makes it live",
                    rec.id
                ),
            ),
            PlanStatus::Stage2TimeLimit => (
                proto::RescheduleStatus::Stage2TimeLimit,
                format!(
                    "re-plan {} keeps V* optimal but stage 2 hit the time limit: its cost is \
                     not minimal and it cannot be published",
                    rec.id
                ),
            ),
        };
        Ok(vec![
            replan_event(&rec, start.elapsed().as_secs_f64()),
            diff_event(&published, &rec.plan),
            end(end_status, message),
        ])
    }
}

/// The stream of a Reschedule call.
pub type RescheduleStream =
    Pin<Box<dyn Stream<Item = Result<proto::RescheduleEvent, Status>> + Send>>;

#[tonic::async_trait]
impl proto::reschedule_service_server::RescheduleService for Api {
    type RescheduleStream = RescheduleStream;

    #[tracing::instrument(name = "RescheduleService/Reschedule", skip_all, fields(caller, plan))]
    async fn reschedule(
        &self,
        req: Request<proto::RescheduleRequest>,
    ) -> Result<Response<Self::RescheduleStream>, Status> {
        let start = Instant::now();
        let caller = self.check(&req, Rpc::Reschedule)?;
        // Kept back from the deadline so the end event is on the wire before it.
        let deadline = grpc_timeout(req.metadata())
            .and_then(|d| start.checked_add(d.saturating_sub(replan_margin(d))));
        let r = req.into_inner();
        tracing::Span::current().record("plan", r.plan_id.as_str());
        let (first, job) = self.prepare(caller, r, deadline, start).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(Ok(first));
        let api = self.clone();
        tokio::spawn(async move { api.finish(job, tx).await }.in_current_span());
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(rx))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replan_keeps_back_room_for_its_end_event() {
        let ms = Duration::from_millis;
        // Short deadlines keep back at least the measured overshoot ...
        assert_eq!(replan_margin(ms(300)), ms(100));
        assert_eq!(replan_margin(ms(1_000)), ms(100));
        // ... never more than half of them ...
        assert_eq!(replan_margin(ms(150)), ms(75));
        assert_eq!(replan_margin(ms(0)), ms(0));
        // ... and long ones what every call keeps back.
        assert_eq!(replan_margin(ms(2_000)), deadline_margin(ms(2_000)));
    }
}
