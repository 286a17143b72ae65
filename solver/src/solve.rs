//! The lexicographic two-stage solve on HiGHS, block by block.
//!
//! Stage 1 minimises V = Σ π·s in every block, in parallel. Stage 2 keeps
//! the block's HiGHS instance (and so its optimal basis), adds the budget row
//! Σ π·s − u ≤ V*_b with a budget column u ≥ 0, swaps in the stage-2 costs
//! and re-solves from the stage-1 basis.
//!
//! DESIGN.md states stage 2 with one *global* row:
//! Σ π·s ≤ V*·(1+1e-7) + 1e-6, i.e. a total slack Δ = V*·1e-7 + 1e-6 on top
//! of V* = Σ_b V*_b that the blocks share. To reproduce that exactly, each
//! block is solved with a near-zero budget τ_b and with the full budget Δ;
//! Δ then goes to the block whose cost drops most with it (the greedy
//! allocation of one small resource among convex piecewise-linear costs),
//! which re-solves with Δ − Σ_{others} τ_b. With a single block the row is
//! exactly DESIGN's.
//!
//! HiGHS runs with one thread per instance (its `threads` option is
//! process-wide, so it is always 1 here) and a fixed random seed; blocks are
//! run on our own threads, so results do not depend on scheduling.

use crate::model::BlockLp;
use highs::{HighsModelStatus, Model, RowProblem, Sense, SolvedModel};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// The HiGHS release that highs-sys builds (its crate version tracks HiGHS).
pub const HIGHS_VERSION: &str = "1.16.0";

/// Stage 1 first solves min V + WARM_WEIGHT·C, then restores the pure
/// costs π and re-solves from that basis, so V* is exact whatever this
/// weight is. The weight only decides where the simplex starts: an optimum
/// of V + εC that is V-optimal is also C-minimal on the V-optimal face, so
/// stage 2 starts next to its own optimum. Measured on the national
/// scenario (BENCHMARKS.md): 1e-2 is fastest; 0 takes 4× as long, and
/// weights ≥ 3e-2 make the weighted LP itself much harder.
pub const WARM_WEIGHT: f64 = 1e-2;

/// Relative and absolute slack of the stage-2 budget row (DESIGN.md).
pub const STAGE2_REL_SLACK: f64 = 1e-7;
pub const STAGE2_ABS_SLACK: f64 = 1e-6;

/// How to run the solve.
#[derive(Debug, Clone, Default)]
pub struct SolveOptions {
    /// Wall-clock deadline for both stages; `None` runs to optimality.
    pub deadline: Option<Instant>,
    /// Blocks solved at once; 0 means the number of cores.
    pub parallel: usize,
    /// Set from outside (a client went away) to stop between solver runs.
    pub cancel: Option<std::sync::Arc<AtomicBool>>,
    /// Σ π·s of the streams outside these blocks (a re-plan's fixed exams).
    /// DESIGN's stage-2 slack is on the whole plan's V*, so it is counted in
    /// Δ = V*·1e-7 + 1e-6; 0 in a plain solve.
    pub fixed_violation: f64,
    /// Re-solve each block with one extra session on its most promising
    /// capacity rows, to say what the session truly saves (see
    /// [`BlockWorker::sessions_v`] and [`BlockWorker::sessions_c`]); `None`
    /// skips it.
    pub sessions: Option<SessionProbe>,
}

/// What the session search is asked: the session's minutes and
/// how many places the plan lists.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SessionProbe {
    /// Minutes of the extra session (seat or rater minutes).
    pub minutes: f64,
    /// Places the plan lists: each block finds its own best this many, so
    /// the plan's best are among them.
    pub limit: usize,
    /// Re-solves per block at most, for scenarios where many places tie.
    pub max_resolves: usize,
}

/// What one extra session on one capacity row saves, found by re-solving
/// the block with the row's capacity raised (not read off the duals).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SessionGain {
    /// The block LP's row.
    pub row: usize,
    /// V saved (priority-weighted over-target candidate-weeks).
    pub violation: f64,
    /// C saved with V unchanged; 0 where V falls.
    pub cost: f64,
}

/// Which stage an event or error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Stage1,
    Stage2,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Stage1 => "stage1",
            Stage::Stage2 => "stage2",
        }
    }
}

/// A progress event: `done` of `total` blocks finished the stage.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub stage: Stage,
    pub done: usize,
    pub total: usize,
    pub elapsed: Duration,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SolveError {
    #[error("time limit reached in {} before an optimal point was found", .0.name())]
    TimeLimit(Stage),
    #[error("solve cancelled")]
    Cancelled,
    #[error("HiGHS failed in {stage}: {message}", stage = .0.name(), message = .1)]
    Solver(Stage, String),
}

/// The outcome for one block.
#[derive(Debug, Clone)]
pub struct BlockResult {
    /// Column values of the final point (stage 2, or stage 1 if stage 2 ran out of time).
    pub values: Vec<f64>,
    /// V*_b: the stage-1 optimum.
    pub violation: f64,
    /// The stage-2 objective `cost2 · values`: C_b, plus a re-plan's
    /// stability term (see [`BlockLp::plan_cost`] for C_b alone).
    pub cost: f64,
    /// Row duals of stage 1 (∂V*/∂rhs, ≤ 0 on capacity rows).
    pub stage1_duals: Vec<f64>,
    /// Row duals of the final stage-2 solve (∂C/∂rhs), if stage 2 finished.
    pub stage2_duals: Option<Vec<f64>>,
    /// The budget u this block's stage 2 was given on top of V*_b.
    pub budget: f64,
    /// False if any stage-2 run of this block hit the time limit: then
    /// `values` is the best point reached (at worst stage 1's), not C's optimum.
    pub stage2_complete: bool,
    pub stage1_seconds: f64,
    pub stage2_seconds: f64,
    /// The block's best places for one extra session, by what a re-solve
    /// says they save (empty unless asked for and stage 2 finished).
    pub sessions: Vec<SessionGain>,
    /// The time limit stopped the session search: places may be missing.
    pub sessions_cut: bool,
}

/// Counting semaphore: at most N HiGHS runs at once, handed out in block
/// order (blocks come hardest first, so the longest solve starts first).
struct Permits {
    state: Mutex<(usize, BTreeSet<usize>)>,
    cv: Condvar,
}

