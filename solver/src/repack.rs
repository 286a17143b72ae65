//! Pass 6 of rounding: exchanges of whole candidates, week by week, where
//! the greedy passes left minutes that no single candidate fits in.
//!
//! Why: exams that share seats or raters take different minutes (speaking
//! booths: 40 or 45 minutes a candidate; speaking raters: 15, 18 or 20). In
//! a week where the LP fills every booth and the pool to the minute, the
//! greedy passes leave 10–25 minutes at each location and some in the
//! pool: no one fits anywhere, though another mix would seat several more.
//! Under a surge every candidate lost so waits beyond target for months,
//! so three to six lost a week became thousands of candidate-weeks over
//! target (the national scenario with Spreken B1 ×1.6 in weeks 10–16:
//! integral V 25,016 against V* 23,194.5 before this pass, 23,674.5 after).
//!
//! An exchange, in one week t and at one location l, seats up to [`ADDS`]
//! candidates of streams that would otherwise wait beyond target (each one,
//! like pass 5's, moves up from the stream's latest later seat if the
//! stream's queue runs dry before the horizon), and makes room for them in
//! one of two ways:
//! - it puts up to [`DROPS`] candidates of streams that are not over target
//!   back in the queue (a 45-minute exam out, a 40-minute one in), or
//! - it trades seats with other locations: a candidate with a longer exam
//!   goes from l to another location of theirs and one with a shorter exam
//!   comes back, which moves a few minutes of room to l each time.
//!
//! Extra minutes may be used up to the extra capacity, at their price, as
//! pass 5 does: the model never trades a waiting target for money. The
//! best exchange (most priority-weighted over-target weeks removed, then
//! most cost saved, both estimated) is applied until none removes any;
//! then the week's exchanges are kept only if the exact V and C of the
//! whole allocation ([`rounding::evaluate`]) improve in the model's order.
//! So the pass never makes a plan worse, never exceeds a capacity and never
//! lets a backlog go below zero. Exchanges in a later week free seats an
//! earlier week can use, so the sweep over the horizon repeats while it
//! lowers V, up to [`MAX_SWEEPS`] times. No time limit anywhere: the same
//! input gives the same plan, bit for bit.

use crate::model::Instance;
use crate::rounding::{
    self, advances, stream_cells, windows, Add, Allocation, Cell, EPS, MIN_GAIN,
};
use std::collections::{BTreeMap, BTreeSet};

/// Most candidates one exchange seats (and most adds per stream and week).
const ADDS: usize = 4;
/// Most candidates one exchange puts back in the queue.
const DROPS: usize = 2;

/// Priority-weighted over-target weeks and cost added by putting the j-th
/// (1-based) candidate of week `t` back in the queue through the horizon.
fn drop_loss(
    inst: &Instance,
    si: usize,
    backlog: &[f64],
    window: &[f64],
    t: usize,
    j: f64,
) -> (f64, f64) {
    let over = |b: f64, w: f64| (b - w).max(0.0);
    let weeks: f64 = (t..inst.weeks)
        .map(|u| over(backlog[u] + j, window[u]) - over(backlog[u] + j - 1.0, window[u]))
        .sum();
    let st = &inst.streams[si];
    (
        inst.priority[st.exam] * weeks,
        inst.waiting_weight * (inst.weeks - t) as f64,
    )
}

/// (V, C) of an allocation whose extras are what its x uses.
fn score(inst: &Instance, x: &BTreeMap<Cell, f64>) -> (f64, f64) {
    let mut a = Allocation {
        x: x.clone(),
        ..Allocation::default()
    };
    rounding::buy_used(inst, &mut a);
    let ev = rounding::evaluate(inst, &a);
    (ev.violation, ev.cost)
}

