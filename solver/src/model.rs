//! The LP of DESIGN.md "The model", split into independent blocks.
//!
//! Exams that share a resource kind or a rater pool compete for the same
//! capacity; exams that share neither do not interact at all, because the
//! objective is a plain sum. So the LP is block-diagonal: one block per
//! connected component of the "shares a kind or pool" graph. Each block is
//! built as a column-wise sparse matrix ready for HiGHS, with the stage-1
//! costs (π_e on s) and the stage-2 costs (extra capacity, travel, waiting).
//!
//! Reductions, all exact:
//! - a (region, exam) with no demand and no backlog gets no variables (its
//!   backlog stays 0, so every x, B and s of it is 0);
//! - x[r,l,e,t] is left out where (l, k(e), t) or (pool(e), t) has no
//!   capacity at all (regular + extra is 0 after unavailability) and the exam
//!   needs some of it: such an x is forced to 0;
//! - y and z exist only where extra capacity can be bought.
//!
//! One restatement, exact as well: the waiting-target row
//! B[t] ≤ window[t] + s[t] is not a row here. The backlog is split into the
//! part within target, `B` with the bound 0 ≤ B ≤ window[t], and the part
//! over it, `s` ≥ 0, and the flow rows carry B + s. Every (B, s) of one form
//! maps to the other with the same V and C (the optimum has s =
//! max(0, backlog − window) in both, and the waiting weight w is paid on
//! B + s), so V* and C are DESIGN.md's (`reference` builds the rows as
//! written, and the tests compare). It nearly halves the rows, and a bound
//! costs the simplex far less than a row: the national speaking block has
//! 6,885 rows instead of 13,125 and solves in 70–80 % of the time
//! (BENCHMARKS.md).

use crate::scenario::{availability, Scenario, Unavailable};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Capacity of one resource kind at one location (per week, before factors).
#[derive(Debug, Clone, Copy)]
pub struct Capacity {
    pub weekly: f64,
    pub extra: f64,
    pub price: f64,
}

/// One (region, exam) pair that has demand or backlog: the unit of flow.
#[derive(Debug, Clone)]
pub struct Stream {
    pub region: usize,
    pub exam: usize,
    /// d[t] for t in 0..T.
    pub demand: Vec<f64>,
    /// (registered_week < 0, candidates), summed per week, oldest first.
    pub backlog: Vec<(i64, f64)>,
    /// A(r) for this exam: (location, travel cost), in the region's option order.
    pub options: Vec<(usize, f64)>,
}

impl Stream {
    /// B[r,e,-1]: everyone registered before week 0.
    pub fn initial_backlog(&self) -> f64 {
        self.backlog.iter().map(|&(_, c)| c).sum()
    }

    /// B[t] at the end of each week t when `served[t]` are examined in it
    /// (the flow row: B[t] = B[t−1] + d[t] − served[t]).
    pub fn backlogs(&self, served: &[f64]) -> Vec<f64> {
        let mut b = self.initial_backlog();
        self.demand
            .iter()
            .zip(served)
            .map(|(d, x)| {
                b += d - x;
                b
            })
            .collect()
    }

    /// c[r,l]: travel cost to location `l`; 0 where `l` is not an option.
    pub fn travel(&self, l: usize) -> f64 {
        self.options.iter().find(|o| o.0 == l).map_or(0.0, |o| o.1)
    }

    /// Registrations in week τ (τ < 0 from the backlog, τ >= 0 from demand).
    pub fn registrations(&self, tau: i64) -> f64 {
        if tau >= 0 {
            self.demand.get(tau as usize).copied().unwrap_or(0.0)
        } else {
            self.backlog
                .iter()
                .filter(|&&(w, _)| w == tau)
                .map(|&(_, c)| c)
                .sum()
        }
    }

    /// [`Stream::window`] of every week of the horizon.
    pub fn windows(&self, target: i64) -> Vec<f64> {
        (0..self.demand.len())
            .map(|t| self.window(t, target))
            .collect()
    }

    /// Σ_{τ=t−W+1..t} d[τ]: the candidates still within target at the end of week t.
    pub fn window(&self, t: usize, target: i64) -> f64 {
        let t = t as i64;
        let from = t - target + 1;
        let backlog: f64 = self
            .backlog
            .iter()
            .filter(|&&(w, _)| w >= from)
            .map(|&(_, c)| c)
            .sum();
        let lo = from.max(0) as usize;
        let recent: f64 = if lo as i64 <= t {
            self.demand[lo..=t as usize].iter().sum()
        } else {
            0.0
        };
        backlog + recent
    }
}