impl Permits {
    fn run<T>(&self, block: usize, f: impl FnOnce() -> T) -> T {
        {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.1.insert(block);
            while st.0 == 0 || st.1.first() != Some(&block) {
                st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            st.0 -= 1;
            st.1.remove(&block);
        }
        self.cv.notify_all();
        let out = f();
        self.state.lock().unwrap_or_else(|e| e.into_inner()).0 += 1;
        self.cv.notify_all();
        out
    }
}

/// The near-zero budget of a block that does not get the shared slack:
/// enough for HiGHS's feasibility tolerance on Σπ·s ≤ V*_b, nothing more.
fn tiny_budget(v_b: f64) -> f64 {
    1e-9 * v_b.max(1.0)
}

/// What the coordinator tells a block after stage 1.
enum Budget {
    /// Only block: solve stage 2 with exactly this budget.
    Single {
        full: f64,
        cost_places: usize,
    },
    /// Several blocks: probe with the full budget (the tiny one is done).
    Probe {
        full: f64,
        cost_places: usize,
    },
    Abort,
}

/// What the coordinator tells a block after the probe.
enum Final {
    /// Solve stage 2 with the budget row priced at λ instead of bounded
    /// (see [`BlockWorker::price`]) and report the point; more follows.
    Price(f64),
    /// Re-solve with this budget.
    Resolve(f64),
    /// Keep the tiny-budget solution.
    KeepTiny,
}

/// What a block reports of a stage-2 point: its excess u = Σπ·s − V*_b
/// over its own stage-1 optimum, and its stage-2 objective.
type CurvePoint = (f64, f64);

/// The shared stage-2 slack Δ split between blocks. Each block's optimal
/// cost C_b(u) as a function of its excess u is convex, decreasing and
/// piecewise linear; `points` holds the points of each curve found so far.
/// Water-filling their lower hulls gives each block its excess and the
/// price λ of the slack (the steepest slope still taken): the optimum of
/// min Σ C_b(u_b) s.t. Σ u_b ≤ Δ over the known points. Blocks start at
/// their smallest known excess (the tiny-budget point).
fn allocate(points: &[Vec<CurvePoint>], delta: f64) -> (Vec<f64>, f64) {
    let hulls: Vec<Vec<CurvePoint>> = points.iter().map(|p| lower_hull(p)).collect();
    let mut u: Vec<f64> = hulls
        .iter()
        .map(|h| h.first().map_or(0.0, |p| p.0))
        .collect();
    let mut left = delta - u.iter().sum::<f64>();
    // (slope, block, length), steepest first; ties by block for determinism.
    let mut segments: Vec<(f64, usize, f64)> = hulls
        .iter()
        .enumerate()
        .flat_map(|(b, h)| {
            h.windows(2)
                .map(move |w| ((w[1].1 - w[0].1) / (w[1].0 - w[0].0), b, w[1].0 - w[0].0))
        })
        .collect();
    segments.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut lambda = 0.0;
    for (slope, b, length) in segments {
        if left <= 0.0 {
            break;
        }
        let take = length.min(left);
        u[b] += take;
        left -= take;
        lambda = -slope;
    }
    (u, lambda)
}

/// The lower convex hull of curve points, by excess, keeping only points
/// where the cost still falls (a larger excess that saves nothing is never
/// worth giving).
fn lower_hull(points: &[CurvePoint]) -> Vec<CurvePoint> {
    let mut pts: Vec<CurvePoint> = points.to_vec();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut hull: Vec<CurvePoint> = Vec::new();
    for p in pts {
        // Sorted by excess, then cost: a point no cheaper than the last
        // kept one (this covers an equal excess) is never on the hull.
        if hull.last().is_some_and(|q| p.1 >= q.1) {
            continue;
        }
        while hull.len() >= 2 {
            let (a, b) = (hull[hull.len() - 2], hull[hull.len() - 1]);
            // b above the chord a→p: not on the lower hull.
            if (b.1 - a.1) * (p.0 - a.0) >= (p.1 - a.1) * (b.0 - a.0) {
                hull.pop();
            } else {
                break;
            }
        }
        hull.push(p);
    }
    hull
}

/// min over `points` of C + λ·u: the best a block's known points do when
/// each unit of excess costs λ.
fn support(points: &[CurvePoint], lambda: f64) -> f64 {
    points
        .iter()
        .map(|&(u, c)| c + lambda * u)
        .fold(f64::INFINITY, f64::min)
}

/// Rounds of pricing before the split of the slack is taken as it stands
/// (each re-solves the blocks that gain from slack, from their last basis).
const MAX_PRICING_ROUNDS: usize = 20;

struct Stage2Point {
    values: Vec<f64>,
    duals: Vec<f64>,
    cost: f64,
}

/// Solves all blocks; the results come back in block order.
pub fn solve_blocks(
    blocks: &[BlockLp],
    opts: &SolveOptions,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Vec<BlockResult>, SolveError> {
    let start = Instant::now();
    let n = blocks.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    let parallel = match opts.parallel {
        0 => std::thread::available_parallelism().map_or(1, |p| p.get()),
        p => p,
    };
    let permits = Permits {
        state: Mutex::new((parallel.min(n), BTreeSet::new())),
        cv: Condvar::new(),
    };
    let permits = &permits;
    // Worker threads do not inherit the caller's span: parent theirs to it.
    let parent = tracing::Span::current();
    let parent = &parent;

    progress(Progress {
        stage: Stage::Stage1,
        done: 0,
        total: n,
        elapsed: start.elapsed(),
    });
    std::thread::scope(|scope| {
        // Each block's V*_b, and how many places its session search found
        // where V falls.
        let (up_tx, up_rx) = mpsc::channel::<(usize, Result<(f64, usize), SolveError>)>();
        let (probe_tx, probe_rx) = mpsc::channel::<(usize, Result<Vec<CurvePoint>, SolveError>)>();
        let (done_tx, done_rx) = mpsc::channel::<(usize, Result<BlockResult, SolveError>)>();
        let mut budget_txs = Vec::with_capacity(n);
        let mut final_txs = Vec::with_capacity(n);
        for (b, lp) in blocks.iter().enumerate() {
            let (budget_tx, budget_rx) = mpsc::channel::<Budget>();
            let (final_tx, final_rx) = mpsc::channel::<Final>();
            budget_txs.push(budget_tx);
            final_txs.push(final_tx);
            let (up_tx, probe_tx, done_tx) = (up_tx.clone(), probe_tx.clone(), done_tx.clone());
            scope.spawn(move || {
                let mut worker = BlockWorker::new(lp, opts);
                // One span per block and stage run, with its size and time.
                let span = |step: &'static str| {
                    tracing::info_span!(
                        parent: parent,
                        "solver_step",
                        step,
                        block = b,
                        columns = lp.num_cols(),
                        rows = lp.num_rows(),
                        seconds = tracing::field::Empty,
                    )
                };
                let timed = |step: &'static str, f: &mut dyn FnMut()| {
                    let span = span(step);
                    let t0 = Instant::now();
                    span.in_scope(f);
                    span.record("seconds", t0.elapsed().as_secs_f64());
                };
                let mut s1 = Err(SolveError::Cancelled);
                permits.run(b, || timed("stage1", &mut || s1 = worker.stage1()));
                // Where one extra session lowers V: on stage 1's optimum.
                if let (Ok(_), Some(probe)) = (&s1, &opts.sessions) {
                    permits.run(b, || {
                        timed("sessions", &mut || {
                            if let Err(e) = worker.sessions_v(probe) {
                                s1 = Err(e);
                            }
                        })
                    });
                }
                let v_b = match s1 {
                    Ok(v_b) => v_b,
                    Err(e) => {
                        let _ = up_tx.send((b, Err(e)));
                        return;
                    }
                };
                let _ = up_tx.send((b, Ok((v_b, worker.v_gains.len()))));
                // Several blocks: the tiny-budget stage 2 needs only this
                // block's V*_b, so it runs while other blocks finish stage 1.
                let tiny = tiny_budget(v_b);
                let tiny_point = if n > 1 {
                    let mut out = Ok(None);
                    permits.run(b, || timed("stage2", &mut || out = worker.stage2(tiny)));
                    match out {
                        Ok(p) => Some(p),
                        Err(e) => {
                            let _ = probe_tx.send((b, Err(e)));
                            return;
                        }
                    }
                } else {
                    None
                };
                let budget = budget_rx.recv();
                let cost_places = match budget {
                    Ok(Budget::Single { cost_places, .. } | Budget::Probe { cost_places, .. }) => {
                        cost_places
                    }
                    _ => 0,
                };
                let point = match (budget, tiny_point) {
                    (Ok(Budget::Single { full, .. }), _) => {
                        let mut out = Ok(None);
                        permits.run(b, || timed("stage2", &mut || out = worker.stage2(full)));
                        out
                    }
                    (Ok(Budget::Probe { full, .. }), Some(tiny_point)) => {
                        // The curve's two ends: the tiny budget and the full one.
                        let ends = match &tiny_point {
                            Some(t) => {
                                let mut out = Ok(None);
                                permits
                                    .run(b, || timed("stage2", &mut || out = worker.stage2(full)));
                                out.map(|f| {
                                    let mut pts = vec![(worker.excess(&t.values), t.cost)];
                                    pts.extend(f.map(|f| (worker.excess(&f.values), f.cost)));
                                    pts
                                })
                            }
                            None => Ok(Vec::new()),
                        };
                        let failed = ends.is_err();
                        let _ = probe_tx.send((b, ends));
                        if failed {
                            return;
                        }
                        loop {
                            match final_rx.recv() {
                                Ok(Final::Price(lambda)) => {
                                    let mut out = Ok(None);
                                    permits.run(b, || {
                                        timed("stage2", &mut || out = worker.price(lambda, full))
                                    });
                                    let failed = out.is_err();
                                    let point = out.map(|p| {
                                        p.map(|p| (worker.excess(&p.values), p.cost))
                                            .into_iter()
                                            .collect()
                                    });
                                    let _ = probe_tx.send((b, point));
                                    if failed {
                                        return;
                                    }
                                }
                                Ok(Final::Resolve(budget)) => {
                                    let mut out = Ok(None);
                                    permits.run(b, || {
                                        timed("stage2", &mut || out = worker.stage2(budget))
                                    });
                                    break out;
                                }
                                Ok(Final::KeepTiny) => {
                                    worker.budget = tiny;
                                    break Ok(tiny_point);
                                }
                                Err(_) => return,
                            }
                        }
                    }
                    _ => return,
                };
                // Where V cannot fall, what one extra session saves in C.
                let gains = match (&point, &opts.sessions) {
                    (Ok(Some(p)), Some(probe)) => {
                        let mut out = Ok(Vec::new());
                        permits.run(b, || {
                            timed("sessions", &mut || {
                                out = worker.sessions_c(probe, p, cost_places)
                            })
                        });
                        out
                    }
                    _ => Ok(Vec::new()),
                };
                let result = point.and_then(|p| {
                    let sessions = gains?;
                    Ok(BlockResult {
                        sessions,
                        ..worker.finish(p)
                    })
                });
                let _ = done_tx.send((b, result));
            });
        }
        drop((up_tx, probe_tx, done_tx));

        // Stage 1 everywhere, then V* = Σ V*_b.
        let mut v = vec![0.0; n];
        let mut v_places = 0;
        let mut first_err: Option<SolveError> = None;
        for done in 1..=n {
            let Ok((b, r)) = up_rx.recv() else { break };
            match r {
                Ok((vb, places)) => {
                    v[b] = vb;
                    v_places += places;
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
            progress(Progress {
                stage: Stage::Stage1,
                done,
                total: n,
                elapsed: start.elapsed(),
            });
        }
        if let Some(e) = first_err {
            for tx in &budget_txs {
                let _ = tx.send(Budget::Abort);
            }
            return Err(e);
        }
        let v_star: f64 = v.iter().sum::<f64>() + opts.fixed_violation;
        let delta = v_star * STAGE2_REL_SLACK + STAGE2_ABS_SLACK;
        // A place that lowers V outranks any that only lowers C: C's
        // places are looked for only if V's do not fill the list.
        let cost_places = opts
            .sessions
            .map_or(0, |p| p.limit.saturating_sub(v_places));

        if n == 1 {
            let _ = budget_txs[0].send(Budget::Single {
                full: delta,
                cost_places,
            });
        } else {
            for tx in &budget_txs {
                let _ = tx.send(Budget::Probe {
                    full: delta,
                    cost_places,
                });
            }
            // Each block's curve C_b(u): the probe's two ends, then points
            // priced at the slack's marginal value λ until no block finds
            // one below its known hull (Dantzig-Wolfe on the one shared
            // row). One block that gains needs no pricing: its final
            // re-solve at the budget it is given is exact.
            let mut points: Vec<Vec<CurvePoint>> = vec![Vec::new(); n];
            let collect = |points: &mut Vec<Vec<CurvePoint>>, want: usize| {
                let mut err = None;
                for _ in 0..want {
                    let Ok((b, r)) = probe_rx.recv() else { break };
                    match r {
                        Ok(p) => points[b].extend(p),
                        Err(e) => {
                            err.get_or_insert(e);
                        }
                    }
                }
                err.map_or(Ok(()), Err)
            };
            collect(&mut points, n)?;
            let gains = |points: &Vec<Vec<CurvePoint>>| -> Vec<usize> {
                (0..n)
                    .filter(|&b| lower_hull(&points[b]).len() > 1)
                    .collect()
            };
            let mut gaining = gains(&points);
            let (mut split, mut lambda) = allocate(&points, delta);
            let mut rounds = 0;
            while gaining.len() > 1 && lambda > 0.0 && rounds < MAX_PRICING_ROUNDS {
                rounds += 1;
                let before: Vec<f64> = gaining
                    .iter()
                    .map(|&b| support(&points[b], lambda))
                    .collect();
                for &b in &gaining {
                    let _ = final_txs[b].send(Final::Price(lambda));
                }
                let mut priced: Vec<Vec<CurvePoint>> = vec![Vec::new(); n];
                collect(&mut priced, gaining.len())?;
                let mut improved = false;
                for (&b, &old) in gaining.iter().zip(&before) {
                    for &(u, c) in &priced[b] {
                        if c + lambda * u < old - 1e-9 * old.abs().max(1.0) {
                            improved = true;
                        }
                    }
                    points[b].append(&mut priced[b]);
                }
                (split, lambda) = allocate(&points, delta);
                if !improved {
                    break;
                }
                gaining = gains(&points);
            }
            for (b, tx) in final_txs.iter().enumerate() {
                let start = lower_hull(&points[b]).first().map_or(0.0, |p| p.0);
                // A budget below the tiny one is below HiGHS's tolerance on
                // the budget row (at V*_b = 7e7 a budget of 3.5e-11 made
                // stage 2 "infeasible"), and the tiny-budget point is
                // already the optimum of any budget up to it.
                let msg = if split[b] > start && split[b] > tiny_budget(v[b]) {
                    Final::Resolve(split[b])
                } else {
                    Final::KeepTiny
                };
                let _ = tx.send(msg);
            }
        }

        let mut results: Vec<Option<BlockResult>> = (0..n).map(|_| None).collect();
        for done in 1..=n {
            let Ok((b, r)) = done_rx.recv() else { break };
            results[b] = Some(r?);
            progress(Progress {
                stage: Stage::Stage2,
                done,
                total: n,
                elapsed: start.elapsed(),
            });
        }
        results
            .into_iter()
            .map(|r| {
                r.ok_or_else(|| SolveError::Solver(Stage::Stage2, "a block worker stopped".into()))
            })
            .collect()
    })
}

/// One block's HiGHS instance, kept on one thread from stage 1 to the end.
struct BlockWorker<'a> {
    lp: &'a BlockLp,
    opts: &'a SolveOptions,
    model: Option<Model>,
    /// HiGHS's column per LP column.
    cols: Vec<highs::Col>,
    budget_col: Option<highs::Col>,
    stage1_values: Vec<f64>,
    stage1_duals: Vec<f64>,
    violation: f64,
    budget: f64,
    stage1_seconds: f64,
    stage2_seconds: f64,
    stage2_timed_out: bool,
    /// Wall time of the HiGHS runs on `model` so far (see [`Self::run`]).
    highs_seconds: f64,
    /// Factor on the priorities in stage 1 and the budget row (see
    /// [`stage1_scale`]); V*, its duals and u stay unscaled.
    scale: f64,
    /// Per row: the column that adds capacity to it (capacity rows, and
    /// only when sessions are probed).
    extra: Vec<Option<highs::Col>>,
    /// What the session search found after stage 1: rows whose V falls,
    /// with the saving, and rows whose V cannot fall.
    v_gains: Vec<(usize, f64)>,
    flat: Vec<usize>,
    resolves_left: usize,
    /// The deadline stopped the session search.
    sessions_cut: bool,
}

/// Stage 1's costs are the priorities π, and HiGHS judges optimality by
/// an absolute tolerance (1e-7 on reduced costs): with π = 1e-6 it stopped
/// at V* = 1.9e-5 where 0 was reachable. Scaling the priorities so that
/// the smallest is 1 (at most by 1e6) keeps them clear of the tolerance;
/// priorities of 1 and more are left as they are.
fn stage1_scale(lp: &BlockLp) -> f64 {
    let smallest = lp
        .stage1_terms()
        .map(|(_, pi)| pi)
        .filter(|&pi| pi > 0.0)
        .fold(f64::INFINITY, f64::min);
    if smallest < 1.0 {
        (1.0 / smallest).min(1e6)
    } else {
        1.0
    }
}

impl<'a> BlockWorker<'a> {
    fn new(lp: &'a BlockLp, opts: &'a SolveOptions) -> Self {
        BlockWorker {
            lp,
            opts,
            model: None,
            cols: Vec::new(),
            budget_col: None,
            stage1_values: Vec::new(),
            stage1_duals: Vec::new(),
            violation: 0.0,
            budget: 0.0,
            stage1_seconds: 0.0,
            stage2_seconds: 0.0,
            stage2_timed_out: false,
            highs_seconds: 0.0,
            scale: 1.0,
            extra: Vec::new(),
            v_gains: Vec::new(),
            flat: Vec::new(),
            resolves_left: opts.sessions.map_or(0, |p| p.max_resolves),
            sessions_cut: false,
        }
    }