/// The exact change of V and C ([`rounding::evaluate`]'s, with the extra
/// minutes an allocation uses bought) that the changes in `undo` made to
/// `x`: over the streams and seat and rater cells they touch only.
fn change(
    inst: &Instance,
    x: &BTreeMap<Cell, f64>,
    undo: &[(Cell, Option<f64>)],
    windows: &[Vec<f64>],
) -> (f64, f64) {
    // Each touched cell's value before the first change.
    let mut old: BTreeMap<Cell, f64> = BTreeMap::new();
    for &(c, v) in undo {
        old.entry(c).or_insert(v.unwrap_or(0.0));
    }
    let diff = |c: &Cell| x.get(c).copied().unwrap_or(0.0) - old[c];
    let (mut dv, mut dc) = (0.0, 0.0);
    // Over-target and waiting of every touched stream, before and after.
    let streams: BTreeSet<usize> = old.keys().map(|c| c.stream).collect();
    for si in streams {
        let st = &inst.streams[si];
        let mut after = vec![0.0; inst.weeks];
        for (c, &v) in x.range(stream_cells(si)) {
            after[c.t] += v;
        }
        let mut before = after.clone();
        for c in old.keys().filter(|c| c.stream == si) {
            before[c.t] -= diff(c);
        }
        let sums = |served: &[f64]| {
            let b = st.backlogs(served);
            let over: f64 = b
                .iter()
                .zip(&windows[si])
                .map(|(b, w)| (b - w).max(0.0))
                .sum();
            (over, b.iter().sum::<f64>())
        };
        let ((o1, b1), (o0, b0)) = (sums(&after), sums(&before));
        dv += inst.priority[st.exam] * (o1 - o0);
        dc += inst.waiting_weight * (b1 - b0);
    }
    // Travel, and the extra minutes of every touched seat and rater cell.
    let mut seats: BTreeMap<(usize, usize, usize), f64> = BTreeMap::new();
    let mut raters: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    for c in old.keys() {
        let st = &inst.streams[c.stream];
        let e = st.exam;
        let d = diff(c);
        dc += st.travel(c.l) * d;
        *seats.entry((c.l, inst.exam_kind[e], c.t)).or_insert(0.0) += d * inst.seat_minutes[e];
        if let Some(q) = inst.exam_pool[e] {
            *raters.entry((q, c.t)).or_insert(0.0) += d * inst.rating_minutes[e];
        }
    }
    let used = |keep: &dyn Fn(usize) -> bool,
                t: usize,
                minutes: &dyn Fn(usize) -> f64,
                l: Option<usize>| {
        (0..inst.streams.len())
            .filter(|&si| keep(inst.streams[si].exam))
            .map(|si| {
                let cells = match l {
                    Some(l) => x.get(&Cell { stream: si, t, l }).copied().unwrap_or(0.0),
                    None => x.range(week_cells(si, t)).map(|(_, &v)| v).sum(),
                };
                cells * minutes(inst.streams[si].exam)
            })
            .sum::<f64>()
    };
    for ((l, k, t), d) in seats {
        let now = used(
            &|e| inst.exam_kind[e] == k,
            t,
            &|e| inst.seat_minutes[e],
            Some(l),
        );
        let (cap, _) = inst.seat_capacity(l, k, t);
        let price = inst.cap(l, k).map_or(0.0, |c| c.price);
        dc += price * ((now - cap).max(0.0) - (now - d - cap).max(0.0));
    }
    for ((q, t), d) in raters {
        let now = used(
            &|e| inst.exam_pool[e] == Some(q),
            t,
            &|e| inst.rating_minutes[e],
            None,
        );
        let (cap, _) = inst.rater_capacity(q, t);
        let price = inst.pool_capacity[q].price;
        dc += price * ((now - cap).max(0.0) - (now - d - cap).max(0.0));
    }
    (dv, dc)
}

/// True if (v, c) is better than (v0, c0) in the model's order.
fn better((v, c): (f64, f64), (v0, c0): (f64, f64)) -> bool {
    let tol = |a: f64| 1e-9 * a.abs().max(1.0);
    v < v0 - tol(v0) || (v <= v0 + tol(v0) && c < c0 - tol(c0))
}

/// Pass 6 (see the module docs): sweeps over every week and block of `x`,
/// in order, while a sweep lowers V (at most [`MAX_SWEEPS`]).
pub(crate) fn repack(
    inst: &Instance,
    x: &mut BTreeMap<Cell, f64>,
    pinned: &dyn Fn(usize, usize) -> bool,
) {
    let roots = inst.exam_blocks();
    let mut blocks: Vec<usize> = roots.clone();
    blocks.sort_unstable();
    blocks.dedup();
    let windows = windows(inst);
    let mut current = score(inst, x);
    for _ in 0..MAX_SWEEPS {
        let start = current;
        for t in 0..inst.weeks {
            for &block in &blocks {
                let free: Vec<usize> = (0..inst.streams.len())
                    .filter(|&si| roots[inst.streams[si].exam] == block && !pinned(si, t))
                    .collect();
                let states = free
                    .iter()
                    .map(|&si| (si, StreamState::new(inst, x, &windows[si], pinned, si, t)))
                    .collect();
                let mut week = Week {
                    free,
                    states,
                    windows: &windows,
                    pinned,
                };
                let mut undo: Vec<(Cell, Option<f64>)> = Vec::new();
                for _ in 0..MAX_MOVES {
                    let Some(mv) = best_exchange(inst, x, &week, &roots, block, t) else {
                        break;
                    };
                    let from = undo.len();
                    apply(x, &mv, &mut undo);
                    let touched: BTreeSet<usize> =
                        undo[from..].iter().map(|(c, _)| c.stream).collect();
                    for si in touched {
                        week.states
                            .insert(si, StreamState::new(inst, x, &windows[si], pinned, si, t));
                    }
                }
                if undo.is_empty() {
                    continue;
                }
                // The estimates chose the moves; the exact V and C decide.
                let (dv, dc) = change(inst, x, &undo, &windows);
                let after = (current.0 + dv, current.1 + dc);
                if better(after, current) {
                    current = after;
                } else {
                    revert(x, &undo);
                }
            }
        }
        // A later week's exchange frees seats an earlier week can use, so
        // another sweep may find more; one that lowers V no more ends it.
        if current.0 >= start.0 - 1e-9 * start.0.abs().max(1.0) {
            break;
        }
    }
}

