//! Helpers shared by the solver's integration tests.
#![allow(dead_code)] // each test crate uses its own subset

use examcap_solver::scenario::availability;
use examcap_solver::{Plan, Scenario};
use std::collections::BTreeMap;

/// Equal within 1e-6 relative, with an absolute floor of 1e-6 (DESIGN.md).
pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
}

/// Asserts that (V*, C) `got` equals `want` by [`close`]; `what` says whose
/// values they are in the failure message.
pub fn assert_values_close(what: &str, got: (f64, f64), want: (f64, f64)) {
    assert!(close(got.0, want.0), "{what}: V* {} want {}", got.0, want.0);
    assert!(close(got.1, want.1), "{what}: C {} want {}", got.1, want.1);
}

/// Every way the integral plan breaks capacity: seat and rater use above
/// regular·factor + what the plan buys, or purchases above extra·factor
/// (1e-6 tolerance). Empty when the plan is within capacity.
pub fn capacity_violations(sc: &Scenario, plan: &Plan) -> Vec<String> {
    let exam = |id: &str| sc.exams.iter().find(|e| e.id == id).expect("exam");
    let mut seats: BTreeMap<(String, String, usize), f64> = BTreeMap::new();
    let mut raters: BTreeMap<(String, usize), f64> = BTreeMap::new();
    for a in &plan.allocation {
        let e = exam(&a.exam);
        let n = a.candidates as f64;
        *seats
            .entry((a.location.clone(), e.resource.clone(), a.week))
            .or_default() += n * e.seat_minutes;
        if let (Some(q), Some(m)) = (&e.rating_pool, e.rating_minutes) {
            *raters.entry((q.clone(), a.week)).or_default() += n * m;
        }
    }
    let mut out = Vec::new();
    for ((l, k, t), used) in &seats {
        let loc = sc.locations.iter().find(|x| &x.id == l).expect("location");
        let res = loc.resources.iter().find(|r| &r.kind == k).expect("kind");
        let f = availability(&loc.unavailable, *t);
        let bought = plan
            .extra_seats
            .iter()
            .find(|x| &x.location == l && &x.kind == k && x.week == *t)
            .map_or(0.0, |x| x.minutes);
        if bought > res.extra_weekly_minutes * f + 1e-6 {
            out.push(format!("bought {bought} at {l}/{k}/{t}"));
        }
        if *used > res.weekly_minutes * f + bought + 1e-6 {
            out.push(format!("{l}/{k}/{t}: {used}"));
        }
    }
    for ((q, t), used) in &raters {
        let pool = sc.rating_pools.iter().find(|p| &p.id == q).expect("pool");
        let f = availability(&pool.unavailable, *t);
        let bought = plan
            .extra_raters
            .iter()
            .find(|x| &x.pool == q && x.week == *t)
            .map_or(0.0, |x| x.minutes);
        if bought > pool.extra_weekly_minutes * f + 1e-6 {
            out.push(format!("bought {bought} raters at {q}/{t}"));
        }
        if *used > pool.weekly_minutes * f + bought + 1e-6 {
            out.push(format!("{q}/{t}: {used}"));
        }
    }
    out
}