/// The scenario indexed for modelling: ids resolved to positions, capacities
/// with unavailability applied per week.
#[derive(Debug, Clone)]
pub struct Instance {
    pub weeks: usize,
    /// Resource kinds, in order of first mention (exams, then locations).
    pub kinds: Vec<String>,
    pub exam_kind: Vec<usize>,
    pub exam_pool: Vec<Option<usize>>,
    pub seat_minutes: Vec<f64>,
    pub rating_minutes: Vec<f64>,
    pub target: Vec<i64>,
    pub priority: Vec<f64>,
    /// [location]: its resources as (kind, capacity), in the scenario's
    /// order; read through [`Instance::cap`]. Per location, not a dense
    /// [location][kind] table: a location holds a few kinds, and a table
    /// of thousands of locations each with its own kind took gigabytes.
    pub capacity: Vec<Vec<(usize, Capacity)>>,
    /// [location][week]: product of unavailability factors, held for the
    /// locations some stream can use (in its options), empty for the
    /// others: [`Instance::seat_capacity`] works theirs out from
    /// `unavailable` when asked (held for all, 100k idle locations over 520
    /// weeks took 450 MB).
    pub location_factor: Vec<Vec<f64>>,
    /// [location]: its unavailable ranges.
    pub unavailable: Vec<Vec<Unavailable>>,
    /// [pool]
    pub pool_capacity: Vec<Capacity>,
    /// [pool][week]
    pub pool_factor: Vec<Vec<f64>>,
    /// Every (region, exam) with demand or backlog, in (region, exam) order.
    pub streams: Vec<Stream>,
    /// The streams the LP is built on: `streams` with proportional twins merged.
    pub lp_streams: Vec<Stream>,
    /// For each LP stream, its members: (index into `streams`, share).
    pub members: Vec<Vec<(usize, f64)>>,
    pub waiting_weight: f64,
}