/// Most sweeps over the horizon (each after the first only runs if the
/// one before lowered V).
const MAX_SWEEPS: usize = 4;

/// Most exchanges per week and block (each removes over-target weeks, so
/// this only bounds the work).
const MAX_MOVES: usize = 64;

/// What one stream looks like in the week being searched: its backlog
/// and the adds it could take (recomputed after every exchange that
/// touches it, not for every search).
struct StreamState {
    backlog: Vec<f64>,
    adds: Vec<Add>,
}

impl StreamState {
    fn new(
        inst: &Instance,
        x: &BTreeMap<Cell, f64>,
        window: &[f64],
        pinned: &dyn Fn(usize, usize) -> bool,
        si: usize,
        t: usize,
    ) -> StreamState {
        let mut served = vec![0.0; inst.weeks];
        for (c, &v) in x.range(stream_cells(si)) {
            served[c.t] += v;
        }
        let backlog = inst.streams[si].backlogs(&served);
        let adds = advances(inst, x, &backlog, window, pinned, si, t, ADDS);
        StreamState { backlog, adds }
    }
}

/// The cells of stream `si` in week `t`.
fn week_cells(si: usize, t: usize) -> std::ops::Range<Cell> {
    Cell {
        stream: si,
        t,
        l: 0,
    }..Cell {
        stream: si,
        t: t + 1,
        l: 0,
    }
}

/// The search's view of one week and block: the streams free to move
/// (not pinned in the week) and their states.
struct Week<'a> {
    free: Vec<usize>,
    states: BTreeMap<usize, StreamState>,
    windows: &'a [Vec<f64>],
    pinned: &'a dyn Fn(usize, usize) -> bool,
}

/// One exchange at a location in week t: candidates seated and put back.
#[derive(Debug, Clone, Default)]
struct Exchange {
    /// Over-target weeks removed (priority-weighted), net of those added.
    gain_v: f64,
    /// Cost saved, net.
    gain_c: f64,
    /// (stream, how many of its next adds), all at `at`.
    adds: Vec<(usize, usize, Vec<Add>)>,
    /// (stream, how many) put back from `at`.
    drops: Vec<(usize, usize)>,
    /// Seats traded to make room at `at`: (a, b, l2) moves one candidate
    /// of stream a from `at` to l2 and one of stream b from l2 to `at`.
    swaps: Vec<(usize, usize, usize)>,
    at: (usize, usize),
}

fn set(x: &mut BTreeMap<Cell, f64>, c: Cell, delta: f64, undo: &mut Vec<(Cell, Option<f64>)>) {
    let old = x.get(&c).copied();
    undo.push((c, old));
    let v = old.unwrap_or(0.0) + delta;
    if v > EPS {
        x.insert(c, v);
    } else {
        x.remove(&c);
    }
}

fn apply(x: &mut BTreeMap<Cell, f64>, mv: &Exchange, undo: &mut Vec<(Cell, Option<f64>)>) {
    let (t, l) = mv.at;
    for (si, n, adds) in &mv.adds {
        for ad in adds.iter().take(*n) {
            set(x, Cell { stream: *si, t, l }, 1.0, undo);
            if let Some(f) = ad.from {
                set(x, f, -1.0, undo);
            }
        }
    }
    for &(si, n) in &mv.drops {
        set(x, Cell { stream: si, t, l }, -(n as f64), undo);
    }
    for &(a, b, l2) in &mv.swaps {
        set(x, Cell { stream: a, t, l }, -1.0, undo);
        set(
            x,
            Cell {
                stream: a,
                t,
                l: l2,
            },
            1.0,
            undo,
        );
        set(
            x,
            Cell {
                stream: b,
                t,
                l: l2,
            },
            -1.0,
            undo,
        );
        set(x, Cell { stream: b, t, l }, 1.0, undo);
    }
}

