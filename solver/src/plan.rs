//! What a solve returns, and the pipeline that makes it:
//! validate → index → blocks → two-stage solve → rounding → waits → duals.

use crate::duals::{self, Recommendation, ShadowPrice};
use crate::model::{build_block, BlockLp, Col, Instance, Replan};
use crate::rounding::{self, Allocation, Cell, Evaluation};
use crate::scenario::Scenario;
use crate::solve::{self, SessionProbe, SolveError, SolveOptions};
use crate::validate::{self, ValidationErrors};
use crate::waits::{self, Cohort, ExamWaits};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// The `format` of a plan document.
pub const PLAN_FORMAT: &str = "examcap/plan@1";

/// Above this many independent blocks, the smallest are merged so that
/// one thread per block stays affordable. Merging is exact (blocks are
/// independent); it only gives up some parallelism.
pub const MAX_BLOCKS: usize = 32;

/// Options of a solve. Everything here except `time_limit_seconds` and
/// `parallel` can change the plan, so all of it is recorded in the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanOptions {
    /// Wall-clock limit for both stages; `None` solves to optimality.
    pub time_limit_seconds: Option<f64>,
    /// Minutes of "one extra session" in the recommendations.
    pub session_minutes: f64,
    /// How many recommendations to keep (at most [`MAX_RECOMMENDATIONS`]):
    /// each is found by re-solving, which costs time on large scenarios.
    pub recommendations: usize,
    /// Blocks solved at once; 0 = number of cores. Does not change the result.
    #[serde(default)]
    pub parallel: usize,
    /// Merge regions whose options and registrations are proportional twins
    /// into one LP stream (exact; see `model`). Off only to measure it.
    #[serde(default = "yes")]
    pub merge_twins: bool,
}

fn yes() -> bool {
    true
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            time_limit_seconds: None,
            session_minutes: 240.0,
            recommendations: 10,
            parallel: 0,
            merge_twins: true,
        }
    }
}

/// How the solve ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanStatus {
    /// Both stages optimal.
    Optimal,
    /// Stage 1 optimal (V* is exact), stage 2 stopped by the time limit:
    /// the plan keeps the waiting promise but its cost is not minimal.
    Stage2TimeLimit,
}

/// A pipeline step, for progress reports and timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Validate,
    Build,
    Stage1,
    Stage2,
    Rounding,
    Waits,
    Duals,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Validate => "validate",
            Step::Build => "build",
            Step::Stage1 => "stage1",
            Step::Stage2 => "stage2",
            Step::Rounding => "rounding",
            Step::Waits => "waits",
            Step::Duals => "duals",
        }
    }
}

/// A progress event: step `step` is `done`/`total` through.
#[derive(Debug, Clone, Copy)]
pub struct PlanProgress {
    pub step: Step,
    pub done: usize,
    pub total: usize,
    pub elapsed: Duration,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("invalid scenario:\n{0}")]
    Invalid(#[from] ValidationErrors),
    #[error(transparent)]
    Solve(#[from] SolveError),
}

/// Which scenario a plan is for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioRef {
    pub name: String,
    /// [`Scenario::content_hash`].
    pub content_hash: String,
    pub start_week: String,
    pub horizon_weeks: usize,
}

/// Provenance of the numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SolverInfo {
    pub name: String,
    pub version: String,
    pub method: String,
    pub random_seed: i32,
    pub options: PlanOptions,
    pub blocks: usize,
    pub lp_columns: usize,
    pub lp_rows: usize,
}

/// Objective values of an allocation and their parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Values {
    /// Σ π·s: priority-weighted candidate-weeks over target.
    pub violation: f64,
    /// C: extra seats + extra raters + travel + waiting.
    pub cost: f64,
    pub extra_seat_cost: f64,
    pub extra_rater_cost: f64,
    pub travel_cost: f64,
    pub waiting_cost: f64,
}

impl From<&Evaluation> for Values {
    fn from(e: &Evaluation) -> Self {
        Values {
            violation: e.violation,
            cost: e.cost,
            extra_seat_cost: e.extra_seat_cost,
            extra_rater_cost: e.extra_rater_cost,
            travel_cost: e.travel_cost,
            waiting_cost: e.waiting_cost,
        }
    }
}

