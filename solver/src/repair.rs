//! The first answer to a surge: a feasible repair of the published plan,
//! made greedily in milliseconds, with no LP.
//!
//! Ops need something they can act on while the phones ring; the optimal
//! re-plan ([`crate::reschedule::replan`]) follows. The repair starts from
//! the published integral allocation on the shocked scenario and:
//! 1. leaves weeks < F and every exam outside the touched set as published
//!    (a freeze the shock breaks is a [`FreezeError`]);
//! 2. takes candidates of touched exams off seat and rater cells the shock
//!    shrank below their use (a closed location), and off weeks where a
//!    demand drop left more exams than registrations, latest week first;
//! 3. week by week from F, places the candidates of a touched exam that the
//!    shock leaves waiting beyond what the published plan already left
//!    waiting (the surge, and those just taken off) on free capacity: first
//!    regular capacity at the region's locations, nearest (lowest travel
//!    cost) first, then extra capacity in the same order. What the published
//!    plan left waiting comes from its own cohorts (the registrations it was
//!    solved for) and allocation: a shock that changes nothing changes
//!    nothing, where placing every waiting candidate bought extra capacity
//!    the plan had chosen not to buy.
//!    Streams go by priority, then longest queue. A candidate is never
//!    examined before registering (cumulative exams never pass cumulative
//!    registrations), and no seat or rater cell goes above regular + extra.
//!
//! Its V and C are evaluated exactly like a plan's ([`rounding::evaluate`],
//! buying max(0, use − regular) extra per cell), so V ≥ the re-plan's V*:
//! the repair is one feasible point of the re-plan's LP.

use crate::model::Instance;
use crate::plan::{AllocationRow, ExtraRaters, ExtraSeats, Plan, Values};
use crate::reschedule::{
    check_fixed, check_freeze, published_allocation, validate_published, RescheduleError,
};
use crate::rounding::{self, Allocation, Cell};
use crate::scenario::Scenario;
use crate::waits::{self, ExamWaits};
use std::collections::{BTreeMap, BTreeSet};

const EPS: f64 = 1e-9;

/// A feasible repair of a published plan (see the module docs).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Repair {
    /// The integral allocation, in the layout of [`Plan::allocation`].
    pub allocation: Vec<AllocationRow>,
    /// Extra seat minutes bought: what the allocation uses beyond regular
    /// capacity (`lp_minutes` equals `minutes`: no LP stands behind it).
    pub extra_seats: Vec<ExtraSeats>,
    /// Extra rater minutes bought, likewise.
    pub extra_raters: Vec<ExtraRaters>,
    /// V and C of the allocation, as a plan's integral values are computed.
    pub values: Values,
    /// National waits per exam on the repaired allocation.
    pub waits: Vec<ExamWaits>,
    /// Candidates taken off capacity the shock removed, or off weeks a
    /// demand drop emptied (all of a region's, where it registers nobody).
    pub removed: u64,
    /// Candidates placed by the greedy pass.
    pub placed: u64,
}