/// Room made at location `l` in week `t` for seat kind `k` by trading
/// seats with other locations: a candidate with a longer exam moves from
/// `l` to another location of theirs, and one with a shorter exam comes
/// back from there (both of the block's free streams, the rater minutes
/// unchanged). Largest room first, then cheapest. Returns the trades in
/// order with, after each, the minutes freed so far and the cost so far
/// (travel, and extra minutes at the other location).
fn trades(
    inst: &Instance,
    seated: &Seated,
    seat_used: &BTreeMap<(usize, usize), f64>,
    (l, k, t): (usize, usize, usize),
) -> Vec<Trade> {
    let at = |l: usize| seated.get(&l).map_or(&[][..], Vec::as_slice);
    let count = |si: usize, l: usize| at(l).iter().find(|s| s.0 == si).map_or(0.0, |s| s.1);
    let of_kind = |si: usize| inst.exam_kind[inst.streams[si].exam] == k;
    let mut pairs: Vec<(f64, f64, usize, usize, usize)> = Vec::new();
    for &(a, _) in at(l).iter().filter(|&&(a, n)| n >= 1.0 - EPS && of_kind(a)) {
        let sa = &inst.streams[a];
        let ma = inst.seat_minutes[sa.exam];
        for &(l2, _) in sa.options.iter().filter(|o| o.0 != l) {
            for &(b, _) in at(l2)
                .iter()
                .filter(|&&(b, n)| n >= 1.0 - EPS && of_kind(b))
            {
                let sb = &inst.streams[b];
                let mb = inst.seat_minutes[sb.exam];
                if ma <= mb + EPS || !sb.options.iter().any(|o| o.0 == l) {
                    continue;
                }
                let travel = sa.travel(l2) - sa.travel(l) + sb.travel(l) - sb.travel(l2);
                pairs.push((ma - mb, travel, a, b, l2));
            }
        }
    }
    pairs.sort_by(|p, q| {
        q.0.total_cmp(&p.0)
            .then(p.1.total_cmp(&q.1))
            .then((p.2, p.3, p.4).cmp(&(q.2, q.3, q.4)))
    });
    let mut left: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    let mut used: BTreeMap<usize, f64> = BTreeMap::new();
    let (mut freed, mut cost) = (0.0, 0.0);
    let mut out = Vec::new();
    for (delta, travel, a, b, l2) in pairs {
        if out.len() >= MAX_TRADES {
            break;
        }
        let la = *left.entry((a, l)).or_insert_with(|| count(a, l));
        let lb = *left.entry((b, l2)).or_insert_with(|| count(b, l2));
        let (cap, xcap) = inst.seat_capacity(l2, k, t);
        let u = *used
            .entry(l2)
            .or_insert_with(|| seat_used.get(&(l2, k)).copied().unwrap_or(0.0));
        if la < 1.0 - EPS || lb < 1.0 - EPS || u + delta > cap + xcap + EPS {
            continue;
        }
        left.insert((a, l), la - 1.0);
        left.insert((b, l2), lb - 1.0);
        used.insert(l2, u + delta);
        let price = inst.cap(l2, k).map_or(0.0, |c| c.price);
        freed += delta;
        cost += travel + price * ((u + delta - cap).max(0.0) - (u - cap).max(0.0));
        out.push(((a, b, l2), freed, cost));
    }
    out
}

/// Most trades one exchange may use to make room.
const MAX_TRADES: usize = 16;

/// A trade (a, b, l2) of [`trades`], with the minutes freed and the cost
/// of the trades up to and including it.
type Trade = ((usize, usize, usize), f64, f64);

/// The free streams seated per location in one week: (stream, candidates).
type Seated = BTreeMap<usize, Vec<(usize, f64)>>;

fn revert(x: &mut BTreeMap<Cell, f64>, undo: &[(Cell, Option<f64>)]) {
    for (c, old) in undo.iter().rev() {
        match old {
            Some(v) => x.insert(*c, *v),
            None => x.remove(c),
        };
    }
}

/// One seat a candidate could take or give back at a location, with what
/// it is worth: the unit the exchange search counts in.
#[derive(Debug, Clone, Copy)]
struct Item {
    stream: usize,
    gain_v: f64,
    gain_c: f64,
}