/// Seconds per pipeline step (the only part of a plan that varies between
/// two solves of the same scenario with the same options).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub validate: f64,
    pub build: f64,
    pub stage1: f64,
    pub stage2: f64,
    pub rounding: f64,
    pub waits: f64,
    pub duals: f64,
    pub total: f64,
}

/// Whole candidates of a region sitting an exam at a location in a week.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationRow {
    pub region: String,
    pub exam: String,
    pub location: String,
    pub week: usize,
    pub candidates: u64,
}

/// Extra seat minutes bought.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtraSeats {
    pub location: String,
    pub kind: String,
    pub week: usize,
    /// What the LP bought.
    pub lp_minutes: f64,
    /// What the integral plan buys: what it uses beyond regular capacity
    /// (usually ≤ lp_minutes; more where rounding half up needed it).
    pub minutes: f64,
}

/// Extra rater minutes bought.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtraRaters {
    pub pool: String,
    pub week: usize,
    pub lp_minutes: f64,
    pub minutes: f64,
}

/// Over-target candidate-weeks of one exam in one region (the s of the LP).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverTarget {
    pub exam: String,
    pub region: String,
    pub candidate_weeks: f64,
    /// π_e · candidate_weeks: its share of V*.
    pub weighted: f64,
    /// Same, in the integral plan.
    pub rounded_candidate_weeks: f64,
}

/// FIFO cohorts of one region and exam on the integral plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamCohorts {
    pub region: String,
    pub exam: String,
    pub cohorts: Vec<Cohort>,
}

/// A solved plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format: String,
    pub scenario: ScenarioRef,
    pub status: PlanStatus,
    pub solver: SolverInfo,
    /// V* of the LP (stage 1).
    pub stage1_violation: f64,
    /// C of the LP (stage 2).
    pub stage2_cost: f64,
    /// The LP point's values, split into their parts.
    pub lp: Values,
    /// The integral plan's own V and C.
    pub rounded: Values,
    pub seconds: Timings,
    /// The integral allocation (cells with at least one candidate).
    pub allocation: Vec<AllocationRow>,
    pub extra_seats: Vec<ExtraSeats>,
    pub extra_raters: Vec<ExtraRaters>,
    /// National waiting-time figures per exam (integral plan).
    pub waits: Vec<ExamWaits>,
    pub cohorts: Vec<StreamCohorts>,
    /// Where targets break: the s that make up V*, per exam and region.
    pub over_target: Vec<OverTarget>,
    /// Duals of every seat and rater constraint.
    pub shadow_prices: Vec<ShadowPrice>,
    /// Where one extra session helps most.
    pub recommendations: Vec<Recommendation>,
    /// The time limit stopped the search for those places before it was
    /// done (stage 2 comes first): places may be missing from the list.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recommendations_cut: bool,
}