/// Repairs `published` for the `shocked` scenario, changing only exams in
/// `touched` and weeks ≥ `freeze_weeks` (see the module docs).
pub fn repair(
    shocked: &Scenario,
    published: &Plan,
    touched: &BTreeSet<String>,
    freeze_weeks: usize,
) -> Result<Repair, RescheduleError> {
    crate::validate::validate_scenario(shocked)?;
    validate_published(shocked, published).map_err(RescheduleError::Published)?;
    let inst = Instance::new(shocked, false);
    let mut alloc = published_allocation(shocked, &inst, published);
    check_freeze(shocked, &inst, &alloc, freeze_weeks)?;
    check_fixed(shocked, &inst, &alloc, touched).map_err(RescheduleError::Published)?;
    let movable: Vec<bool> = inst
        .streams
        .iter()
        .map(|st| touched.contains(&shocked.exams[st.exam].id))
        .collect();
    let published_served = rounding::exams_per_week(&inst, &alloc);
    let left = left_waiting(shocked, &inst, published, &published_served);
    let mut state = State::new(&inst, &alloc, &published_served, left);
    // Rows of a (region, exam) the shocks left without any registration
    // have no stream, so the published allocation above leaves them out:
    // taken off as surely as what `shed` takes.
    let published_total: u64 = published
        .allocation
        .iter()
        .fold(0, |n, r| n.saturating_add(r.candidates));
    let kept = alloc.x.values().sum::<f64>().round() as u64;
    let dropped = published_total.saturating_sub(kept);
    let removed = dropped + state.shed(&mut alloc, &movable, freeze_weeks);
    let placed = state.place(&mut alloc, &movable, freeze_weeks);
    alloc.x.retain(|_, v| *v > 0.0);
    state.buy_extra(&mut alloc);

    let ev = rounding::evaluate(&inst, &alloc);
    let served = rounding::exams_per_week(&inst, &alloc);
    let cohorts: Vec<_> = (0..inst.streams.len())
        .map(|s| waits::cohorts(&inst, s, &served[s]))
        .collect();
    let ids: Vec<String> = shocked.exams.iter().map(|e| e.id.clone()).collect();
    let allocation = alloc
        .x
        .iter()
        .map(|(c, &v)| {
            let st = &inst.streams[c.stream];
            AllocationRow {
                region: shocked.regions[st.region].id.clone(),
                exam: shocked.exams[st.exam].id.clone(),
                location: shocked.locations[c.l].id.clone(),
                week: c.t,
                candidates: v as u64,
            }
        })
        .collect();
    let extra_seats = alloc
        .extra_seats
        .iter()
        .map(|(&(l, k, t), &m)| ExtraSeats {
            location: shocked.locations[l].id.clone(),
            kind: inst.kinds[k].clone(),
            week: t,
            lp_minutes: m,
            minutes: m,
        })
        .collect();
    let extra_raters = alloc
        .extra_raters
        .iter()
        .map(|(&(q, t), &m)| ExtraRaters {
            pool: shocked.rating_pools[q].id.clone(),
            week: t,
            lp_minutes: m,
            minutes: m,
        })
        .collect();
    Ok(Repair {
        allocation,
        extra_seats,
        extra_raters,
        values: Values::from(&ev),
        waits: waits::exam_waits(&inst, &ids, &cohorts),
        removed,
        placed,
    })
}

/// B[stream][t] of the published plan: the registrations it was solved for
/// (its cohorts, per registration week; before week 0, the backlog) less its
/// exams `served` per stream and week (the published allocation, before any
/// repair). A stream the plan has no cohorts for (new demand) left nobody
/// waiting.
fn left_waiting(
    sc: &Scenario,
    inst: &Instance,
    published: &Plan,
    served: &[Vec<f64>],
) -> Vec<Vec<f64>> {
    inst.streams
        .iter()
        .zip(served)
        .map(|(st, x)| {
            let (region, exam) = (&sc.regions[st.region].id, &sc.exams[st.exam].id);
            let mut before = 0.0;
            let mut regs = vec![0.0; inst.weeks];
            for c in published
                .cohorts
                .iter()
                .filter(|c| &c.region == region && &c.exam == exam)
                .flat_map(|c| &c.cohorts)
            {
                match usize::try_from(c.registered_week) {
                    Err(_) => before += c.candidates,
                    Ok(t) if t < inst.weeks => regs[t] += c.candidates,
                    Ok(_) => {}
                }
            }
            let mut b = before;
            regs.iter()
                .zip(x)
                .map(|(d, x)| {
                    b += d - x;
                    b.max(0.0)
                })
                .collect()
        })
        .collect()
}

/// Seat and rater use and each stream's backlog, kept in step with the
/// allocation as candidates are taken off and placed.
struct State<'a> {
    inst: &'a Instance,
    seats: BTreeMap<(usize, usize, usize), f64>,
    raters: BTreeMap<(usize, usize), f64>,
    /// B[stream][t]: registered by the end of week t and not yet examined.
    backlog: Vec<Vec<f64>>,
    /// B[stream][t] of the published plan under the registrations it was
    /// solved for: waiting it chose. Step 3 places only the backlog above it.
    left_waiting: Vec<Vec<f64>>,
}