impl Instance {
    /// Indexes a validated scenario. References that do not resolve are
    /// skipped rather than trusted (validation rejects them before this).
    ///
    /// `merge_twins` merges proportional twin streams (see
    /// [`Instance::lp_streams`]); off, the LP has one stream per (region, exam).
    pub fn new<'s>(sc: &'s Scenario, merge_twins: bool) -> Instance {
        let weeks = sc.horizon_weeks;
        let mut kinds: Vec<String> = Vec::new();
        let mut kind_ids: HashMap<&str, usize> = HashMap::new();
        let mut kind_index = |k: &'s str| -> usize {
            *kind_ids.entry(k).or_insert_with(|| {
                kinds.push(k.to_string());
                kinds.len() - 1
            })
        };
        let exam_kind: Vec<usize> = sc.exams.iter().map(|e| kind_index(&e.resource)).collect();
        let capacity: Vec<Vec<(usize, Capacity)>> = sc
            .locations
            .iter()
            .map(|l| {
                l.resources
                    .iter()
                    .map(|r| {
                        let c = Capacity {
                            weekly: r.weekly_minutes,
                            extra: r.extra_weekly_minutes,
                            price: r.extra_cost_per_minute,
                        };
                        (kind_index(&r.kind), c)
                    })
                    .collect()
            })
            .collect();
        let pool_ids: HashMap<&str, usize> = sc
            .rating_pools
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.as_str(), i))
            .collect();
        let loc_ids: HashMap<&str, usize> = sc
            .locations
            .iter()
            .enumerate()
            .map(|(i, l)| (l.id.as_str(), i))
            .collect();
        let region_ids: HashMap<&str, usize> = sc
            .regions
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.as_str(), i))
            .collect();
        let exam_ids: HashMap<&str, usize> = sc
            .exams
            .iter()
            .enumerate()
            .map(|(i, e)| (e.id.as_str(), i))
            .collect();

        let exam_pool: Vec<Option<usize>> = sc
            .exams
            .iter()
            .map(|e| {
                e.rating_pool
                    .as_deref()
                    .and_then(|p| pool_ids.get(p).copied())
            })
            .collect();
        let pool_capacity = sc
            .rating_pools
            .iter()
            .map(|p| Capacity {
                weekly: p.weekly_minutes,
                extra: p.extra_weekly_minutes,
                price: p.extra_cost_per_minute,
            })
            .collect();
        let pool_factor = sc
            .rating_pools
            .iter()
            .map(|p| {
                (0..weeks)
                    .map(|t| availability(&p.unavailable, t))
                    .collect()
            })
            .collect();

        // Streams: every (region, exam) with demand or backlog, in (region, exam) order.
        // (region, exam) → (weekly demand, backlog per registration week).
        type Pair = (Vec<f64>, BTreeMap<i64, f64>);
        let mut by_pair: BTreeMap<(usize, usize), Pair> = BTreeMap::new();
        for d in &sc.demand {
            if let (Some(&r), Some(&e)) = (
                region_ids.get(d.region.as_str()),
                exam_ids.get(d.exam.as_str()),
            ) {
                let entry = by_pair
                    .entry((r, e))
                    .or_insert_with(|| (vec![0.0; weeks], BTreeMap::new()));
                for (t, v) in d.weekly.iter().take(weeks).enumerate() {
                    entry.0[t] += v;
                }
            }
        }
        for b in &sc.backlog {
            if let (Some(&r), Some(&e)) = (
                region_ids.get(b.region.as_str()),
                exam_ids.get(b.exam.as_str()),
            ) {
                let entry = by_pair
                    .entry((r, e))
                    .or_insert_with(|| (vec![0.0; weeks], BTreeMap::new()));
                *entry.1.entry(b.registered_week).or_insert(0.0) += b.candidates;
            }
        }
        let streams: Vec<Stream> = by_pair
            .into_iter()
            .filter(|(_, (d, b))| d.iter().any(|&v| v > 0.0) || b.values().any(|&v| v > 0.0))
            .map(|((r, e), (demand, backlog))| {
                let k = exam_kind[e];
                let options = sc.regions[r]
                    .options
                    .iter()
                    .filter_map(|o| {
                        let l = *loc_ids.get(o.location.as_str())?;
                        let (_, c) = *capacity[l].iter().find(|&&(x, _)| x == k)?;
                        (c.weekly + c.extra > 0.0).then_some((l, o.travel_cost))
                    })
                    .collect();
                Stream {
                    region: r,
                    exam: e,
                    demand,
                    backlog: backlog.into_iter().filter(|&(w, _)| w < 0).collect(),
                    options,
                }
            })
            .collect();

        let mut usable = vec![false; sc.locations.len()];
        for &(l, _) in streams.iter().flat_map(|s| &s.options) {
            usable[l] = true;
        }
        let location_factor = sc
            .locations
            .iter()
            .zip(usable)
            .map(|(l, usable)| match usable {
                true => (0..weeks)
                    .map(|t| availability(&l.unavailable, t))
                    .collect(),
                false => Vec::new(),
            })
            .collect();
        let unavailable = sc.locations.iter().map(|l| l.unavailable.clone()).collect();
        let (lp_streams, members) = if merge_twins {
            merge_proportional(&streams)
        } else {
            let members = (0..streams.len()).map(|i| vec![(i, 1.0)]).collect();
            (streams.clone(), members)
        };
        Instance {
            weeks,
            kinds,
            exam_kind,
            exam_pool,
            seat_minutes: sc.exams.iter().map(|e| e.seat_minutes).collect(),
            rating_minutes: sc
                .exams
                .iter()
                .map(|e| e.rating_minutes.unwrap_or(0.0))
                .collect(),
            target: sc.exams.iter().map(|e| e.target_wait_weeks).collect(),
            priority: sc.exams.iter().map(|e| e.priority).collect(),
            capacity,
            location_factor,
            unavailable,
            pool_capacity,
            pool_factor,
            streams,
            lp_streams,
            members,
            waiting_weight: sc.weights.waiting_per_candidate_week,
        }
    }

    /// Location l's capacity of kind k, if it holds the kind.
    pub fn cap(&self, l: usize, k: usize) -> Option<Capacity> {
        self.capacity[l]
            .iter()
            .find(|&&(x, _)| x == k)
            .map(|&(_, c)| c)
    }

    /// (regular, extra) seat minutes of kind k at location l in week t.
    pub fn seat_capacity(&self, l: usize, k: usize, t: usize) -> (f64, f64) {
        match self.cap(l, k) {
            Some(c) => {
                let f = match self.location_factor[l].get(t) {
                    Some(&f) => f,
                    None => availability(&self.unavailable[l], t),
                };
                (c.weekly * f, c.extra * f)
            }
            None => (0.0, 0.0),
        }
    }

    /// (regular, extra) rater minutes of pool q in week t.
    pub fn rater_capacity(&self, q: usize, t: usize) -> (f64, f64) {
        let c = self.pool_capacity[q];
        let f = self.pool_factor[q][t];
        (c.weekly * f, c.extra * f)
    }

    /// Groups the LP streams into independent blocks: exams linked by a
    /// shared resource kind or rater pool end up together. Blocks come out in
    /// order of their first exam, each with its streams in stream order.
    pub fn blocks(&self) -> Vec<Vec<usize>> {
        let roots = self.exam_blocks();
        let mut blocks: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, s) in self.lp_streams.iter().enumerate() {
            blocks.entry(roots[s.exam]).or_default().push(i);
        }
        blocks.into_values().collect()
    }

    /// The block of each exam, named by its lowest exam index. Unlike
    /// [`Instance::blocks`] this holds exams without a stream too (no demand
    /// and no backlog): their kind and pool still belong to the block.
    pub fn exam_blocks(&self) -> Vec<usize> {
        let n = self.exam_kind.len();
        let mut parent: Vec<usize> = (0..n).collect();
        fn find(p: &mut [usize], mut i: usize) -> usize {
            while p[i] != i {
                p[i] = p[p[i]];
                i = p[i];
            }
            i
        }
        let union = |a: usize, b: usize, p: &mut Vec<usize>| {
            let (ra, rb) = (find(p, a), find(p, b));
            if ra != rb {
                p[ra.max(rb)] = ra.min(rb);
            }
        };
        // Each exam joins the first exam of its kind and of its pool: the
        // same blocks as joining every pair that shares one, in O(exams)
        // (pairwise, 100k exams took 35 s before any HiGHS run).
        let mut first_of_kind: HashMap<usize, usize> = HashMap::new();
        let mut first_of_pool: HashMap<usize, usize> = HashMap::new();
        for e in 0..n {
            let k = *first_of_kind.entry(self.exam_kind[e]).or_insert(e);
            union(k, e, &mut parent);
            if let Some(q) = self.exam_pool[e] {
                let q = *first_of_pool.entry(q).or_insert(e);
                union(q, e, &mut parent);
            }
        }
        (0..n).map(|e| find(&mut parent, e)).collect()
    }
}