impl Plan {
    /// SHA-256 of the plan without its timings: equal for two solves of the
    /// same scenario with the same options.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut p = self.clone();
        p.seconds = Timings::default();
        p.solver.options.parallel = 0;
        p.solver.options.time_limit_seconds = None;
        p.solver.options.merge_twins = true;
        let bytes = serde_json::to_vec(&p).expect("a plan always serialises");
        Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Groups blocks so there are at most `max` of them: the largest keep their
/// own group, the rest go round-robin into the remaining ones.
fn group_blocks(mut blocks: Vec<Vec<usize>>, max: usize) -> Vec<Vec<usize>> {
    if blocks.len() <= max {
        return blocks;
    }
    blocks.sort_by_key(|b| std::cmp::Reverse(b.len()));
    let mut groups: Vec<Vec<usize>> = vec![Vec::new(); max];
    for (i, b) in blocks.into_iter().enumerate() {
        groups[i % max].extend(b);
    }
    for g in &mut groups {
        g.sort_unstable();
    }
    groups.sort();
    groups
}

/// Seat minutes demanded (forecast + backlog) per regular seat minute
/// available, over a block's kinds: a cheap guess at how hard its LP is.
fn tightness(inst: &Instance, streams: &[usize]) -> f64 {
    let mut demand = 0.0;
    let mut kinds = BTreeSet::new();
    for &s in streams {
        let st = &inst.lp_streams[s];
        let total: f64 = st.demand.iter().sum::<f64>() + st.initial_backlog();
        demand += total * inst.seat_minutes[st.exam];
        kinds.insert(inst.exam_kind[st.exam]);
    }
    let capacity: f64 = (0..inst.capacity.len())
        .flat_map(|l| kinds.iter().map(move |&k| (l, k)))
        .flat_map(|(l, k)| (0..inst.weeks).map(move |t| inst.seat_capacity(l, k, t).0))
        .sum();
    if capacity > 0.0 {
        demand / capacity
    } else {
        f64::INFINITY
    }
}

/// The most recommendations a plan keeps: each place listed costs a
/// re-solve or more per block (about 10–30 ms on the national scenario).
pub const MAX_RECOMMENDATIONS: usize = 50;

/// Re-solves per block for the recommendations: one per place listed where
/// the duals' ranking holds, with room for places whose dual promises more
/// than a re-solve finds (ties at a degenerate optimum: every location's
/// booths in the weeks where the rater pool is full, say). A count, not a
/// time, so that the plan does not depend on the machine.
fn session_resolves(listed: usize) -> usize {
    3 * listed + 100
}

/// Solves a scenario end to end. `progress` sees every step as it goes.
pub fn plan_scenario(
    sc: &Scenario,
    opts: &PlanOptions,
    progress: &(dyn Fn(PlanProgress) + Sync),
) -> Result<Plan, PlanError> {
    plan_scenario_cancellable(sc, opts, progress, None)
}

/// [`plan_scenario`] that stops with [`SolveError::Cancelled`] once `cancel`
/// is set (a client went away). The flag is checked before every HiGHS run;
/// a run already under way finishes first (HiGHS cannot be interrupted from
/// safe Rust), so on the national scenario the stop comes within ~3 s.
pub fn plan_scenario_cancellable(
    sc: &Scenario,
    opts: &PlanOptions,
    progress: &(dyn Fn(PlanProgress) + Sync),
    cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
) -> Result<Plan, PlanError> {
    run_pipeline(sc, opts, progress, cancel, None)
}

/// What turns the pipeline into a re-plan (see [`crate::reschedule`]).
pub(crate) struct Restriction<'a> {
    /// The extras of every re-optimised block.
    pub replan: &'a Replan,
    /// Exams (indices) whose blocks are re-optimised.
    pub touched: &'a BTreeSet<usize>,
    /// The published integral allocation of every stream not re-optimised,
    /// with the extra seats and raters it buys (merge_twins = false indices).
    pub fixed: &'a Allocation,
}

