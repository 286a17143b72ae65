//! The integral allocation: x rounded to whole candidates.
//!
//! Rounding never exceeds capacity: each seat cell (l, k, t) may use its
//! regular minutes plus the extra the LP bought there, each rater cell
//! (q, t) likewise, and cumulative exams never pass cumulative registrations
//! (the backlog stays ≥ 0). It goes in three passes:
//! 1. floor every x (with a 1e-6 tolerance, so 2.9999999 counts as 3);
//! 2. enforce the limits exactly, taking candidates back where the LP's own
//!    tolerance let a cell or a backlog go over;
//! 3. repair: week by week, re-serve candidates that flooring dropped
//!    (largest fractional part first) wherever seat and rater slack remain
//!    within what the LP bought; a candidate the LP served at least half of
//!    may also use the rest of the extra capacity (round half up) when that
//!    pays in the model's order: fewer candidate-weeks over target, or else
//!    less waiting cost than the minutes and travel cost. Without that, an
//!    LP that spends its stage-2 slack on 2.999999 candidates would lose a
//!    whole candidate to flooring.
//!
//! 4. fill: slack that remains in a cell (within what the LP bought) goes to
//!    any stream still waiting that can use the location, highest priority
//!    and longest queue first.
//!
//! The plan then buys only the extra it uses, max(0, use − regular), never
//! more than the extra capacity.

use crate::model::Instance;
use std::collections::BTreeMap;

/// Candidates of stream `stream` examined at location `l` in week `t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cell {
    pub stream: usize,
    pub t: usize,
    pub l: usize,
}

/// An allocation: exams per cell and the extra capacity bought.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Allocation {
    /// Exams per cell (cells with 0 may be left out).
    pub x: BTreeMap<Cell, f64>,
    /// Extra seat minutes bought per (location, kind, week).
    pub extra_seats: BTreeMap<(usize, usize, usize), f64>,
    /// Extra rater minutes bought per (pool, week).
    pub extra_raters: BTreeMap<(usize, usize), f64>,
}

/// The objective values of an allocation and what makes them up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evaluation {
    /// Σ π·s.
    pub violation: f64,
    /// Σ p·y + Σ p·z + Σ c·x + w·Σ B.
    pub cost: f64,
    /// B[stream][t].
    pub backlog: Vec<Vec<f64>>,
    /// s[stream][t] = max(0, B − window).
    pub over_target: Vec<Vec<f64>>,
    pub extra_seat_cost: f64,
    pub extra_rater_cost: f64,
    pub travel_cost: f64,
    pub waiting_cost: f64,
}

/// Exams per stream and week, summed over locations.
pub fn exams_per_week(inst: &Instance, alloc: &Allocation) -> Vec<Vec<f64>> {
    let mut out = vec![vec![0.0; inst.weeks]; inst.streams.len()];
    for (c, &v) in &alloc.x {
        out[c.stream][c.t] += v;
    }
    out
}

/// Seat minutes used per (location, kind, week) and rater minutes per (pool, week).
#[allow(clippy::type_complexity)]
pub fn usage(
    inst: &Instance,
    alloc: &Allocation,
) -> (
    BTreeMap<(usize, usize, usize), f64>,
    BTreeMap<(usize, usize), f64>,
) {
    let mut seats = BTreeMap::new();
    let mut raters = BTreeMap::new();
    for (c, &v) in &alloc.x {
        let e = inst.streams[c.stream].exam;
        *seats.entry((c.l, inst.exam_kind[e], c.t)).or_insert(0.0) += v * inst.seat_minutes[e];
        if let Some(q) = inst.exam_pool[e] {
            *raters.entry((q, c.t)).or_insert(0.0) += v * inst.rating_minutes[e];
        }
    }
    (seats, raters)
}