/// Registrations of a stream as one vector: backlog weeks, then demand.
fn profile(s: &Stream) -> (f64, impl Iterator<Item = (i64, f64)> + '_) {
    let total = s.demand.iter().sum::<f64>() + s.initial_backlog();
    let weeks = s
        .backlog
        .iter()
        .copied()
        .chain(s.demand.iter().enumerate().map(|(t, &d)| (t as i64, d)));
    (total, weeks)
}

/// Whether `b` is a multiple of `a`: same exam, same options with the same
/// travel costs, and registrations proportional in every week.
fn proportional(a: &Stream, b: &Stream) -> bool {
    if a.exam != b.exam || a.options != b.options || a.demand.len() != b.demand.len() {
        return false;
    }
    let (ta, _) = profile(a);
    let (tb, _) = profile(b);
    if ta <= 0.0 || tb <= 0.0 {
        return false;
    }
    let ratio = tb / ta;
    // Backlog per registration week, as `Stream::registrations` sums it
    // (one map each, not a scan per week: quadratic in backlog rows).
    let by_week = |s: &Stream| {
        let mut m: BTreeMap<i64, f64> = BTreeMap::new();
        for &(w, c) in &s.backlog {
            *m.entry(w).or_insert(0.0) += c;
        }
        m
    };
    let (wa, wb) = (by_week(a), by_week(b));
    let at = |m: &BTreeMap<i64, f64>, w: &i64| m.get(w).copied().unwrap_or(0.0);
    let same = |x: f64, y: f64| (x - y).abs() <= 1e-12 * (x.abs() + y.abs());
    wa.keys()
        .chain(wb.keys())
        .all(|w| same(at(&wa, w) * ratio, at(&wb, w)))
        && a.demand
            .iter()
            .zip(&b.demand)
            .all(|(&x, &y)| same(x * ratio, y))
}

/// Merges streams that are proportional twins (typically one region split
/// into parts by population share). Exact: any solution of the merged LP,
/// split by shares, is feasible for the original with the same objective
/// values, and any original solution summed is feasible for the merged one,
/// so V* and C (and the stage-2 budget row) are unchanged. The LP shrinks
/// by the number of twins.
#[allow(clippy::type_complexity)]
fn merge_proportional(streams: &[Stream]) -> (Vec<Stream>, Vec<Vec<(usize, f64)>>) {
    let mut merged: Vec<Stream> = Vec::new();
    let mut members: Vec<Vec<usize>> = Vec::new();
    // Candidates share exam and option list; look only among those.
    let mut by_key: BTreeMap<(usize, Vec<(usize, u64)>), Vec<usize>> = BTreeMap::new();
    for (i, s) in streams.iter().enumerate() {
        let key = (
            s.exam,
            s.options.iter().map(|&(l, c)| (l, c.to_bits())).collect(),
        );
        let clusters = by_key.entry(key).or_default();
        match clusters
            .iter()
            .copied()
            .find(|&c| proportional(&streams[members[c][0]], s))
        {
            Some(c) => members[c].push(i),
            None => {
                clusters.push(merged.len());
                merged.push(s.clone());
                members.push(vec![i]);
            }
        }
    }
    let shares = members
        .iter()
        .map(|m| {
            let totals: Vec<f64> = m.iter().map(|&i| profile(&streams[i]).0).collect();
            let sum: f64 = totals.iter().sum();
            m.iter().zip(totals).map(|(&i, t)| (i, t / sum)).collect()
        })
        .collect();
    for (g, m) in members.iter().enumerate() {
        if m.len() < 2 {
            continue;
        }
        let agg = &mut merged[g];
        let mut backlog: BTreeMap<i64, f64> = BTreeMap::new();
        for (k, &i) in m.iter().enumerate() {
            let s = &streams[i];
            if k > 0 {
                for (t, &d) in s.demand.iter().enumerate() {
                    agg.demand[t] += d;
                }
            }
            for &(w, c) in &s.backlog {
                *backlog.entry(w).or_insert(0.0) += c;
            }
        }
        agg.backlog = backlog.into_iter().collect();
    }
    (merged, shares)
}