impl<'a> State<'a> {
    /// The books of `alloc`, whose exams per stream and week are `served`.
    fn new(
        inst: &'a Instance,
        alloc: &Allocation,
        served: &[Vec<f64>],
        left_waiting: Vec<Vec<f64>>,
    ) -> Self {
        let (seats, raters) = rounding::usage(inst, alloc);
        let backlog = inst
            .streams
            .iter()
            .zip(served)
            .map(|(st, x)| st.backlogs(x))
            .collect();
        State {
            inst,
            seats,
            raters,
            backlog,
            left_waiting,
        }
    }

    /// Adds `n` (negative: removes) candidates to a cell and its books.
    fn add(&mut self, alloc: &mut Allocation, c: Cell, n: f64) {
        let inst = self.inst;
        let e = inst.streams[c.stream].exam;
        *alloc.x.entry(c).or_insert(0.0) += n;
        *self
            .seats
            .entry((c.l, inst.exam_kind[e], c.t))
            .or_insert(0.0) += n * inst.seat_minutes[e];
        if let Some(q) = inst.exam_pool[e] {
            *self.raters.entry((q, c.t)).or_insert(0.0) += n * inst.rating_minutes[e];
        }
        for b in &mut self.backlog[c.stream][c.t..] {
            *b -= n;
        }
    }

    /// The fewest whole candidates of cell `c` to take off so that neither
    /// its seat nor its rater use is above regular + extra (0 if neither is).
    fn excess(&self, c: Cell) -> f64 {
        let inst = self.inst;
        let e = inst.streams[c.stream].exam;
        let over = |used: f64, (cap, xcap): (f64, f64), per: f64| {
            let by = used - (cap + xcap + EPS);
            if per > 0.0 && by > 0.0 {
                (by / per).ceil().max(1.0)
            } else {
                0.0
            }
        };
        let k = inst.exam_kind[e];
        let seats = over(
            self.seats.get(&(c.l, k, c.t)).copied().unwrap_or(0.0),
            inst.seat_capacity(c.l, k, c.t),
            inst.seat_minutes[e],
        );
        let raters = inst.exam_pool[e].map_or(0.0, |q| {
            over(
                self.raters.get(&(q, c.t)).copied().unwrap_or(0.0),
                inst.rater_capacity(q, c.t),
                inst.rating_minutes[e],
            )
        });
        seats.max(raters)
    }

    /// Step 2 of the module docs; returns the candidates taken off.
    fn shed(&mut self, alloc: &mut Allocation, movable: &[bool], freeze: usize) -> u64 {
        let inst = self.inst;
        let mut removed = 0.0;
        // Cells over capacity: take the farthest candidates off first.
        let mut cells: Vec<Cell> = alloc
            .x
            .keys()
            .filter(|c| c.t >= freeze && movable[c.stream])
            .copied()
            .collect();
        let travel = |c: &Cell| inst.streams[c.stream].travel(c.l);
        cells.sort_by(|a, b| travel(b).total_cmp(&travel(a)).then(a.cmp(b)));
        for &c in &cells {
            // One step per cell, so a cell's size never sets the repair's
            // time; the second round only mends floating-point rounding.
            for _ in 0..2 {
                let whole = alloc.x.get(&c).copied().unwrap_or(0.0).floor();
                let take = self.excess(c).min(whole);
                if take < 1.0 {
                    break;
                }
                self.add(alloc, c, -take);
                removed += take;
            }
        }
        // Backlogs below zero (a demand drop): un-examine, latest week first.
        for s in (0..inst.streams.len()).filter(|&s| movable[s]) {
            for t in freeze..inst.weeks {
                let mut short = -self.backlog[s][t];
                let mut week = t + 1;
                while short > EPS && week > freeze {
                    week -= 1;
                    let here: Vec<Cell> = alloc
                        .x
                        .range(
                            Cell {
                                stream: s,
                                t: week,
                                l: 0,
                            }..=Cell {
                                stream: s,
                                t: week,
                                l: usize::MAX,
                            },
                        )
                        .map(|(&c, _)| c)
                        .collect();
                    for c in here {
                        let take = alloc.x[&c].min(short.ceil());
                        if take > 0.0 {
                            self.add(alloc, c, -take);
                            removed += take;
                            short -= take;
                        }
                    }
                }
            }
        }
        removed as u64
    }