/// The pipeline of [`plan_scenario_cancellable`]; with a restriction, only
/// the blocks holding a touched exam are built (as re-plan LPs) and solved,
/// and the rest is the restriction's fixed allocation.
pub(crate) fn run_pipeline(
    sc: &Scenario,
    opts: &PlanOptions,
    progress: &(dyn Fn(PlanProgress) + Sync),
    cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    restrict: Option<&Restriction>,
) -> Result<Plan, PlanError> {
    let start = Instant::now();
    let mut seconds = Timings::default();
    let report = |step: Step, done: usize, total: usize| {
        progress(PlanProgress {
            step,
            done,
            total,
            elapsed: start.elapsed(),
        })
    };
    let timed = |step: Step, t: &mut f64, f: &mut dyn FnMut()| {
        let span = tracing::info_span!(
            "solver_step",
            step = step.name(),
            seconds = tracing::field::Empty
        );
        let _g = span.enter();
        let t0 = Instant::now();
        report(step, 0, 1);
        f();
        *t = t0.elapsed().as_secs_f64();
        span.record("seconds", *t);
        report(step, 1, 1);
    };

    let mut valid = Ok(());
    timed(Step::Validate, &mut seconds.validate, &mut || {
        valid = validate::validate_scenario(sc)
    });
    valid?;

    let mut inst = None;
    let mut lps: Vec<BlockLp> = Vec::new();
    timed(Step::Build, &mut seconds.build, &mut || {
        let i = Instance::new(sc, opts.merge_twins && restrict.is_none());
        let mut blocks = i.blocks();
        if let Some(r) = restrict {
            blocks.retain(|b| b.iter().any(|&s| r.touched.contains(&i.lp_streams[s].exam)));
        }
        let mut groups = group_blocks(blocks, MAX_BLOCKS);
        // Hardest first: the solve of the tightest block is the critical path.
        groups.sort_by(|a, b| tightness(&i, b).total_cmp(&tightness(&i, a)).then(a.cmp(b)));
        lps = std::thread::scope(|s| {
            let handles: Vec<_> = groups
                .iter()
                .map(|g| {
                    let i = &i;
                    s.spawn(move || build_block(i, g, restrict.map(|r| r.replan)))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("model building does not panic"))
                .collect()
        });
        inst = Some(i);
    });
    let inst = inst.expect("built above");
    tracing::info!(
        blocks = lps.len(),
        columns = lps.iter().map(BlockLp::num_cols).sum::<usize>(),
        rows = lps.iter().map(BlockLp::num_rows).sum::<usize>(),
        "model built"
    );

    // Streams re-optimised by a re-plan (all of them in a plain solve), and
    // the (V, C) of the rest, the re-plan's fixed part.
    let solved: BTreeSet<usize> = lps
        .iter()
        .flat_map(|lp| lp.streams.iter().copied())
        .collect();
    let fixed = restrict.map(|r| fixed_values(&inst, r.fixed, &solved));
    let solve_opts = SolveOptions {
        deadline: opts
            .time_limit_seconds
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| start + Duration::from_secs_f64(s.min(1e7))),
        parallel: opts.parallel,
        cancel,
        fixed_violation: fixed.map_or(0.0, |(v, _)| v),
        sessions: (opts.recommendations > 0).then_some(SessionProbe {
            minutes: opts.session_minutes,
            limit: opts.recommendations,
            max_resolves: session_resolves(opts.recommendations),
        }),
    };
    let t_solve = Instant::now();
    let results = {
        let span = tracing::info_span!("solver_step", step = "solve", blocks = lps.len());
        let _g = span.enter();
        solve::solve_blocks(&lps, &solve_opts, &|p| {
            let step = match p.stage {
                solve::Stage::Stage1 => Step::Stage1,
                solve::Stage::Stage2 => Step::Stage2,
            };
            report(step, p.done, p.total)
        })?
    };
    seconds.stage1 = results.iter().map(|r| r.stage1_seconds).fold(0.0, f64::max);
    seconds.stage2 = (t_solve.elapsed().as_secs_f64() - seconds.stage1).max(0.0);

    let status = if results.iter().all(|r| r.stage2_complete) {
        PlanStatus::Optimal
    } else {
        PlanStatus::Stage2TimeLimit
    };
    // `+ 0.0`: an empty f64 sum is −0.0, which a plan without demand
    // would print as "-0.0".
    let mut stage1_violation: f64 = results.iter().map(|r| r.violation).sum::<f64>() + 0.0;
    // C leaves out a re-plan's stability term σ·|x − x_published| (up to
    // its constant): that is not a cost of the plan.
    let mut stage2_cost: f64 = lps
        .iter()
        .zip(&results)
        .map(|(lp, res)| lp.plan_cost(&res.values))
        .sum::<f64>()
        + 0.0;
    let mut lp_alloc = lp_allocation(&inst, &lps, &results);
    if let (Some(r), Some((v, c))) = (restrict, fixed) {
        stage1_violation += v;
        stage2_cost += c;
        lp_alloc.x.extend(r.fixed.x.iter().map(|(&c, &v)| (c, v)));
        lp_alloc
            .extra_seats
            .extend(r.fixed.extra_seats.iter().map(|(&c, &v)| (c, v)));
        lp_alloc
            .extra_raters
            .extend(r.fixed.extra_raters.iter().map(|(&c, &v)| (c, v)));
    }
    let lp_eval = rounding::evaluate(&inst, &lp_alloc);

    let mut int = Allocation::default();
    let mut int_eval = Evaluation::default();
    timed(Step::Rounding, &mut seconds.rounding, &mut || {
        // A re-plan keeps its frozen weeks and fixed streams as published.
        let pinned = |s: usize, t: usize| {
            restrict.is_some_and(|r| {
                t < r.replan.freeze_weeks
                    || !solved.contains(&s)
                    || r.replan.pinned_streams.contains(&s)
            })
        };
        // Twins of a merged stream are rounded together, not each by its share.
        let start = rounding::whole_twins(&inst, &lp_alloc);
        int = rounding::round_pinned(&inst, &start, &pinned);
        if let Some(r) = restrict.filter(|r| r.replan.sigma > 0.0) {
            rounding::restore_published(
                &inst,
                &mut int,
                &r.replan.published,
                r.replan.sigma,
                &pinned,
            );
        }
        int_eval = rounding::evaluate(&inst, &int);
    });

    let mut cohorts = Vec::new();
    let mut exam_waits = Vec::new();
    timed(Step::Waits, &mut seconds.waits, &mut || {
        let served = rounding::exams_per_week(&inst, &int);
        cohorts = (0..inst.streams.len())
            .map(|s| waits::cohorts(&inst, s, &served[s]))
            .collect::<Vec<_>>();
        let ids: Vec<String> = sc.exams.iter().map(|e| e.id.clone()).collect();
        exam_waits = waits::exam_waits(&inst, &ids, &cohorts);
    });

    let mut shadow_prices = Vec::new();
    let mut recommendations = Vec::new();
    timed(Step::Duals, &mut seconds.duals, &mut || {
        shadow_prices = duals::shadow_prices(sc, &inst.kinds, &lps, &results);
        recommendations = duals::recommendations(
            sc,
            &inst.kinds,
            &lps,
            &results,
            opts.session_minutes,
            opts.recommendations,
        );
    });

    let region = |s: usize| sc.regions[inst.streams[s].region].id.clone();
    let exam = |s: usize| sc.exams[inst.streams[s].exam].id.clone();
    let allocation = int
        .x
        .iter()
        .map(|(c, &v)| AllocationRow {
            region: region(c.stream),
            exam: exam(c.stream),
            location: sc.locations[c.l].id.clone(),
            week: c.t,
            candidates: v as u64,
        })
        .collect();
    // Every cell where the LP or the integral plan buys extra.
    let seat_cells: BTreeSet<(usize, usize, usize)> = lp_alloc
        .extra_seats
        .keys()
        .chain(int.extra_seats.keys())
        .copied()
        .collect();
    let extra_seats = seat_cells
        .into_iter()
        .map(|(l, k, t)| ExtraSeats {
            location: sc.locations[l].id.clone(),
            kind: inst.kinds[k].clone(),
            week: t,
            lp_minutes: lp_alloc.extra_seats.get(&(l, k, t)).copied().unwrap_or(0.0),
            minutes: int.extra_seats.get(&(l, k, t)).copied().unwrap_or(0.0),
        })
        .filter(|x| x.lp_minutes > 1e-9 || x.minutes > 1e-9)
        .collect();
    let rater_cells: BTreeSet<(usize, usize)> = lp_alloc
        .extra_raters
        .keys()
        .chain(int.extra_raters.keys())
        .copied()
        .collect();
    let extra_raters = rater_cells
        .into_iter()
        .map(|(q, t)| ExtraRaters {
            pool: sc.rating_pools[q].id.clone(),
            week: t,
            lp_minutes: lp_alloc.extra_raters.get(&(q, t)).copied().unwrap_or(0.0),
            minutes: int.extra_raters.get(&(q, t)).copied().unwrap_or(0.0),
        })
        .filter(|x| x.lp_minutes > 1e-9 || x.minutes > 1e-9)
        .collect();
    // Stage 2 may leave Σπ·s up to V*·1e-7 + 1e-6 over V*: the LP point's
    // over-target within (twice) that slack makes up no V*, and is no
    // broken target. The integral plan's own over-target always counts.
    let slack = 2.0 * (1e-6 + 1e-7 * stage1_violation);
    let over_target = (0..inst.streams.len())
        .filter_map(|s| {
            let cw: f64 = lp_eval.over_target[s].iter().sum();
            let rcw: f64 = int_eval.over_target[s].iter().sum();
            let priority = inst.priority[inst.streams[s].exam];
            let lp_broken = if priority > 0.0 {
                cw * priority > slack
            } else {
                cw > 1e-6
            };
            (lp_broken || rcw > 1e-6).then(|| OverTarget {
                exam: exam(s),
                region: region(s),
                candidate_weeks: cw,
                weighted: cw * inst.priority[inst.streams[s].exam],
                rounded_candidate_weeks: rcw,
            })
        })
        .collect();
    let cohorts = cohorts
        .into_iter()
        .enumerate()
        .map(|(s, cohorts)| StreamCohorts {
            region: region(s),
            exam: exam(s),
            cohorts,
        })
        .collect();
    seconds.total = start.elapsed().as_secs_f64();

    Ok(Plan {
        format: PLAN_FORMAT.into(),
        scenario: ScenarioRef {
            name: sc.name.clone(),
            content_hash: sc.content_hash(),
            start_week: sc.start_week.clone(),
            horizon_weeks: sc.horizon_weeks,
        },
        status,
        solver: SolverInfo {
            name: "HiGHS".into(),
            version: solve::HIGHS_VERSION.into(),
            method: "block-decomposed lexicographic two-stage LP, dual simplex, \
                     stage 2 hot-started from stage 1's basis"
                .into(),
            random_seed: 0,
            options: opts.clone(),
            blocks: lps.len(),
            lp_columns: lps.iter().map(BlockLp::num_cols).sum(),
            lp_rows: lps.iter().map(BlockLp::num_rows).sum(),
        },
        stage1_violation,
        stage2_cost,
        lp: Values::from(&lp_eval),
        rounded: Values::from(&int_eval),
        seconds,
        allocation,
        extra_seats,
        extra_raters,
        waits: exam_waits,
        cohorts,
        over_target,
        shadow_prices,
        recommendations,
        recommendations_cut: results.iter().any(|r| r.sessions_cut),
    })
}