/// What a column of a block LP stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    /// x: candidates of `stream` examined at location `l` in week `t`.
    X { stream: usize, l: usize, t: usize },
    /// y: extra seat minutes bought of kind `k` at `l` in week `t`.
    Y { l: usize, k: usize, t: usize },
    /// z: extra rater minutes bought in pool `q`, week `t`.
    Z { q: usize, t: usize },
    /// The backlog of `stream` at the end of week `t` that is still within
    /// target (at most the registrations of the last W_e weeks): DESIGN.md's
    /// B is this plus `S`.
    B { stream: usize, t: usize },
    /// s: candidates of `stream` over target at the end of week `t`.
    S { stream: usize, t: usize },
    /// Re-plans with σ > 0 only: the part of x[stream, l, t] above its
    /// published value p > 0. The cell's `X` column is then the part up
    /// to p (upper bound p); the two together are x (see [`Replan`]).
    XAbove { stream: usize, l: usize, t: usize },
}

/// What a row of a block LP stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row {
    Flow { stream: usize, t: usize },
    Seat { l: usize, k: usize, t: usize },
    Rater { q: usize, t: usize },
}

/// The extras of a re-plan LP (DESIGN.md "Rescheduling after a surge").
/// Keys are (stream, l, t) with `stream` an index into
/// [`Instance::lp_streams`] of an instance built with `merge_twins = false`
/// (so one stream per (region, exam)); a missing key publishes 0.
#[derive(Debug, Clone, Default)]
pub struct Replan {
    /// x columns with t < `freeze_weeks` are fixed to the published value.
    pub freeze_weeks: usize,
    /// Stage-2 cost per candidate moved (|x − x_published|) in weeks ≥ F.
    /// 0 adds no columns. Where nothing was published, |x − 0| = x and σ
    /// simply joins x's cost. Where p > 0 was published, x is split into
    /// the part up to p (the `X` column, bounded by p, paying travel − σ)
    /// and the part above it (`XAbove`, paying travel + σ): their cost is
    /// travel·x + σ·|x − p| − σ·p, convex, so the LP fills `X` first.
    /// The usual split into d± with a row x − d+ + d− = p would add a row
    /// per cell, which stage 2 must then bring into the basis (measured on
    /// the national re-plan at σ = 0.1: 4,500 dual simplex iterations,
    /// 1.0–1.4 s); this split adds no row and only changes costs between
    /// the stages.
    pub sigma: f64,
    pub published: BTreeMap<(usize, usize, usize), f64>,
    /// Streams of a re-optimised block whose exam is not touched by the
    /// shock: DESIGN re-optimises only the touched exams (those hit and
    /// those sharing a kind or pool with them), so these keep their
    /// published x in every week, like a frozen week, and consume capacity.
    pub pinned_streams: BTreeSet<usize>,
}

/// One block as a column-wise sparse LP (all columns have lower bound 0
/// except the frozen x of a re-plan).
#[derive(Debug, Clone, Default)]
pub struct BlockLp {
    /// Indices into [`Instance::lp_streams`].
    pub streams: Vec<usize>,
    pub cols: Vec<Col>,
    pub col_lower: Vec<f64>,
    pub col_upper: Vec<f64>,
    /// Stage 1: π_e on every s.
    pub cost1: Vec<f64>,
    /// Stage 2: extra-capacity prices, travel, waiting weight (and in a
    /// re-plan with σ > 0, the stability term).
    pub cost2: Vec<f64>,
    /// The part of `cost2` that is the re-plan's stability term σ·|x − p|
    /// (up to the constant σ·Σp): not a cost of the plan, so its C leaves
    /// it out. All 0 outside re-plans with σ > 0.
    pub stability_cost: Vec<f64>,
    /// CSC: the entries of column j are `start[j]..start[j+1]`.
    pub start: Vec<usize>,
    pub index: Vec<usize>,
    pub value: Vec<f64>,
    pub rows: Vec<Row>,
    pub row_lower: Vec<f64>,
    pub row_upper: Vec<f64>,
}

impl BlockLp {
    pub fn num_cols(&self) -> usize {
        self.cols.len()
    }

    pub fn num_rows(&self) -> usize {
        self.rows.len()
    }