/// V and C of an allocation, computed from the model's definitions.
pub fn evaluate(inst: &Instance, alloc: &Allocation) -> Evaluation {
    let served = exams_per_week(inst, alloc);
    let mut ev = Evaluation::default();
    for (si, st) in inst.streams.iter().enumerate() {
        let e = st.exam;
        let mut b = st.initial_backlog();
        let mut bs = Vec::with_capacity(inst.weeks);
        let mut ss = Vec::with_capacity(inst.weeks);
        for (t, (&d, &x)) in st.demand.iter().zip(&served[si]).enumerate() {
            b += d - x;
            let s = (b - st.window(t, inst.target[e])).max(0.0);
            ev.violation += inst.priority[e] * s;
            ev.waiting_cost += inst.waiting_weight * b;
            bs.push(b);
            ss.push(s);
        }
        ev.backlog.push(bs);
        ev.over_target.push(ss);
    }
    for (c, &v) in &alloc.x {
        let travel = inst.streams[c.stream]
            .options
            .iter()
            .find(|o| o.0 == c.l)
            .map_or(0.0, |o| o.1);
        ev.travel_cost += travel * v;
    }
    for (&(l, k, _), &y) in &alloc.extra_seats {
        ev.extra_seat_cost += inst.capacity[l][k].map_or(0.0, |c| c.price) * y;
    }
    for (&(q, _), &z) in &alloc.extra_raters {
        ev.extra_rater_cost += inst.pool_capacity[q].price * z;
    }
    ev.cost = ev.extra_seat_cost + ev.extra_rater_cost + ev.travel_cost + ev.waiting_cost;
    ev
}

const EPS: f64 = 1e-9;

/// Rounds an LP allocation to whole candidates (see the module docs).
/// `lp` is a feasible LP point (its x, y and z within the model's rows).
pub fn round(inst: &Instance, lp: &Allocation) -> Allocation {
    round_pinned(inst, lp, &|_, _| false)
}