    /// Step 3 of the module docs; returns the candidates placed.
    fn place(&mut self, alloc: &mut Allocation, movable: &[bool], freeze: usize) -> u64 {
        let inst = self.inst;
        let mut placed = 0.0;
        let mut order: Vec<usize> = (0..inst.streams.len()).filter(|&s| movable[s]).collect();
        // Each stream's options, nearest first (ties keep the region's order).
        let options: Vec<Vec<usize>> = inst
            .streams
            .iter()
            .map(|st| {
                let mut o = st.options.clone();
                o.sort_by(|a, b| a.1.total_cmp(&b.1));
                o.into_iter().map(|(l, _)| l).collect()
            })
            .collect();
        for t in freeze..inst.weeks {
            order.sort_by(|&a, &b| {
                let (ea, eb) = (inst.streams[a].exam, inst.streams[b].exam);
                inst.priority[eb]
                    .total_cmp(&inst.priority[ea])
                    .then(self.backlog[b][t].total_cmp(&self.backlog[a][t]))
                    .then(a.cmp(&b))
            });
            for use_extra in [false, true] {
                for &s in &order {
                    for &l in &options[s] {
                        // Whole candidates registered by week t and still
                        // waiting in every later week, beyond what the
                        // published plan left waiting there.
                        let waiting = self.backlog[s][t..]
                            .iter()
                            .zip(&self.left_waiting[s][t..])
                            .fold(f64::INFINITY, |m, (&b, &k)| m.min(b - k));
                        if waiting < 1.0 - EPS {
                            break;
                        }
                        let n = (waiting + EPS).min(self.room(s, l, t, use_extra)).floor();
                        if n >= 1.0 {
                            self.add(alloc, Cell { stream: s, t, l }, n);
                            placed += n;
                        }
                    }
                }
            }
        }
        placed as u64
    }

    /// Whole candidates of stream `s` that still fit at `l` in week `t`:
    /// within regular capacity, or regular + extra with `use_extra`.
    fn room(&self, s: usize, l: usize, t: usize, use_extra: bool) -> f64 {
        let inst = self.inst;
        let e = inst.streams[s].exam;
        let k = inst.exam_kind[e];
        let limit = |(cap, xcap): (f64, f64)| if use_extra { cap + xcap } else { cap };
        let fit = |limit: f64, used: f64, per: f64| {
            if per > 0.0 {
                ((limit - used + EPS) / per).floor().max(0.0)
            } else {
                f64::INFINITY
            }
        };
        let (cap, xcap) = inst.seat_capacity(l, k, t);
        if cap + xcap <= 0.0 {
            // No capacity at all: the model has no cell here either.
            return 0.0;
        }
        let seats = fit(
            limit((cap, xcap)),
            self.seats.get(&(l, k, t)).copied().unwrap_or(0.0),
            inst.seat_minutes[e],
        );
        let raters = inst.exam_pool[e].map_or(f64::INFINITY, |q| {
            let c = inst.rater_capacity(q, t);
            if c.0 + c.1 <= 0.0 && inst.rating_minutes[e] > 0.0 {
                return 0.0;
            }
            fit(
                limit(c),
                self.raters.get(&(q, t)).copied().unwrap_or(0.0),
                inst.rating_minutes[e],
            )
        });
        seats.min(raters)
    }

    /// Buys max(0, use − regular) extra per cell, as a rounded plan does.
    fn buy_extra(&self, alloc: &mut Allocation) {
        alloc.extra_seats.clear();
        alloc.extra_raters.clear();
        for (&(l, k, t), &used) in &self.seats {
            let (cap, _) = self.inst.seat_capacity(l, k, t);
            if used > cap + EPS {
                alloc.extra_seats.insert((l, k, t), used - cap);
            }
        }
        for (&(q, t), &used) in &self.raters {
            let (cap, _) = self.inst.rater_capacity(q, t);
            if used > cap + EPS {
                alloc.extra_raters.insert((q, t), used - cap);
            }
        }
    }
}