    /// (column, π_e) for every s column: the stage-1 objective as a row.
    pub fn stage1_terms(&self) -> impl Iterator<Item = (usize, f64)> + '_ {
        self.cost1
            .iter()
            .enumerate()
            .filter(|(j, _)| matches!(self.cols[*j], Col::S { .. }))
            .map(|(j, &c)| (j, c))
    }

    /// The entries of column j as (row, coefficient).
    pub fn column(&self, j: usize) -> impl Iterator<Item = (usize, f64)> + '_ {
        let r = self.start[j]..self.start[j + 1];
        self.index[r.clone()]
            .iter()
            .copied()
            .zip(self.value[r].iter().copied())
    }

    /// The whole objective `cost · x` for a column vector.
    pub fn objective(cost: &[f64], x: &[f64]) -> f64 {
        cost.iter().zip(x).map(|(c, v)| c * v).sum()
    }

    /// The plan's cost C of a point: `cost2` without the stability term.
    pub fn plan_cost(&self, x: &[f64]) -> f64 {
        self.cost2
            .iter()
            .zip(&self.stability_cost)
            .zip(x)
            .map(|((c, s), v)| (c - s) * v)
            .sum()
    }

    fn push_col(&mut self, col: Col, upper: f64, cost1: f64, cost2: f64, entries: &[(usize, f64)]) {
        self.push_col_with(col, (0.0, upper), cost1, (cost2, 0.0), entries);
    }

    /// `bounds` = (lower, upper), `cost2` = (plan cost, stability cost).
    fn push_col_with(
        &mut self,
        col: Col,
        (lower, upper): (f64, f64),
        cost1: f64,
        (plan, stability): (f64, f64),
        entries: &[(usize, f64)],
    ) {
        self.cols.push(col);
        self.col_lower.push(lower);
        self.col_upper.push(upper);
        self.cost1.push(cost1);
        self.cost2.push(plan + stability);
        self.stability_cost.push(stability);
        for &(r, v) in entries {
            if v != 0.0 {
                self.index.push(r);
                self.value.push(v);
            }
        }
        self.start.push(self.index.len());
    }

    fn push_row(&mut self, row: Row, lower: f64, upper: f64) -> usize {
        self.rows.push(row);
        self.row_lower.push(lower);
        self.row_upper.push(upper);
        self.rows.len() - 1
    }
}