/// [`round`] that leaves every cell of a pinned (stream, week) exactly as
/// `lp` has it (rounded to the nearest whole candidate): never taken back,
/// never repaired or filled. A re-plan pins its frozen weeks and the
/// streams it keeps fixed, whose LP values are already the published
/// whole numbers; without the pin, the fill pass would hand slack in a
/// frozen week to a waiting stream and change invitations already sent.
pub fn round_pinned(
    inst: &Instance,
    lp: &Allocation,
    pinned: &dyn Fn(usize, usize) -> bool,
) -> Allocation {
    // Limits: regular plus the extra the LP bought (clamped into [0, extra]).
    let mut seat_limit: BTreeMap<(usize, usize, usize), f64> = BTreeMap::new();
    let mut rater_limit: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    for c in lp.x.keys() {
        let e = inst.streams[c.stream].exam;
        let k = inst.exam_kind[e];
        seat_limit.entry((c.l, k, c.t)).or_insert_with(|| {
            let (cap, xcap) = inst.seat_capacity(c.l, k, c.t);
            cap + lp
                .extra_seats
                .get(&(c.l, k, c.t))
                .copied()
                .unwrap_or(0.0)
                .clamp(0.0, xcap)
        });
        if let Some(q) = inst.exam_pool[e] {
            rater_limit.entry((q, c.t)).or_insert_with(|| {
                let (cap, xcap) = inst.rater_capacity(q, c.t);
                cap + lp
                    .extra_raters
                    .get(&(q, c.t))
                    .copied()
                    .unwrap_or(0.0)
                    .clamp(0.0, xcap)
            });
        }
    }

    // 1. Floor.
    let pin = |c: &Cell| pinned(c.stream, c.t);
    let mut x: BTreeMap<Cell, f64> =
        lp.x.iter()
            .map(|(&c, &v)| {
                let n = if pin(&c) {
                    v.round()
                } else {
                    (v + 1e-6).floor()
                };
                (c, n.max(0.0))
            })
            .collect();
    let frac = |c: &Cell| {
        let v = lp.x.get(c).copied().unwrap_or(0.0);
        v - v.floor()
    };

    // 2. Enforce capacity: take back from the cells with the smallest fraction first.
    let mut int = Allocation {
        x: x.clone(),
        ..Allocation::default()
    };
    let (mut seats_used, mut raters_used) = usage(inst, &int);
    let mut order: Vec<Cell> = x.keys().copied().collect();
    order.sort_by(|a, b| frac(a).total_cmp(&frac(b)).then(a.cmp(b)));
    for c in order.iter().filter(|c| !pin(c)) {
        let e = inst.streams[c.stream].exam;
        let (m, a) = (inst.seat_minutes[e], inst.rating_minutes[e]);
        let seat = (c.l, inst.exam_kind[e], c.t);
        let pool = inst.exam_pool[e].map(|q| (q, c.t));
        loop {
            let n = x[c];
            let seat_over = m > 0.0 && seats_used[&seat] > seat_limit[&seat] + EPS;
            let rater_over =
                a > 0.0 && pool.is_some_and(|p| raters_used[&p] > rater_limit[&p] + EPS);
            if n < 1.0 || !(seat_over || rater_over) {
                break;
            }
            x.insert(*c, n - 1.0);
            *seats_used.get_mut(&seat).expect("cell has a seat entry") -= m;
            if let Some(p) = pool {
                *raters_used.get_mut(&p).expect("cell has a rater entry") -= a;
            }
        }
    }
    // ... and keep every backlog ≥ 0: cumulative exams ≤ cumulative registrations.
    let mut by_stream: Vec<Vec<Cell>> = vec![Vec::new(); inst.streams.len()];
    for c in x.keys() {
        by_stream[c.stream].push(*c);
    }
    for (si, cells) in by_stream.iter().enumerate() {
        let st = &inst.streams[si];
        let mut registered = st.initial_backlog();
        let mut served = 0.0;
        let mut i = 0;
        for t in 0..inst.weeks {
            registered += st.demand[t];
            let week: Vec<Cell> = cells[i..]
                .iter()
                .take_while(|c| c.t == t)
                .copied()
                .collect();
            i += week.len();
            for c in &week {
                served += x[c];
            }
            for c in week.iter().filter(|c| !pin(c)) {
                while served > registered + EPS && x[c] >= 1.0 {
                    *x.get_mut(c).expect("cell exists") -= 1.0;
                    served -= 1.0;
                    let e = st.exam;
                    *seats_used
                        .get_mut(&(c.l, inst.exam_kind[e], t))
                        .expect("cell has a seat entry") -= inst.seat_minutes[e];
                    if let Some(q) = inst.exam_pool[e] {
                        *raters_used
                            .get_mut(&(q, t))
                            .expect("cell has a rater entry") -= inst.rating_minutes[e];
                    }
                }
            }
        }
    }

    // 3. Repair: re-serve what flooring dropped, where slack remains.
    int.x = x;
    let served = exams_per_week(inst, &int);
    let mut backlog: Vec<Vec<f64>> = inst
        .streams
        .iter()
        .enumerate()
        .map(|(si, st)| {
            let mut b = st.initial_backlog();
            (0..inst.weeks)
                .map(|t| {
                    b += st.demand[t] - served[si][t];
                    b
                })
                .collect()
        })
        .collect();
    let mut candidates: Vec<Cell> =
        lp.x.keys()
            .copied()
            .filter(|c| frac(c) > 1e-6 && !pin(c))
            .collect();
    candidates.sort_by(|a, b| {
        a.t.cmp(&b.t)
            .then(frac(b).total_cmp(&frac(a)))
            .then(a.cmp(b))
    });
    for c in candidates {
        let st = &inst.streams[c.stream];
        let e = st.exam;
        let (m, a) = (inst.seat_minutes[e], inst.rating_minutes[e]);
        let seat = (c.l, inst.exam_kind[e], c.t);
        let pool = inst.exam_pool[e].map(|q| (q, c.t));
        // Up to what the LP bought; a candidate the LP served half or more of
        // may also use the rest of the extra capacity (round half up).
        let half_up = frac(&c) >= 0.5;
        let seat_cap = if half_up {
            let (cap, xcap) = inst.seat_capacity(c.l, seat.1, c.t);
            cap + xcap
        } else {
            seat_limit[&seat]
        };
        let rater_cap = |p: (usize, usize)| {
            if half_up {
                let (cap, xcap) = inst.rater_capacity(p.0, p.1);
                cap + xcap
            } else {
                rater_limit[&p]
            }
        };
        let seat_ok = m <= 0.0 || seats_used[&seat] + m <= seat_cap + EPS;
        let rater_ok = a <= 0.0 || pool.is_none_or(|p| raters_used[&p] + a <= rater_cap(p) + EPS);
        let waiting = backlog[c.stream][c.t..].iter().all(|&b| b >= 1.0 - EPS);
        // Extra minutes the LP did not buy are bought for this candidate
        // only if that pays in the model's own order: fewer candidate-weeks
        // over target, or else a lower cost (waiting saved against extra
        // minutes and travel). Otherwise an expensive minute would be
        // bought to seat one candidate the LP served in part.
        let unbought_seats = if m > 0.0 {
            (seats_used[&seat] + m - seat_limit[&seat]).max(0.0)
        } else {
            0.0
        };
        let unbought_raters = match pool {
            Some(p) if a > 0.0 => (raters_used[&p] + a - rater_limit[&p]).max(0.0),
            _ => 0.0,
        };
        let pays = unbought_seats <= EPS && unbought_raters <= EPS || {
            let over_target = (c.t..inst.weeks)
                .any(|t| backlog[c.stream][t] - st.window(t, inst.target[e]) > EPS);
            let price = unbought_seats * inst.capacity[c.l][seat.1].map_or(0.0, |k| k.price)
                + pool.map_or(0.0, |p| unbought_raters * inst.pool_capacity[p.0].price);
            let travel = st.options.iter().find(|o| o.0 == c.l).map_or(0.0, |o| o.1);
            let waiting_saved = inst.waiting_weight * (inst.weeks - c.t) as f64;
            over_target || price + travel < waiting_saved
        };
        if seat_ok && rater_ok && waiting && pays {
            *int.x.get_mut(&c).expect("cell exists") += 1.0;
            *seats_used.get_mut(&seat).expect("cell has a seat entry") += m;
            if let Some(p) = pool {
                *raters_used.get_mut(&p).expect("cell has a rater entry") += a;
            }
            for b in &mut backlog[c.stream][c.t..] {
                *b -= 1.0;
            }
        }
    }
    // 4. Fill: slack that flooring freed (within what the LP bought) goes to
    // any stream still waiting there, highest priority and longest queue
    // first. Serving a waiting candidate earlier lowers every later backlog
    // by one, so no over-target count can grow.
    let mut order: Vec<usize> = (0..inst.streams.len()).collect();
    for t in 0..inst.weeks {
        order.sort_by(|&a, &b| {
            let (ea, eb) = (inst.streams[a].exam, inst.streams[b].exam);
            inst.priority[eb]
                .total_cmp(&inst.priority[ea])
                .then(backlog[b][t].total_cmp(&backlog[a][t]))
                .then(a.cmp(&b))
        });
        for &si in order.iter().filter(|&&si| !pinned(si, t)) {
            let st = &inst.streams[si];
            let e = st.exam;
            let (m, a) = (inst.seat_minutes[e], inst.rating_minutes[e]);
            if m <= 0.0 && a <= 0.0 {
                continue;
            }
            for &(l, _) in &st.options {
                let k = inst.exam_kind[e];
                let seat = (l, k, t);
                let pool = inst.exam_pool[e].map(|q| (q, t));
                // Where the LP bought nothing, regular capacity only.
                let seat_cap = seat_limit
                    .get(&seat)
                    .copied()
                    .unwrap_or_else(|| inst.seat_capacity(l, k, t).0);
                let rater_cap = pool.map(|p| {
                    rater_limit
                        .get(&p)
                        .copied()
                        .unwrap_or_else(|| inst.rater_capacity(p.0, p.1).0)
                });
                loop {
                    let seat_used = seats_used.get(&seat).copied().unwrap_or(0.0);
                    let seat_ok = m <= 0.0 || seat_used + m <= seat_cap + EPS;
                    let rater_ok = a <= 0.0
                        || pool.zip(rater_cap).is_none_or(|(p, cap)| {
                            raters_used.get(&p).copied().unwrap_or(0.0) + a <= cap + EPS
                        });
                    let waiting = backlog[si][t..].iter().all(|&b| b >= 1.0 - EPS);
                    if !(seat_ok && rater_ok && waiting) {
                        break;
                    }
                    *int.x.entry(Cell { stream: si, t, l }).or_insert(0.0) += 1.0;
                    *seats_used.entry(seat).or_insert(0.0) += m;
                    if let Some(p) = pool {
                        *raters_used.entry(p).or_insert(0.0) += a;
                    }
                    for b in &mut backlog[si][t..] {
                        *b -= 1.0;
                    }
                }
            }
        }
    }
    int.x.retain(|_, v| *v > 0.0);

    // Buy only the extra that is used.
    for (&(l, k, t), &used) in &seats_used {
        let (cap, _) = inst.seat_capacity(l, k, t);
        if used > cap + EPS {
            int.extra_seats.insert((l, k, t), used - cap);
        }
    }
    for (&(q, t), &used) in &raters_used {
        let (cap, _) = inst.rater_capacity(q, t);
        if used > cap + EPS {
            int.extra_raters.insert((q, t), used - cap);
        }
    }
    int
}