    fn remaining(&self, stage: Stage) -> Result<Option<f64>, SolveError> {
        if self
            .opts
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
        {
            return Err(SolveError::Cancelled);
        }
        match self.opts.deadline {
            None => Ok(None),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now()).as_secs_f64();
                if left <= 0.0 {
                    Err(SolveError::TimeLimit(stage))
                } else {
                    Ok(Some(left))
                }
            }
        }
    }

    /// Runs HiGHS on the current model; gives the model back with the solution.
    fn run(&mut self, stage: Stage) -> Result<SolvedModel, SolveError> {
        self.run_with(stage, false)
    }

    /// [`Self::run`] with HiGHS's simplex, or with its interior point
    /// method when `ipm` (the retry after status Unknown; a later run goes
    /// back to simplex from the basis crossover leaves).
    fn run_with(&mut self, stage: Stage, ipm: bool) -> Result<SolvedModel, SolveError> {
        let left = self.remaining(stage)?;
        let mut model = self
            .model
            .take()
            .ok_or_else(|| SolveError::Solver(stage, "no model".into()))?;
        model.set_option("solver", if ipm { "ipm" } else { "choose" });
        // HiGHS compares `time_limit` with the run time of every run on this
        // instance so far, not of this run alone (its run clock accumulates).
        model.set_option(
            "time_limit",
            left.map_or(f64::INFINITY, |l| self.highs_seconds + l),
        );
        let t0 = Instant::now();
        let solved = model.try_solve();
        self.highs_seconds += t0.elapsed().as_secs_f64();
        let solved = solved.map_err(|e| SolveError::Solver(stage, format!("{e:?}")))?;
        tracing::debug!(
            stage = stage.name(),
            columns = self.lp.num_cols(),
            seconds = t0.elapsed().as_secs_f64(),
            iterations = solved.simplex_iteration_count(),
            "HiGHS run"
        );
        match solved.status() {
            HighsModelStatus::Optimal => Ok(solved),
            // The instance stays, with the basis it reached (a session
            // search that runs out of time leaves stage 2 its model).
            HighsModelStatus::ReachedTimeLimit => {
                self.model = Some(solved.into());
                Err(SolveError::TimeLimit(stage))
            }
            HighsModelStatus::ReachedInterrupt => Err(SolveError::Cancelled),
            // Simplex lost its way numerically (seen on stage 2 with a
            // priority of 1e-6 beside one of 1, where both simplex
            // variants ended Unknown): solve once more with the interior
            // point method (with crossover, so a basis follows).
            HighsModelStatus::Unknown if !ipm => {
                tracing::debug!(stage = stage.name(), "HiGHS status Unknown: retrying");
                self.model = Some(solved.into());
                self.run_with(stage, true)
            }
            other => Err(SolveError::Solver(stage, format!("status {other:?}"))),
        }
    }

    /// Stage 1: min V on the weighted objective first (see [`WARM_WEIGHT`]).
    /// A re-plan's stability term is part of that weighting: left out, the
    /// weighted solve is ~1 s faster on the national σ = 0.1 re-plan, but
    /// stage 2 then needs ~2 s of primal simplex to settle which side of
    /// the published values x falls on.
    fn stage1(&mut self) -> Result<f64, SolveError> {
        let t0 = Instant::now();
        self.remaining(Stage::Stage1)?;
        let lp = self.lp;
        let k = stage1_scale(lp);
        self.scale = k;
        let mut pb = RowProblem::default();
        self.cols = (0..lp.num_cols())
            .map(|j| {
                pb.add_column(
                    k * lp.cost1[j] + WARM_WEIGHT * lp.cost2[j],
                    lp.col_lower[j]..=lp.col_upper[j],
                )
            })
            .collect();
        // Transpose CSC → rows.
        let mut row_entries: Vec<Vec<(highs::Col, f64)>> = vec![Vec::new(); lp.num_rows()];
        for (j, &c) in self.cols.iter().enumerate() {
            for (r, v) in lp.column(j) {
                row_entries[r].push((c, v));
            }
        }
        // One column per capacity row, fixed at 0 (presolve drops them):
        // an extra session there is this column fixed at its minutes.
        if self.opts.sessions.is_some() {
            self.extra = (0..lp.num_rows())
                .map(|r| {
                    (!matches!(lp.rows[r], crate::model::Row::Flow { .. })).then(|| {
                        let c = pb.add_column(0.0, 0.0..=0.0);
                        row_entries[r].push((c, -1.0));
                        c
                    })
                })
                .collect();
        }
        for (r, entries) in row_entries.into_iter().enumerate() {
            pb.add_row(lp.row_lower[r]..=lp.row_upper[r], entries);
        }
        let mut model = pb
            .try_optimise(Sense::Minimise)
            .map_err(|e| SolveError::Solver(Stage::Stage1, format!("{e:?}")))?;
        model.make_quiet();
        model.set_option("threads", 1);
        model.set_option("random_seed", 0);
        self.model = Some(model);
        self.highs_seconds = 0.0;
        // Weighted solve, then exact stage 1 from the weighted optimum's basis.
        let mut model: Model = self.run(Stage::Stage1)?.into();
        for (j, &c) in lp.cost2.iter().enumerate() {
            if c != 0.0 {
                model.change_column_cost(self.cols[j], k * lp.cost1[j]);
            }
        }
        self.model = Some(model);
        let solved = self.run(Stage::Stage1)?;
        let sol = solved.get_solution();
        self.stage1_values = sol.columns().to_vec();
        self.stage1_duals = sol.dual_rows().iter().map(|d| d / k).collect();
        self.violation = (solved.objective_value() / k).max(0.0);
        self.model = Some(solved.into());
        self.stage1_seconds = t0.elapsed().as_secs_f64();
        Ok(self.violation)
    }

    /// Turns the stage-1 model into stage 2 (once): the budget row and the
    /// stage-2 costs. Only costs change, so stage 1's optimal basis stays
    /// primal feasible and primal simplex starts next to the optimum (the
    /// weighted solve of stage 1 already leaned towards it), where dual
    /// simplex wanders.
    fn prepare_stage2(&mut self) -> Result<(), SolveError> {
        if self.budget_col.is_some() {
            return Ok(());
        }
        let lp = self.lp;
        let err = |e: highs::HighsStatus| SolveError::Solver(Stage::Stage2, format!("{e:?}"));
        let model = self
            .model
            .as_mut()
            .ok_or_else(|| SolveError::Solver(Stage::Stage2, "no model".into()))?;
        let u = model.try_add_column(0.0, 0.0..=0.0, []).map_err(err)?;
        // In stage 1's scale (see `Self::scale`), u itself unscaled.
        let k = self.scale;
        let terms: Vec<(highs::Col, f64)> = lp
            .stage1_terms()
            .map(|(j, pi)| (self.cols[j], k * pi))
            .chain([(u, -k)])
            .collect();
        model
            .try_add_row(..=k * self.violation, terms)
            .map_err(err)?;
        for (j, &c) in lp.cost2.iter().enumerate() {
            if c != k * lp.cost1[j] {
                model.change_column_cost(self.cols[j], c);
            }
        }
        model.set_option("simplex_strategy", 4);
        self.budget_col = Some(u);
        Ok(())
    }

    /// How far a point's Σπ·s lies above this block's V*_b (never below 0).
    fn excess(&self, values: &[f64]) -> f64 {
        let v: f64 = self.lp.stage1_terms().map(|(j, pi)| pi * values[j]).sum();
        (v - self.violation).max(0.0)
    }

    /// Stage 2 with the excess priced at λ per unit rather than bounded
    /// (up to `cap`): min cost2 + λ·π·s. Its optimum is the point of the
    /// block's curve C_b(u) whose slope passes −λ. The costs are put back
    /// afterwards, so a later [`Self::stage2`] sees the plain stage 2.
    fn price(&mut self, lambda: f64, cap: f64) -> Result<Option<Stage2Point>, SolveError> {
        let t0 = Instant::now();
        self.prepare_stage2()?;
        let u = self.budget_col.expect("prepared above");
        let lp = self.lp;
        if let Some(m) = self.model.as_mut() {
            m.change_column_bounds(u, 0.0..=cap);
            for (j, pi) in lp.stage1_terms() {
                m.change_column_cost(self.cols[j], lp.cost2[j] + lambda * pi);
            }
        }
        let out = self.stage2_point();
        if let Some(m) = self.model.as_mut() {
            for (j, _) in lp.stage1_terms() {
                m.change_column_cost(self.cols[j], lp.cost2[j]);
            }
        }
        self.stage2_seconds += t0.elapsed().as_secs_f64();
        out
    }

    /// Stage 2 with budget u ≤ `budget`. `Ok(None)`: stage 2 ran out of time.
    fn stage2(&mut self, budget: f64) -> Result<Option<Stage2Point>, SolveError> {
        let t0 = Instant::now();
        self.prepare_stage2()?;
        let u = self.budget_col.expect("prepared above");
        if let Some(m) = self.model.as_mut() {
            m.change_column_bounds(u, 0.0..=budget);
        }
        self.budget = budget;
        let out = self.stage2_point();
        self.stage2_seconds += t0.elapsed().as_secs_f64();
        out
    }

    /// Runs stage 2 as the model stands and reads its point. `Ok(None)`:
    /// the time limit struck (and is remembered for [`Self::finish`]).
    fn stage2_point(&mut self) -> Result<Option<Stage2Point>, SolveError> {
        match self.run(Stage::Stage2) {
            Ok(solved) => {
                let sol = solved.get_solution();
                let values = sol.columns()[..self.lp.num_cols()].to_vec();
                let duals = sol.dual_rows()[..self.lp.num_rows()].to_vec();
                self.model = Some(solved.into());
                let cost = BlockLp::objective(&self.lp.cost2, &values);
                Ok(Some(Stage2Point {
                    values,
                    duals,
                    cost,
                }))
            }
            Err(SolveError::TimeLimit(_)) => {
                self.stage2_timed_out = true;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn finish(self, point: Option<Stage2Point>) -> BlockResult {
        let (values, stage2_duals, budget) = match point {
            Some(p) => (p.values, Some(p.duals), self.budget),
            None => (self.stage1_values, None, 0.0),
        };
        BlockResult {
            cost: BlockLp::objective(&self.lp.cost2, &values),
            values,
            violation: self.violation,
            stage1_duals: self.stage1_duals,
            stage2_duals,
            budget,
            stage2_complete: !self.stage2_timed_out,
            stage1_seconds: self.stage1_seconds,
            stage2_seconds: self.stage2_seconds,
            sessions: Vec::new(),
            sessions_cut: self.sessions_cut,
        }
    }

    /// The search for the block's best places for one extra session of
    /// `probe.minutes`, first part: where V falls. Runs on stage 1's
    /// optimum, before stage 2, each place a re-solve from the optimal
    /// basis with that row's capacity raised; then stage 1's optimum is
    /// restored for stage 2.
    ///
    /// A dual alone is not what a session saves: at a degenerate optimum
    /// (a location's seats and the rater pool full in the same week) the
    /// seat row can carry the whole price while more seats save nothing,
    /// and a long session outruns the range where the rate holds. But any
    /// optimal dual bounds the saving from above (V* and C are convex in
    /// the right-hand side), so rows are tried in order of that bound and
    /// the search stops when no untried row could enter the best
    /// `probe.limit`. A row whose dual is 0 saves nothing.
    fn sessions_v(&mut self, probe: &SessionProbe) -> Result<(), SolveError> {
        let lp = self.lp;
        let n = probe.minutes;
        let v0 = self.violation;
        let tol = SAVING_TOL * (1.0 + v0);
        let mut by_v: Vec<(f64, usize)> = Vec::new();
        for r in 0..lp.num_rows() {
            if self.extra.get(r).copied().flatten().is_none() {
                continue;
            }
            let bound = (-self.stage1_duals[r] * n).min(v0);
            if bound > tol {
                by_v.push((bound, r));
            } else {
                self.flat.push(r);
            }
        }
        if by_v.is_empty() || probe.limit == 0 {
            return Ok(());
        }
        let k = self.scale;
        let tried = self.best_rows(by_v, probe.limit, n, Stage::Stage1, |obj| v0 - obj / k)?;
        let probed = !tried.is_empty();
        for (r, saved) in tried {
            if saved > tol {
                self.v_gains.push((r, saved));
            } else {
                self.flat.push(r);
            }
        }
        // Back at stage 1's optimum (the last place's capacity is gone).
        // Out of time here, stage 2 finds out for itself.
        if probed {
            match self.run(Stage::Stage1) {
                Ok(solved) => self.model = Some(solved.into()),
                Err(SolveError::Cancelled) => return Err(SolveError::Cancelled),
                Err(e) => tracing::debug!(error = %e, "session search: stage 1 not restored"),
            }
        }
        Ok(())
    }

    /// The search's second part, on stage 2's optimum: where V cannot fall,
    /// what C saves, for the `need` places that V's left to list (over all
    /// blocks). Gives the block's best places.
    fn sessions_c(
        &mut self,
        probe: &SessionProbe,
        point: &Stage2Point,
        need: usize,
    ) -> Result<Vec<SessionGain>, SolveError> {
        let mut gains: Vec<SessionGain> = self
            .v_gains
            .iter()
            .map(|&(row, saved)| SessionGain {
                row,
                violation: saved,
                cost: 0.0,
            })
            .collect();
        let c0 = point.cost;
        let tol = SAVING_TOL * (1.0 + c0.abs());
        let by_c: Vec<(f64, usize)> = self
            .flat
            .iter()
            .map(|&r| ((-point.duals[r] * probe.minutes).min(c0), r))
            .filter(|&(bound, _)| bound > tol)
            .collect();
        if need > 0 && !by_c.is_empty() {
            let tried = self.best_rows(by_c, need, probe.minutes, Stage::Stage2, |obj| c0 - obj)?;
            gains.extend(tried.into_iter().filter(|&(_, saved)| saved > tol).map(
                |(row, saved)| SessionGain {
                    row,
                    violation: 0.0,
                    cost: saved,
                },
            ));
        }
        Ok(gains)
    }

    /// Re-solves with each row of `bounded` ((upper bound of the saving,
    /// row)) given `minutes` more capacity, best bound first, until the
    /// `limit`-th best saving found is above every untried bound, or the
    /// block's re-solves run out. Gives (row, saving) for every row tried;
    /// `saved` turns the objective into the saving.
    fn best_rows(
        &mut self,
        mut bounded: Vec<(f64, usize)>,
        limit: usize,
        minutes: f64,
        stage: Stage,
        saved: impl Fn(f64) -> f64,
    ) -> Result<Vec<(usize, f64)>, SolveError> {
        bounded.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut tried: Vec<(usize, f64)> = Vec::new();
        let mut best: Vec<f64> = Vec::new();
        for (bound, r) in bounded {
            // Places that tie with the last one listed are tried too: the
            // list breaks ties by week and place, not by row.
            if best.len() >= limit && best[limit - 1] > bound * (1.0 + 1e-9) {
                break;
            }
            if self.resolves_left == 0 {
                tracing::debug!(stage = stage.name(), "session re-solves used up");
                break;
            }
            // Under a deadline, stage 2 comes first: stop while it still
            // has twice stage 1's time (and half a second) left.
            if let Some(d) = self.opts.deadline {
                let reserve = (2.0 * self.stage1_seconds).max(0.5);
                if d.saturating_duration_since(Instant::now()).as_secs_f64() < reserve {
                    tracing::debug!(
                        stage = stage.name(),
                        "session search: leaving the time to stage 2"
                    );
                    self.resolves_left = 0;
                    self.sessions_cut = true;
                    break;
                }
            }
            self.resolves_left -= 1;
            let objective = match self.with_extra(r, minutes, stage) {
                Ok(obj) => obj,
                Err(SolveError::Cancelled) => return Err(SolveError::Cancelled),
                // Out of time or numerically lost: the places found so far
                // stand; the plan does not fail for its recommendations.
                Err(e) => {
                    tracing::debug!(error = %e, "session re-solve stopped");
                    self.resolves_left = 0;
                    self.sessions_cut = true;
                    break;
                }
            };
            // A saving never exceeds its bound: clamp the solver's noise.
            let s = saved(objective).clamp(0.0, bound);
            tried.push((r, s));
            let at = best.partition_point(|&b| b >= s);
            best.insert(at, s);
        }
        Ok(tried)
    }

    /// The objective with `minutes` more capacity on `row`, re-solved by
    /// dual simplex from the current basis (the capacity is taken away
    /// again afterwards).
    fn with_extra(&mut self, row: usize, minutes: f64, stage: Stage) -> Result<f64, SolveError> {
        let extra = self
            .extra
            .get(row)
            .copied()
            .flatten()
            .ok_or_else(|| SolveError::Solver(stage, format!("row {row} takes no session")))?;
        let m = self
            .model
            .as_mut()
            .ok_or_else(|| SolveError::Solver(stage, "no model".into()))?;
        m.change_column_bounds(extra, minutes..=minutes);
        m.set_option("simplex_strategy", 1);
        let objective = self.run(stage).map(|solved| {
            let objective = solved.objective_value();
            self.model = Some(solved.into());
            objective
        });
        if let Some(m) = self.model.as_mut() {
            m.change_column_bounds(extra, 0.0..=0.0);
        }
        objective
    }
}

/// Savings below this share of V* or C (plus as much absolute) are none:
/// the solver's tolerances, and stage 2's slack on V*, which a re-solve may
/// spend differently.
const SAVING_TOL: f64 = 1e-6;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{build_block, Col, Instance, Replan, Row};
    use good_lp::{constraint, variable, Expression, ProblemVariables, Solution, SolverModel};
    use serde_json::json;

    /// Two regions share two locations short of seats: V* > 0, and the
    /// cheapest plan differs from the "published" one below.
    fn instance() -> Instance {
        let v = json!({
            "format": "examcap/scenario@1", "name": "t", "start_week": "2026-W10",
            "horizon_weeks": 5,
            "exams": [{"id": "A", "name": "A", "resource": "car", "seat_minutes": 60,
                       "target_wait_weeks": 1, "priority": 2}],
            "locations": [
                {"id": "L0", "name": "L0", "resources": [{"kind": "car", "weekly_minutes": 240,
                 "extra_weekly_minutes": 60, "extra_cost_per_minute": 1.0}], "unavailable": []},
                {"id": "L1", "name": "L1", "resources": [{"kind": "car", "weekly_minutes": 180,
                 "extra_weekly_minutes": 60, "extra_cost_per_minute": 3.0}], "unavailable": []}],
            "rating_pools": [],
            "regions": [
                {"id": "R0", "name": "R0", "options": [{"location": "L0", "travel_cost": 0.5},
                                                       {"location": "L1", "travel_cost": 4.0}]},
                {"id": "R1", "name": "R1", "options": [{"location": "L1", "travel_cost": 0.2},
                                                       {"location": "L0", "travel_cost": 1.5}]}],
            "demand": [{"region": "R0", "exam": "A", "weekly": [6, 9, 3, 8, 2]},
                       {"region": "R1", "exam": "A", "weekly": [4, 2, 7, 5, 6]}],
            "backlog": [{"region": "R1", "exam": "A", "registered_week": -2, "candidates": 3}],
            "weights": {"waiting_per_candidate_week": 0.7}
        });
        let sc = crate::parse_scenario(&serde_json::to_vec(&v).unwrap()).unwrap();
        Instance::new(&sc, false)
    }

    /// The block LP solved whole through good_lp, lexicographically with
    /// DESIGN.md's budget: (V*, stage-2 objective cost2 · x).
    fn direct(lp: &BlockLp) -> (f64, f64) {
        let solve = |objective: &[f64], budget: Option<f64>| {
            let mut vars = ProblemVariables::new();
            let x: Vec<_> = (0..lp.num_cols())
                .map(|j| {
                    let v = variable().min(lp.col_lower[j]);
                    vars.add(if lp.col_upper[j].is_finite() {
                        v.max(lp.col_upper[j])
                    } else {
                        v
                    })
                })
                .collect();
            let dot = |c: &[f64]| -> Expression { x.iter().zip(c).map(|(&v, &c)| c * v).sum() };
            let mut rows: Vec<Expression> = vec![Expression::default(); lp.num_rows()];
            for (j, &v) in x.iter().enumerate() {
                for (r, a) in lp.column(j) {
                    rows[r] += a * v;
                }
            }
            let mut model = good_lp::highs(vars.minimise(dot(objective))).set_threads(1);
            for (r, e) in rows.into_iter().enumerate() {
                if lp.row_lower[r].is_finite() {
                    model.add_constraint(constraint!(e.clone() >= lp.row_lower[r]));
                }
                if lp.row_upper[r].is_finite() {
                    model.add_constraint(constraint!(e <= lp.row_upper[r]));
                }
            }
            if let Some(b) = budget {
                model.add_constraint(constraint!(dot(&lp.cost1) <= b));
            }
            let sol = model.solve().expect("direct solve");
            let values: Vec<f64> = x.iter().map(|&v| sol.value(v)).collect();
            BlockLp::objective(objective, &values)
        };
        let v = solve(&lp.cost1, None);
        let c = solve(&lp.cost2, Some(v + v * STAGE2_REL_SLACK + STAGE2_ABS_SLACK));
        (v, c)
    }

    /// Every bound and row of `lp` holds at `x` (within 1e-6).
    fn assert_feasible(lp: &BlockLp, x: &[f64], case: &str) {
        assert_eq!(x.len(), lp.num_cols());
        let mut act = vec![0.0; lp.num_rows()];
        for (j, &xj) in x.iter().enumerate() {
            assert!(
                xj >= lp.col_lower[j] - 1e-7 && xj <= lp.col_upper[j] + 1e-7,
                "{case}: {:?} = {xj}",
                lp.cols[j]
            );
            for (r, a) in lp.column(j) {
                act[r] += a * xj;
            }
        }
        for (r, &a) in act.iter().enumerate() {
            assert!(
                a >= lp.row_lower[r] - 1e-6 && a <= lp.row_upper[r] + 1e-6,
                "{case}: row {:?} at {a} outside [{}, {}]",
                lp.rows[r],
                lp.row_lower[r],
                lp.row_upper[r]
            );
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
    }

    /// The textbook form of a re-plan LP with σ > 0, from the split one
    /// [`build_block`] makes: each split cell's two columns become one x ≥ 0
    /// at its travel cost, with d+, d− ≥ 0 at σ each and a row
    /// x − d+ + d− = p (p: the split column's upper bound).
    fn with_deviation_rows(lp: &BlockLp) -> BlockLp {
        let mut out = BlockLp {
            streams: lp.streams.clone(),
            rows: lp.rows.clone(),
            row_lower: lp.row_lower.clone(),
            row_upper: lp.row_upper.clone(),
            start: vec![0],
            ..BlockLp::default()
        };
        let push = |out: &mut BlockLp,
                    col,
                    (lower, upper): (f64, f64),
                    (cost1, cost2): (f64, f64),
                    entries: Vec<(usize, f64)>| {
            out.cols.push(col);
            out.col_lower.push(lower);
            out.col_upper.push(upper);
            out.cost1.push(cost1);
            out.cost2.push(cost2);
            out.stability_cost.push(0.0);
            for (r, v) in entries {
                out.index.push(r);
                out.value.push(v);
            }
            out.start.push(out.index.len());
        };
        for j in 0..lp.num_cols() {
            let entries: Vec<(usize, f64)> = lp.column(j).collect();
            match lp.cols[j] {
                Col::XAbove { .. } => {}
                Col::X { stream, t, .. } if lp.stability_cost[j] < 0.0 => {
                    let (p, sigma) = (lp.col_upper[j], -lp.stability_cost[j]);
                    let row = out.rows.len();
                    // Row has no variant for this row; the label is only
                    // printed by `assert_feasible`.
                    out.rows.push(Row::Flow { stream, t });
                    out.row_lower.push(p);
                    out.row_upper.push(p);
                    let travel = lp.cost2[j] - lp.stability_cost[j];
                    let mut x = entries;
                    x.push((row, 1.0));
                    let free = (0.0, f64::INFINITY);
                    push(&mut out, lp.cols[j], free, (0.0, travel), x);
                    for v in [-1.0, 1.0] {
                        push(&mut out, lp.cols[j], free, (0.0, sigma), vec![(row, v)]);
                    }
                }
                col => {
                    let bounds = (lp.col_lower[j], lp.col_upper[j]);
                    push(&mut out, col, bounds, (lp.cost1[j], lp.cost2[j]), entries);
                }
            }
        }
        out
    }

    #[test]
    fn the_hull_keeps_the_lower_convex_points_where_cost_falls() {
        // (2, 7) lies above the chord (0, 10)–(4, 2); (5, 2) saves nothing.
        let pts = [(4.0, 2.0), (0.0, 10.0), (2.0, 7.0), (5.0, 2.0), (1.0, 6.0)];
        assert_eq!(lower_hull(&pts), vec![(0.0, 10.0), (1.0, 6.0), (4.0, 2.0)]);
        assert_eq!(lower_hull(&[(0.0, 3.0)]), vec![(0.0, 3.0)]);
    }

    #[test]
    fn the_slack_goes_to_the_steepest_segments_first() {
        // Block 0 saves 10 a unit for 1 unit, then 1 a unit; block 1 saves
        // 5 a unit for 4 units; block 2 saves nothing.
        let pts = vec![
            vec![(0.0, 20.0), (1.0, 10.0), (11.0, 0.0)],
            vec![(0.0, 30.0), (4.0, 10.0)],
            vec![(0.0, 7.0)],
        ];
        let (u, lambda) = allocate(&pts, 3.0);
        assert_eq!((u, lambda), (vec![1.0, 2.0, 0.0], 5.0));
        let (u, lambda) = allocate(&pts, 7.0);
        assert_eq!((u, lambda), (vec![3.0, 4.0, 0.0], 1.0));
        // More slack than any block can use: everyone at its end, price 1
        // (the last slope taken).
        let (u, _) = allocate(&pts, 100.0);
        assert_eq!(u, vec![11.0, 4.0, 0.0]);
        assert_eq!(support(&pts[0], 5.0), 15.0);
    }

    /// Three blocks. Exam E (booths, rater pool P): LA's booths and the
    /// pool are full together, so the booth row's dual promises a saving
    /// that more booths alone cannot give. Exam F (desks, no pool): one
    /// more session at LB outruns the range of its dual. Exam G keeps its
    /// target, but a session saves waiting cost.
    fn sessions_instance() -> Instance {
        let v = json!({
            "format": "examcap/scenario@1", "name": "s", "start_week": "2026-W10",
            "horizon_weeks": 3,
            "exams": [
                {"id": "E", "name": "E", "resource": "booth", "seat_minutes": 40,
                 "target_wait_weeks": 1, "priority": 1.5, "rating_pool": "P",
                 "rating_minutes": 20},
                {"id": "F", "name": "F", "resource": "desk", "seat_minutes": 40,
                 "target_wait_weeks": 1, "priority": 1},
                {"id": "G", "name": "G", "resource": "room", "seat_minutes": 40,
                 "target_wait_weeks": 1, "priority": 1}],
            "locations": [
                {"id": "LA", "name": "LA", "resources": [
                    {"kind": "booth", "weekly_minutes": 400, "extra_weekly_minutes": 0,
                     "extra_cost_per_minute": 2.0},
                    {"kind": "desk", "weekly_minutes": 400, "extra_weekly_minutes": 0,
                     "extra_cost_per_minute": 1.0}]},
                {"id": "LB", "name": "LB", "resources": [
                    {"kind": "desk", "weekly_minutes": 400, "extra_weekly_minutes": 0,
                     "extra_cost_per_minute": 0.5},
                    {"kind": "room", "weekly_minutes": 400, "extra_weekly_minutes": 80,
                     "extra_cost_per_minute": 0.5}]}],
            "rating_pools": [{"id": "P", "weekly_minutes": 200, "extra_weekly_minutes": 0,
                              "extra_cost_per_minute": 3.0}],
            "regions": [
                {"id": "RA", "name": "RA", "options": [{"location": "LA", "travel_cost": 0.5}]},
                {"id": "RB", "name": "RB", "options": [{"location": "LB", "travel_cost": 0.2}]}],
            "demand": [{"region": "RA", "exam": "E", "weekly": [30, 0, 0]},
                       {"region": "RA", "exam": "F", "weekly": [40, 0, 0]},
                       {"region": "RB", "exam": "F", "weekly": [22, 0, 0]},
                       {"region": "RB", "exam": "G", "weekly": [14, 3, 0]}],
            "weights": {"waiting_per_candidate_week": 0.7}
        });
        let sc = crate::parse_scenario(&serde_json::to_vec(&v).unwrap()).unwrap();
        Instance::new(&sc, false)
    }

    /// The block LPs of [`sessions_instance`].
    fn sessions_lps() -> Vec<BlockLp> {
        let inst = sessions_instance();
        inst.blocks()
            .iter()
            .map(|b| build_block(&inst, b, None))
            .collect()
    }

    #[test]
    fn a_session_saves_what_a_re_solve_with_it_saves_and_the_best_are_listed() {
        let lps = sessions_lps();
        assert_eq!(lps.len(), 3);
        let minutes = 240.0;
        // The truth, row by row: each block re-solved whole with the row's
        // capacity raised (what the session saves in V; in C where V stays).
        let mut truth: Vec<(f64, f64)> = Vec::new();
        let mut overstated = 0;
        let plain = solve_blocks(&lps, &SolveOptions::default(), &|_| {}).expect("solve");
        for (lp, res) in lps.iter().zip(&plain) {
            let (v, c) = direct(lp);
            for r in 0..lp.num_rows() {
                if matches!(lp.rows[r], Row::Flow { .. }) {
                    continue;
                }
                let mut more = lp.clone();
                more.row_upper[r] += minutes;
                let (v2, c2) = direct(&more);
                let dv = v - v2;
                let dc = if dv > 1e-6 { 0.0 } else { c - c2 };
                if -res.stage1_duals[r] * minutes > dv + 1.0 {
                    overstated += 1;
                }
                if dv > 1e-6 || dc > 1e-6 {
                    truth.push((dv, dc));
                }
            }
        }
        assert!(overstated >= 4, "the duals overstate {overstated} places");
        assert!(
            truth.iter().filter(|t| t.0 == 0.0).count() >= 1,
            "a place saves cost only: {truth:?}"
        );
        let order = |a: &(f64, f64), b: &(f64, f64)| b.0.total_cmp(&a.0).then(b.1.total_cmp(&a.1));
        truth.sort_by(order);
        for limit in [1, 3, 6, 100] {
            let probe = SessionProbe {
                minutes,
                limit,
                max_resolves: 1000,
            };
            let opts = SolveOptions {
                sessions: Some(probe),
                ..SolveOptions::default()
            };
            let res = solve_blocks(&lps, &opts, &|_| {}).expect("solve");
            // Probing leaves the plan as it was.
            for (a, b) in res.iter().zip(&plain) {
                assert!(close(a.violation, b.violation) && close(a.cost, b.cost));
            }
            let mut got: Vec<(f64, f64)> = res
                .iter()
                .flat_map(|r| r.sessions.iter().map(|g| (g.violation, g.cost)))
                .collect();
            got.sort_by(order);
            got.truncate(limit);
            let want = &truth[..limit.min(truth.len())];
            assert_eq!(got.len(), want.len(), "limit {limit}: {got:?} vs {want:?}");
            for (g, w) in got.iter().zip(want) {
                assert!(
                    close(g.0, w.0) && close(g.1, w.1),
                    "limit {limit}: {got:?} vs {want:?}"
                );
            }
        }
    }

    #[test]
    fn under_a_close_deadline_the_session_search_leaves_the_time_to_stage_2() {
        let lps = sessions_lps();
        let probe = SessionProbe {
            minutes: 240.0,
            limit: 10,
            max_resolves: 1000,
        };
        let with = |deadline: Option<Instant>| {
            let opts = SolveOptions {
                sessions: Some(probe),
                deadline,
                ..SolveOptions::default()
            };
            solve_blocks(&lps, &opts, &|_| {}).expect("solve")
        };
        let far = with(Some(Instant::now() + Duration::from_secs(600)));
        assert!(far.iter().any(|r| !r.sessions.is_empty()));
        // 0.4 s is plenty for this LP's stages, but under the search's
        // reserve of half a second.
        let close = with(Some(Instant::now() + Duration::from_millis(400)));
        assert!(close
            .iter()
            .all(|r| r.sessions.is_empty() && r.stage2_complete));
        assert!(close.iter().any(|r| r.sessions_cut));
        assert!(far.iter().all(|r| !r.sessions_cut));
    }

    #[test]
    fn split_stability_terms_give_the_optimum_of_the_textbook_lp() {
        let inst = instance();
        // A published allocation unlike the optimum: everyone at their
        // dearer second option.
        let published = [
            ((0, 1, 0), 4.0),
            ((0, 1, 1), 4.0),
            ((0, 1, 2), 4.0),
            ((0, 1, 3), 4.0),
            ((1, 0, 1), 5.0),
            ((1, 0, 2), 5.0),
            ((1, 0, 3), 5.0),
            ((0, 0, 4), 2.0),
        ];
        for sigma in [0.0, 0.3, 5.0] {
            for freeze_weeks in [0, 1] {
                let extras = Replan {
                    freeze_weeks,
                    sigma,
                    published: published.into_iter().collect(),
                    pinned_streams: Default::default(),
                };
                let lp = build_block(&inst, &[0, 1], Some(&extras));
                let split: Vec<usize> = (0..lp.num_cols())
                    .filter(|&j| matches!(lp.cols[j], Col::X { .. }) && lp.stability_cost[j] < 0.0)
                    .collect();
                assert_eq!(split.is_empty(), sigma == 0.0);
                let res =
                    solve_blocks(std::slice::from_ref(&lp), &SolveOptions::default(), &|_| {})
                        .expect("solve");
                let textbook = with_deviation_rows(&lp);
                assert!(textbook.num_rows() > lp.num_rows() || sigma == 0.0);
                let (v, c) = direct(&textbook);
                let case = format!("σ={sigma} F={freeze_weeks}");
                assert!(v > 0.0, "{case}: the instance is short of seats");
                assert!(
                    close(res[0].violation, v),
                    "{case}: V* {} vs {v}",
                    res[0].violation
                );
                // The split objective is the textbook one less σ·Σp.
                let constant: f64 = split
                    .iter()
                    .map(|&j| -lp.stability_cost[j] * lp.col_upper[j])
                    .sum();
                assert!(
                    close(res[0].cost + constant, c),
                    "{case}: C+σ {} vs {c}",
                    res[0].cost + constant
                );
                let x = &res[0].values;
                assert_feasible(&lp, x, &case);
                // The plan's C leaves out σ·Σ|x − p| over the merged x.
                let mut moved = 0.0;
                for (j, col) in lp.cols.iter().enumerate() {
                    if let Col::X { stream, l, t } = *col {
                        if t >= freeze_weeks {
                            let above = lp
                                .cols
                                .iter()
                                .position(|&c| c == Col::XAbove { stream, l, t })
                                .map_or(0.0, |k| x[k]);
                            let p = extras.published.get(&(stream, l, t)).copied();
                            moved += (x[j] + above - p.unwrap_or(0.0)).abs();
                        }
                    }
                }
                assert!(
                    close(lp.plan_cost(x) + sigma * moved, c),
                    "{case}: C {} + σ·moved {} vs {c}",
                    lp.plan_cost(x),
                    sigma * moved
                );
            }
        }
    }
}