/// (V, C) of the fixed part of a re-plan: the weighted over-target and
/// waiting of every stream not in `solved`, the travel of `fixed` and the
/// extra capacity it buys, as [`rounding::evaluate`] defines them.
fn fixed_values(inst: &Instance, fixed: &Allocation, solved: &BTreeSet<usize>) -> (f64, f64) {
    let ev = rounding::evaluate(inst, fixed);
    let mut v = 0.0;
    let mut waiting = 0.0;
    for s in (0..inst.streams.len()).filter(|s| !solved.contains(s)) {
        let e = inst.streams[s].exam;
        v += inst.priority[e] * ev.over_target[s].iter().sum::<f64>();
        waiting += inst.waiting_weight * ev.backlog[s].iter().sum::<f64>();
    }
    let c = ev.extra_seat_cost + ev.extra_rater_cost + ev.travel_cost + waiting;
    (v, c)
}

/// The LP point of every block as one allocation over the original
/// streams (merged twins split back by their shares).
pub fn lp_allocation(
    inst: &Instance,
    lps: &[BlockLp],
    results: &[solve::BlockResult],
) -> Allocation {
    let mut a = Allocation::default();
    for (lp, r) in lps.iter().zip(results) {
        for (j, col) in lp.cols.iter().enumerate() {
            let v = r.values[j];
            match *col {
                // A re-plan's x may come in two parts (see `Replan::sigma`).
                Col::X { stream, l, t } | Col::XAbove { stream, l, t } if v > 0.0 => {
                    for &(stream, share) in &inst.members[stream] {
                        *a.x.entry(Cell { stream, t, l }).or_insert(0.0) += v * share;
                    }
                }
                Col::Y { l, k, t } if v > 0.0 => {
                    a.extra_seats.insert((l, k, t), v);
                }
                Col::Z { q, t } if v > 0.0 => {
                    a.extra_raters.insert((q, t), v);
                }
                _ => {}
            }
        }
    }
    a
}