/// Builds the LP of one block (`streams` are indices into `inst.lp_streams`).
/// `replan` turns it into the re-plan LP of a published plan: frozen x
/// fixed, later x paying σ per candidate away from the published value.
pub fn build_block(inst: &Instance, streams: &[usize], replan: Option<&Replan>) -> BlockLp {
    let weeks = inst.weeks;
    let mut lp = BlockLp {
        streams: streams.to_vec(),
        start: vec![0],
        ..BlockLp::default()
    };

    // Flow rows, per stream and week (the waiting target is a bound on B).
    let mut flow_row = vec![0usize; streams.len() * weeks];
    for (si, &s) in streams.iter().enumerate() {
        let st = &inst.lp_streams[s];
        let b0 = st.initial_backlog();
        for t in 0..weeks {
            let rhs = st.demand[t] + if t == 0 { b0 } else { 0.0 };
            flow_row[si * weeks + t] = lp.push_row(Row::Flow { stream: s, t }, rhs, rhs);
        }
    }

    // Seat and rater rows are created on first use, so rows without any x never exist.
    let mut seat_rows: BTreeMap<(usize, usize, usize), usize> = BTreeMap::new();
    let mut rater_rows: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    let mut entries: Vec<(usize, f64)> = Vec::with_capacity(3);

    for (si, &s) in streams.iter().enumerate() {
        let st = &inst.lp_streams[s];
        let e = st.exam;
        let k = inst.exam_kind[e];
        let (m, a, pool) = (
            inst.seat_minutes[e],
            inst.rating_minutes[e],
            inst.exam_pool[e],
        );
        for t in 0..weeks {
            for &(l, travel) in &st.options {
                let (cap, xcap) = inst.seat_capacity(l, k, t);
                if m > 0.0 && cap + xcap <= 0.0 {
                    continue;
                }
                let rater = pool.filter(|_| a > 0.0);
                if let Some(q) = rater {
                    let (rcap, rxcap) = inst.rater_capacity(q, t);
                    if rcap + rxcap <= 0.0 {
                        continue;
                    }
                }
                entries.clear();
                entries.push((flow_row[si * weeks + t], 1.0));
                if m > 0.0 {
                    let row = *seat_rows.entry((l, k, t)).or_insert_with(|| {
                        lp.push_row(Row::Seat { l, k, t }, f64::NEG_INFINITY, cap)
                    });
                    entries.push((row, m));
                }
                if let Some(q) = rater {
                    let (rcap, _) = inst.rater_capacity(q, t);
                    let row = *rater_rows.entry((q, t)).or_insert_with(|| {
                        lp.push_row(Row::Rater { q, t }, f64::NEG_INFINITY, rcap)
                    });
                    entries.push((row, a));
                }
                let published = replan.map(|r| {
                    let p = r.published.get(&(s, l, t)).copied().unwrap_or(0.0);
                    (r, p)
                });
                match published {
                    // Frozen or pinned: x is what was published.
                    Some((r, p)) if t < r.freeze_weeks || r.pinned_streams.contains(&s) => lp
                        .push_col_with(
                            Col::X { stream: s, l, t },
                            (p, p),
                            0.0,
                            (travel, 0.0),
                            &entries,
                        ),
                    // σ·|x − 0| = σ·x.
                    Some((r, p)) if r.sigma > 0.0 && p <= 0.0 => lp.push_col_with(
                        Col::X { stream: s, l, t },
                        (0.0, f64::INFINITY),
                        0.0,
                        (travel, r.sigma),
                        &entries,
                    ),
                    // x = (part up to p) + (part above p), see `Replan::sigma`.
                    Some((r, p)) if r.sigma > 0.0 => {
                        lp.push_col_with(
                            Col::X { stream: s, l, t },
                            (0.0, p),
                            0.0,
                            (travel, -r.sigma),
                            &entries,
                        );
                        lp.push_col_with(
                            Col::XAbove { stream: s, l, t },
                            (0.0, f64::INFINITY),
                            0.0,
                            (travel, r.sigma),
                            &entries,
                        );
                    }
                    _ => lp.push_col(
                        Col::X { stream: s, l, t },
                        f64::INFINITY,
                        0.0,
                        travel,
                        &entries,
                    ),
                }
            }
        }
        let pi = inst.priority[e];
        let target = inst.target[e];
        for t in 0..weeks {
            // Both parts of the backlog carry over to the next week.
            entries.clear();
            entries.push((flow_row[si * weeks + t], 1.0));
            if t + 1 < weeks {
                entries.push((flow_row[si * weeks + t + 1], -1.0));
            }
            lp.push_col(
                Col::B { stream: s, t },
                st.window(t, target),
                0.0,
                inst.waiting_weight,
                &entries,
            );
            lp.push_col(
                Col::S { stream: s, t },
                f64::INFINITY,
                pi,
                inst.waiting_weight,
                &entries,
            );
        }
    }

    for (&(l, k, t), &row) in &seat_rows {
        let (_, xcap) = inst.seat_capacity(l, k, t);
        if xcap > 0.0 {
            let price = inst.cap(l, k).map_or(0.0, |c| c.price);
            lp.push_col(Col::Y { l, k, t }, xcap, 0.0, price, &[(row, -1.0)]);
        }
    }
    for (&(q, t), &row) in &rater_rows {
        let (_, rxcap) = inst.rater_capacity(q, t);
        if rxcap > 0.0 {
            let price = inst.pool_capacity[q].price;
            lp.push_col(Col::Z { q, t }, rxcap, 0.0, price, &[(row, -1.0)]);
        }
    }
    lp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(demand: Vec<f64>, backlog: Vec<(i64, f64)>) -> Stream {
        Stream {
            region: 0,
            exam: 0,
            demand,
            backlog,
            options: vec![],
        }
    }

    /// An instance with only what [`Instance::exam_blocks`] reads.
    fn exams_only(exam_kind: Vec<usize>, exam_pool: Vec<Option<usize>>) -> Instance {
        Instance {
            weeks: 1,
            kinds: vec![],
            exam_kind,
            exam_pool,
            seat_minutes: vec![],
            rating_minutes: vec![],
            target: vec![],
            priority: vec![],
            capacity: vec![],
            location_factor: vec![],
            unavailable: vec![],
            pool_capacity: vec![],
            pool_factor: vec![],
            streams: vec![],
            lp_streams: vec![],
            members: vec![],
            waiting_weight: 1.0,
        }
    }

    proptest::proptest! {
        /// Exams sharing a kind or a pool, joined through their kind's and
        /// pool's first exam, make the blocks that joining every such pair
        /// makes, each named by its lowest exam.
        #[test]
        fn exam_blocks_join_every_pair_sharing_a_kind_or_pool(
            exams in proptest::collection::vec((0usize..6, proptest::option::of(0usize..4)), 1..40)
        ) {
            let (kinds, pools): (Vec<usize>, Vec<Option<usize>>) = exams.into_iter().unzip();
            let n = kinds.len();
            let linked = |a: usize, b: usize| kinds[a] == kinds[b] || (pools[a].is_some() && pools[a] == pools[b]);
            // The transitive closure, pair by pair, until nothing changes.
            let mut block: Vec<usize> = (0..n).collect();
            loop {
                let mut changed = false;
                for a in 0..n {
                    for b in 0..n {
                        if linked(a, b) && block[a] != block[b] {
                            let low = block[a].min(block[b]);
                            let (x, y) = (block[a], block[b]);
                            for v in &mut block {
                                if *v == x || *v == y {
                                    *v = low;
                                }
                            }
                            changed = true;
                        }
                    }
                }
                if !changed {
                    break;
                }
            }
            proptest::prop_assert_eq!(exams_only(kinds, pools).exam_blocks(), block);
        }
    }

    /// Twins are found however their backlog rows come: in any order, a
    /// week in two rows (summed), and not when one week differs.
    #[test]
    fn proportional_reads_backlog_weeks_summed_in_any_order() {
        let a = stream(vec![10.0, 20.0], vec![(-3, 5.0), (-1, 7.0)]);
        let b = stream(vec![20.0, 40.0], vec![(-1, 14.0), (-3, 4.0), (-3, 6.0)]);
        assert!(proportional(&a, &b));
        assert!(proportional(&b, &a));
        let c = stream(vec![20.0, 40.0], vec![(-1, 14.0), (-3, 10.0), (-5, 1.0)]);
        assert!(!proportional(&a, &c));
        let d = stream(vec![20.0, 40.0], vec![(-1, 14.0), (-2, 10.0)]);
        assert!(!proportional(&a, &d));
    }

    /// The capacity table holds each location's own resources: 300
    /// locations of a kind each hold 300 entries, not 300 × 300; weekly
    /// factors are held for the one location a region can use, and worked
    /// out for the others when asked.
    #[test]
    fn capacity_is_held_per_location_resource() {
        let n = 300;
        let v = serde_json::json!({
            "format": "examcap/scenario@1", "name": "kinds", "start_week": "2027-W01",
            "horizon_weeks": 2,
            "exams": [{"id": "E", "name": "e", "resource": "k7", "seat_minutes": 60,
                       "target_wait_weeks": 1}],
            "locations": (0..n).map(|i| serde_json::json!({"id": format!("L{i}"), "name": "l",
                "resources": [{"kind": format!("k{i}"), "weekly_minutes": 60 + i,
                    "extra_weekly_minutes": 0, "extra_cost_per_minute": 0}],
                "unavailable": [{"from_week": 1, "to_week": 1, "factor": 0.5}]}))
                .collect::<Vec<_>>(),
            "regions": [{"id": "R", "name": "r", "options": [{"location": "L7", "travel_cost": 0}]}],
            "demand": [{"region": "R", "exam": "E", "weekly": [1, 1]}]
        });
        let sc = crate::parse_scenario(&serde_json::to_vec(&v).unwrap()).unwrap();
        let inst = Instance::new(&sc, true);
        assert_eq!(inst.kinds.len(), n);
        assert_eq!(inst.capacity.iter().map(Vec::len).sum::<usize>(), n);
        let k = |id: &str| inst.kinds.iter().position(|x| x == id).unwrap();
        assert_eq!(inst.exam_kind, [k("k7")]);
        assert_eq!(inst.seat_capacity(7, k("k7"), 0), (67.0, 0.0));
        assert_eq!(inst.seat_capacity(8, k("k7"), 0), (0.0, 0.0));
        assert_eq!(inst.cap(8, k("k8")).map(|c| c.weekly), Some(68.0));
        assert_eq!(inst.streams[0].options, [(7, 0.0)]);
        let held: Vec<usize> = (0..n)
            .filter(|&l| !inst.location_factor[l].is_empty())
            .collect();
        assert_eq!(held, [7]);
        assert_eq!(inst.location_factor[7], [1.0, 0.5]);
        assert_eq!(inst.seat_capacity(7, k("k7"), 1), (33.5, 0.0));
        assert_eq!(inst.seat_capacity(8, k("k8"), 0), (68.0, 0.0));
        assert_eq!(inst.seat_capacity(8, k("k8"), 1), (34.0, 0.0));
    }

    #[test]
    fn window_counts_recent_registrations_including_backlog() {
        let s = stream(vec![10.0, 20.0, 30.0], vec![(-3, 5.0), (-1, 7.0)]);
        // W = 2 at t = 0: weeks -1 and 0.
        assert_eq!(s.window(0, 2), 7.0 + 10.0);
        // W = 4 at t = 0: weeks -3..0.
        assert_eq!(s.window(0, 4), 5.0 + 7.0 + 10.0);
        // W = 2 at t = 2: weeks 1..2.
        assert_eq!(s.window(2, 2), 50.0);
        // W = 0: nobody may wait past the end of their registration week.
        assert_eq!(s.window(2, 0), 0.0);
        assert_eq!(s.initial_backlog(), 12.0);
        assert_eq!(s.registrations(-1), 7.0);
        assert_eq!(s.registrations(-2), 0.0);
        assert_eq!(s.registrations(1), 20.0);
    }
}