/// The best exchange of block `block` in week `t` that removes over-target
/// weeks: at one location, up to [`ADDS`] candidates seated (each from a
/// stream that gains) and up to [`DROPS`] put back (from streams that do
/// not), within the seat minutes there and the pool's rater minutes, up to
/// the extra capacity at its price. Best = most over-target weeks removed,
/// then most cost saved.
fn best_exchange(
    inst: &Instance,
    x: &BTreeMap<Cell, f64>,
    week: &Week,
    roots: &[usize],
    block: usize,
    t: usize,
) -> Option<Exchange> {
    let Week {
        free,
        states,
        windows,
        pinned,
    } = week;
    let add_lists: BTreeMap<usize, &Vec<Add>> = states
        .iter()
        .filter(|(_, s)| !s.adds.is_empty())
        .map(|(&si, s)| (si, &s.adds))
        .collect();
    if add_lists.is_empty() {
        return None;
    }

    // Seat and rater minutes the block uses in week t, and who sits where.
    let mut seat_used: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    let mut rater_used: BTreeMap<usize, f64> = BTreeMap::new();
    let mut seated: Seated = BTreeMap::new();
    for si in (0..inst.streams.len()).filter(|&si| roots[inst.streams[si].exam] == block) {
        let e = inst.streams[si].exam;
        let is_free = !(**pinned)(si, t);
        for (c, &v) in x.range(week_cells(si, t)) {
            *seat_used.entry((c.l, inst.exam_kind[e])).or_insert(0.0) += v * inst.seat_minutes[e];
            if let Some(q) = inst.exam_pool[e] {
                *rater_used.entry(q).or_insert(0.0) += v * inst.rating_minutes[e];
            }
            if is_free {
                seated.entry(c.l).or_default().push((si, v));
            }
        }
    }

    let exams: Vec<usize> = {
        let mut v: Vec<usize> = free.iter().map(|&si| inst.streams[si].exam).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let locations: Vec<usize> = {
        let mut v: Vec<usize> = add_lists
            .keys()
            .flat_map(|&si| inst.streams[si].options.iter().map(|o| o.0))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let mut best: Option<Exchange> = None;
    for &l in &locations {
        // Per exam: the best seats to give (sorted by worth) and to take back.
        let mut give: Vec<Vec<Item>> = vec![Vec::new(); exams.len()];
        let mut take: Vec<Vec<Item>> = vec![Vec::new(); exams.len()];
        for (ei, &e) in exams.iter().enumerate() {
            let k = inst.exam_kind[e];
            let (cap, xcap) = inst.seat_capacity(l, k, t);
            if inst.seat_minutes[e] > 0.0 && cap + xcap <= EPS {
                continue;
            }
            for (&si, list) in &add_lists {
                let st = &inst.streams[si];
                if st.exam != e || !st.options.iter().any(|o| o.0 == l) {
                    continue;
                }
                for ad in list.iter() {
                    give[ei].push(Item {
                        stream: si,
                        gain_v: ad.gain_v,
                        gain_c: ad.gain_c - st.travel(l),
                    });
                }
            }
            let here = seated.get(&l).map_or(&[][..], Vec::as_slice);
            for &(si, now) in here.iter().filter(|(si, _)| !add_lists.contains_key(si)) {
                let st = &inst.streams[si];
                if st.exam != e {
                    continue;
                }
                for j in 1..=DROPS.min((now + EPS).floor() as usize) {
                    let (lv, lc) =
                        drop_loss(inst, si, &states[&si].backlog, &windows[si], t, j as f64);
                    take[ei].push(Item {
                        stream: si,
                        gain_v: -lv,
                        gain_c: st.travel(l) - lc,
                    });
                }
            }
            let key = |i: &Item| (i.gain_v, i.gain_c);
            let desc = |a: &Item, b: &Item| {
                key(b)
                    .0
                    .total_cmp(&key(a).0)
                    .then(key(b).1.total_cmp(&key(a).1))
                    .then(a.stream.cmp(&b.stream))
            };
            for (items, keep) in [(&mut give[ei], ADDS), (&mut take[ei], DROPS)] {
                if items.len() > keep {
                    items.select_nth_unstable_by(keep, desc);
                    items.truncate(keep);
                }
                items.sort_by(desc);
            }
        }
        // Every split of at most ADDS seats given and DROPS taken back over the exams.
        let splits = |limit: usize, sizes: &[usize]| -> Vec<Vec<usize>> {
            let mut out = vec![vec![]];
            for &size in sizes {
                let mut next = Vec::new();
                for v in &out {
                    let used: usize = v.iter().sum();
                    for n in 0..=size.min(limit - used) {
                        let mut w = v.clone();
                        w.push(n);
                        next.push(w);
                    }
                }
                out = next;
            }
            out
        };
        let mut room: BTreeMap<usize, Vec<Trade>> = BTreeMap::new();
        let gives = splits(ADDS, &give.iter().map(Vec::len).collect::<Vec<_>>());
        let takes = splits(DROPS, &take.iter().map(Vec::len).collect::<Vec<_>>());
        for g in &gives {
            if g.iter().all(|&n| n == 0) {
                continue;
            }
            for d in &takes {
                let mut gain_v = 0.0;
                let mut gain_c = 0.0;
                let mut seats: BTreeMap<usize, f64> = BTreeMap::new();
                let mut raters: BTreeMap<usize, f64> = BTreeMap::new();
                for (ei, &e) in exams.iter().enumerate() {
                    let net = g[ei] as f64 - d[ei] as f64;
                    for i in give[ei]
                        .iter()
                        .take(g[ei])
                        .chain(take[ei].iter().take(d[ei]))
                    {
                        gain_v += i.gain_v;
                        gain_c += i.gain_c;
                    }
                    *seats.entry(inst.exam_kind[e]).or_insert(0.0) += net * inst.seat_minutes[e];
                    if let Some(q) = inst.exam_pool[e] {
                        *raters.entry(q).or_insert(0.0) += net * inst.rating_minutes[e];
                    }
                }
                if gain_v <= MIN_GAIN {
                    continue;
                }
                let mut fits = true;
                let mut swaps = Vec::new();
                for (&k, &delta) in &seats {
                    let (cap, xcap) = inst.seat_capacity(l, k, t);
                    let mut used = seat_used.get(&(l, k)).copied().unwrap_or(0.0);
                    let short = used + delta - (cap + xcap);
                    if short > EPS && d.iter().all(|&n| n == 0) {
                        // Make room by trading seats with other locations.
                        let list = room
                            .entry(k)
                            .or_insert_with(|| trades(inst, &seated, &seat_used, (l, k, t)));
                        match list.iter().position(|&(_, freed, _)| freed >= short - EPS) {
                            Some(i) => {
                                used -= list[i].1;
                                gain_c -= list[i].2;
                                swaps = list[..=i].iter().map(|&(s, _, _)| s).collect();
                            }
                            None => fits = false,
                        }
                    }
                    fits &= used + delta <= cap + xcap + EPS;
                    let price = inst.cap(l, k).map_or(0.0, |c| c.price);
                    let before = seat_used.get(&(l, k)).copied().unwrap_or(0.0);
                    gain_c -= price * ((used + delta - cap).max(0.0) - (before - cap).max(0.0));
                }
                for (&q, &delta) in &raters {
                    let (cap, xcap) = inst.rater_capacity(q, t);
                    let used = rater_used.get(&q).copied().unwrap_or(0.0);
                    fits &= used + delta <= cap + xcap + EPS;
                    let price = inst.pool_capacity[q].price;
                    gain_c -= price * ((used + delta - cap).max(0.0) - (used - cap).max(0.0));
                }
                if !fits {
                    continue;
                }
                let wins = best.as_ref().is_none_or(|b| {
                    gain_v > b.gain_v + MIN_GAIN
                        || (gain_v > b.gain_v - MIN_GAIN && gain_c > b.gain_c + EPS)
                });
                if wins {
                    let mut adds: BTreeMap<usize, usize> = BTreeMap::new();
                    let mut drops: BTreeMap<usize, usize> = BTreeMap::new();
                    for ei in 0..exams.len() {
                        for i in give[ei].iter().take(g[ei]) {
                            *adds.entry(i.stream).or_insert(0) += 1;
                        }
                        for i in take[ei].iter().take(d[ei]) {
                            *drops.entry(i.stream).or_insert(0) += 1;
                        }
                    }
                    best = Some(Exchange {
                        gain_v,
                        gain_c,
                        adds: adds
                            .into_iter()
                            .map(|(si, n)| (si, n, add_lists[&si].clone()))
                            .collect(),
                        drops: drops.into_iter().collect(),
                        swaps,
                        at: (t, l),
                    });
                }
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::parse_scenario;
    use serde_json::json;

    /// Two weeks; week 1 closed everywhere, so whoever is not seated in
    /// week 0 waits beyond target (W = 1 for A) in week 1. Exam A takes 40
    /// booth minutes, exam B 45 (target `target_b`); no raters, no extra
    /// minutes, no travel.
    fn two_exams(
        target_b: i64,
        locations: serde_json::Value,
        regions: serde_json::Value,
        demand: serde_json::Value,
    ) -> Instance {
        let sc = json!({
            "format": "examcap/scenario@1", "name": "exchange", "start_week": "2027-W01",
            "horizon_weeks": 2,
            "exams": [
                {"id": "A", "name": "A", "resource": "booth", "seat_minutes": 40, "target_wait_weeks": 1},
                {"id": "B", "name": "B", "resource": "booth", "seat_minutes": 45, "target_wait_weeks": target_b}
            ],
            "locations": locations,
            "regions": regions,
            "demand": demand,
            "weights": {"waiting_per_candidate_week": 1.0}
        });
        let sc =
            parse_scenario(&serde_json::to_vec(&sc).unwrap()).unwrap_or_else(|e| panic!("{e}"));
        Instance::new(&sc, false)
    }

    fn location(id: &str, minutes: f64) -> serde_json::Value {
        json!({"id": id, "name": id,
               "resources": [{"kind": "booth", "weekly_minutes": minutes,
                              "extra_weekly_minutes": 0, "extra_cost_per_minute": 1}],
               "unavailable": [{"from_week": 1, "to_week": 1, "factor": 0}]})
    }

    /// The allocation `seats` = (region, exam, location, n) in week 0.
    fn allocation(inst: &Instance, seats: &[(usize, usize, usize, f64)]) -> BTreeMap<Cell, f64> {
        seats
            .iter()
            .map(|&(r, e, l, n)| {
                let stream = inst
                    .streams
                    .iter()
                    .position(|s| s.region == r && s.exam == e)
                    .expect("stream exists");
                (Cell { stream, t: 0, l }, n)
            })
            .collect()
    }

    fn seats_used(inst: &Instance, x: &BTreeMap<Cell, f64>, l: usize) -> f64 {
        x.iter()
            .filter(|(c, _)| c.l == l && c.t == 0)
            .map(|(c, &n)| n * inst.seat_minutes[inst.streams[c.stream].exam])
            .sum()
    }

    /// One location of 120 minutes. Region R0 registers 3 for A and 1 for
    /// B (B's target is 10 weeks here). Seated: one A and one B, 85
    /// minutes; 35 left, so no one more fits and 2 A wait beyond target in
    /// week 1: V = 2.
    fn one_location_b_can_wait() -> (Instance, BTreeMap<Cell, f64>) {
        let inst = two_exams(
            10,
            json!([location("L", 120.0)]),
            json!([{"id": "R0", "name": "R0", "options": [{"location": "L", "travel_cost": 0}]}]),
            json!([{"region": "R0", "exam": "A", "weekly": [3, 0]},
                   {"region": "R0", "exam": "B", "weekly": [1, 0]}]),
        );
        let x = allocation(&inst, &[(0, 0, 0, 1.0), (0, 1, 0, 1.0)]);
        (inst, x)
    }

    /// Putting B back (45 minutes) seats both waiting A (80): all of A in
    /// time, and B, now waiting, is within its 10 weeks: V 2 → 0, with
    /// waiting 2·1 (B in weeks 0 and 1) against 2·2 before: C 4 → 2.
    #[test]
    fn putting_back_a_longer_exam_seats_two_over_target() {
        let (inst, mut x) = one_location_b_can_wait();
        assert_eq!(score(&inst, &x), (2.0, 4.0));
        repack(&inst, &mut x, &|_, _| false);
        assert_eq!(score(&inst, &x), (0.0, 2.0));
        assert_eq!(x, allocation(&inst, &[(0, 0, 0, 3.0)]));
        assert!(seats_used(&inst, &x, 0) <= 120.0);
    }

    /// As [`one_location_b_can_wait`], but B's target is 1 week and A's
    /// demand 2: putting B back would leave B over target in week 1 (V +1)
    /// to seat the one waiting A (V −1). No gain in V, so nothing moves.
    #[test]
    fn no_exchange_that_only_moves_the_violation() {
        let inst = two_exams(
            1,
            json!([location("L", 120.0)]),
            json!([{"id": "R0", "name": "R0", "options": [{"location": "L", "travel_cost": 0}]}]),
            json!([{"region": "R0", "exam": "A", "weekly": [2, 0]},
                   {"region": "R0", "exam": "B", "weekly": [1, 0]}]),
        );
        let mut x = allocation(&inst, &[(0, 0, 0, 1.0), (0, 1, 0, 1.0)]);
        let before = x.clone();
        assert_eq!(score(&inst, &x).0, 1.0);
        repack(&inst, &mut x, &|_, _| false);
        assert_eq!(x, before);
    }

    /// Two locations, L0 with 120 minutes and L1 with 100; both regions may
    /// use either. R0 (exam B, 2 registered, both seated: one at each) and
    /// R1 (exam A, 3 registered, one at each, one waiting beyond target in
    /// week 1): L0 and L1 both use 85 minutes; 35 and 15 are left, so no
    /// A fits. Putting a B back frees 45 but costs B its target (V +1 for
    /// V −1): not taken. Trading R0's B at L0 for R1's A at L1 gives L0
    /// 80 minutes and L1 90; L0 then seats the third A: 120 and 90 minutes,
    /// V 1 → 0.
    #[test]
    fn trading_seats_between_locations_makes_room() {
        let options =
            json!([{"location": "L0", "travel_cost": 0}, {"location": "L1", "travel_cost": 0}]);
        let inst = two_exams(
            1,
            json!([location("L0", 120.0), location("L1", 100.0)]),
            json!([{"id": "R0", "name": "R0", "options": options},
                   {"id": "R1", "name": "R1", "options": options}]),
            json!([{"region": "R0", "exam": "B", "weekly": [2, 0]},
                   {"region": "R1", "exam": "A", "weekly": [3, 0]}]),
        );
        let mut x = allocation(
            &inst,
            &[
                (0, 1, 0, 1.0),
                (0, 1, 1, 1.0),
                (1, 0, 0, 1.0),
                (1, 0, 1, 1.0),
            ],
        );
        assert_eq!(score(&inst, &x).0, 1.0);
        repack(&inst, &mut x, &|_, _| false);
        assert_eq!(score(&inst, &x).0, 0.0);
        assert_eq!(x, allocation(&inst, &[(0, 1, 1, 2.0), (1, 0, 0, 3.0)]));
        assert!(seats_used(&inst, &x, 0) <= 120.0);
        assert!(seats_used(&inst, &x, 1) <= 100.0);
    }

    /// A pinned week (a re-plan's frozen weeks) is never touched, even where
    /// an exchange would lower V (the case above).
    #[test]
    fn pinned_weeks_stay_as_they_are() {
        let (inst, mut x) = one_location_b_can_wait();
        let before = x.clone();
        repack(&inst, &mut x, &|_, t| t == 0);
        assert_eq!(x, before);
    }

    /// [`change`] over the cells an exchange touches equals the difference
    /// of the whole allocation's V and C, extra minutes and travel
    /// included: one location of 80 regular minutes and 90 extra at 0.5 a
    /// minute, travel 2 from R0 and 3 from R1; whole allocations changed
    /// by seating, putting back and moving candidates.
    #[test]
    fn change_equals_the_whole_evaluation() {
        let mut loc = location("L", 80.0);
        loc["resources"][0]["extra_weekly_minutes"] = json!(90);
        loc["resources"][0]["extra_cost_per_minute"] = json!(0.5);
        loc["unavailable"] = json!([]);
        let mut other = location("M", 100.0);
        other["unavailable"] = json!([]);
        let inst = two_exams(
            1,
            json!([loc, other]),
            json!([{"id": "R0", "name": "R0", "options": [{"location": "L", "travel_cost": 2}]},
                   {"id": "R1", "name": "R1", "options": [{"location": "L", "travel_cost": 3},
                                                          {"location": "M", "travel_cost": 1}]}]),
            json!([{"region": "R0", "exam": "A", "weekly": [3, 2]},
                   {"region": "R1", "exam": "B", "weekly": [2, 1]}]),
        );
        let x0 = allocation(&inst, &[(0, 0, 0, 1.0), (1, 1, 0, 1.0)]);
        let cell = |r: usize, e: usize, l: usize, t: usize| {
            let stream = inst
                .streams
                .iter()
                .position(|s| s.region == r && s.exam == e)
                .expect("stream exists");
            Cell { stream, t, l }
        };
        let steps: [&[(Cell, f64)]; 4] = [
            &[(cell(0, 0, 0, 0), 2.0)],
            &[(cell(1, 1, 0, 0), -1.0), (cell(1, 1, 1, 0), 1.0)],
            &[(cell(0, 0, 0, 1), 3.0), (cell(1, 1, 0, 1), 2.0)],
            &[(cell(0, 0, 0, 0), -3.0), (cell(0, 0, 0, 1), 1.0)],
        ];
        let mut x = x0.clone();
        let mut undo = Vec::new();
        for step in steps {
            for &(c, d) in step {
                set(&mut x, c, d, &mut undo);
            }
            let (v0, c0) = score(&inst, &x0);
            let (v1, c1) = score(&inst, &x);
            let (dv, dc) = change(&inst, &x, &undo, &windows(&inst));
            assert!((dv - (v1 - v0)).abs() < 1e-9, "{dv} vs {}", v1 - v0);
            assert!((dc - (c1 - c0)).abs() < 1e-9, "{dc} vs {}", c1 - c0);
        }
        // Something changed in every one: the check is not of zeros.
        assert_ne!(score(&inst, &x), score(&inst, &x0));
    }
}
