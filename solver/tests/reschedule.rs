//! Re-plans after a surge: a published plan of a small two-block scenario,
//! then exam A's demand ×1.6 in weeks 2–4.

use examcap_solver::plan::AllocationRow;
use examcap_solver::reschedule::{diff, replan, touched_exams};
use examcap_solver::{parse_scenario, plan_scenario, Plan, PlanOptions, Scenario};
mod common;

use common::{capacity_violations, close};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

/// Exams A (kind car, rated by pool P) and B (kind moto): two blocks.
/// Three locations, two regions, six weeks.
fn base() -> Scenario {
    let res = |car: f64, moto: f64| {
        json!([
            {"kind": "car", "weekly_minutes": car, "extra_weekly_minutes": 60,
             "extra_cost_per_minute": 1.0},
            {"kind": "moto", "weekly_minutes": moto, "extra_weekly_minutes": 120,
             "extra_cost_per_minute": 0.5}
        ])
    };
    let v = json!({
        "format": "examcap/scenario@1", "name": "surge", "start_week": "2026-W10",
        "horizon_weeks": 6,
        "exams": [
            {"id": "A", "name": "A", "resource": "car", "seat_minutes": 60,
             "rating_pool": "P", "rating_minutes": 10, "target_wait_weeks": 1, "priority": 3},
            {"id": "B", "name": "B", "resource": "moto", "seat_minutes": 45,
             "target_wait_weeks": 2, "priority": 1}
        ],
        "locations": [
            {"id": "L0", "name": "L0", "resources": res(600.0, 360.0), "unavailable": []},
            {"id": "L1", "name": "L1", "resources": res(480.0, 270.0),
             "unavailable": [{"from_week": 3, "to_week": 3, "factor": 0.5}]},
            {"id": "L2", "name": "L2", "resources": res(540.0, 315.0), "unavailable": []}
        ],
        "rating_pools": [{"id": "P", "weekly_minutes": 400, "extra_weekly_minutes": 200,
                          "extra_cost_per_minute": 2.0, "unavailable": []}],
        "regions": [
            {"id": "R0", "name": "R0", "options": [
                {"location": "L0", "travel_cost": 0.5}, {"location": "L1", "travel_cost": 1.5}]},
            {"id": "R1", "name": "R1", "options": [
                {"location": "L1", "travel_cost": 0.25}, {"location": "L2", "travel_cost": 1.0}]}
        ],
        "demand": [
            {"region": "R0", "exam": "A", "weekly": [14, 12, 15, 13, 14, 12]},
            {"region": "R1", "exam": "A", "weekly": [10, 11, 9, 12, 10, 11]},
            {"region": "R0", "exam": "B", "weekly": [6, 7, 5, 8, 6, 7]},
            {"region": "R1", "exam": "B", "weekly": [5, 6, 7, 5, 6, 4]}
        ],
        "backlog": [{"region": "R0", "exam": "A", "registered_week": -2, "candidates": 9}],
        "weights": {"waiting_per_candidate_week": 1.0}
    });
    parse_scenario(&serde_json::to_vec(&v).expect("json")).expect("valid scenario")
}

/// Exam A's demand ×1.6 in weeks 2–4, both regions.
fn surge(sc: &Scenario) -> Scenario {
    let mut s = sc.clone();
    for d in s.demand.iter_mut().filter(|d| d.exam == "A") {
        for w in &mut d.weekly[2..=4] {
            *w *= 1.6;
        }
    }
    s
}

fn opts() -> PlanOptions {
    PlanOptions {
        parallel: 1,
        ..PlanOptions::default()
    }
}

fn published(sc: &Scenario) -> Plan {
    plan_scenario(sc, &opts(), &|_| {}).expect("base plan")
}

type Key = (String, String, String, usize);

fn rows(plan: &Plan, keep: impl Fn(&AllocationRow) -> bool) -> BTreeMap<Key, u64> {
    plan.allocation
        .iter()
        .filter(|a| keep(a))
        .map(|a| {
            (
                (a.region.clone(), a.exam.clone(), a.location.clone(), a.week),
                a.candidates,
            )
        })
        .collect()
}

/// Σ |x − x_published| over every cell of either allocation.
fn moved(plan: &Plan, pubd: &Plan) -> u64 {
    let (a, b) = (rows(plan, |_| true), rows(pubd, |_| true));
    let keys: BTreeSet<&Key> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .map(|k| {
            let (x, y) = (
                a.get(k).copied().unwrap_or(0),
                b.get(k).copied().unwrap_or(0),
            );
            x.abs_diff(y)
        })
        .sum()
}

/// Seat and rater use within capacity (the check of tests/common).
fn check_capacity(sc: &Scenario, plan: &Plan) {
    let violations = capacity_violations(sc, plan);
    assert!(violations.is_empty(), "{violations:?}");
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[test]
fn touched_exams_follow_demand_capacity_and_pools_one_step() {
    let sc = base();
    assert!(touched_exams(&sc, &sc).is_empty());
    assert_eq!(touched_exams(&sc, &surge(&sc)), set(&["A"]));

    let mut moto = sc.clone();
    moto.locations[2].resources[1].weekly_minutes = 100.0;
    assert_eq!(touched_exams(&sc, &moto), set(&["B"]));

    let mut closed = sc.clone();
    closed.locations[0].unavailable = vec![];
    closed.locations[1].unavailable = vec![];
    assert_eq!(touched_exams(&sc, &closed), set(&["A", "B"]));

    let mut pool = sc.clone();
    pool.rating_pools[0].weekly_minutes = 200.0;
    assert_eq!(touched_exams(&sc, &pool), set(&["A"]));

    // C shares kind car with A: one step brings it in; D (moto) stays out.
    let mut wide = sc.clone();
    let mut c = wide.exams[0].clone();
    c.id = "C".into();
    c.rating_pool = None;
    c.rating_minutes = None;
    let mut d = wide.exams[1].clone();
    d.id = "D".into();
    wide.exams.extend([c, d]);
    assert_eq!(touched_exams(&wide, &surge(&wide)), set(&["A", "C"]));
}

#[test]
fn frozen_weeks_and_untouched_exams_keep_the_published_allocation() {
    let sc = base();
    let pubd = published(&sc);
    let shocked = surge(&sc);
    let touched = touched_exams(&sc, &shocked);
    for freeze in [0usize, 1, 2] {
        for sigma in [0.0, 0.5] {
            let re = replan(&shocked, &pubd, &touched, freeze, sigma, &opts())
                .unwrap_or_else(|e| panic!("F={freeze} σ={sigma}: {e}"));
            assert_eq!(
                rows(&re, |a| a.week < freeze),
                rows(&pubd, |a| a.week < freeze),
                "F={freeze} σ={sigma}: frozen weeks changed"
            );
            assert_eq!(
                rows(&re, |a| a.exam == "B"),
                rows(&pubd, |a| a.exam == "B"),
                "F={freeze} σ={sigma}: untouched exam B changed"
            );
            check_capacity(&shocked, &re);
        }
    }
}

#[test]
fn the_surge_changes_the_touched_exam() {
    let sc = base();
    let pubd = published(&sc);
    let shocked = surge(&sc);
    let re = replan(&shocked, &pubd, &set(&["A"]), 2, 0.0, &opts()).expect("replan");
    assert_ne!(rows(&re, |a| a.exam == "A"), rows(&pubd, |a| a.exam == "A"));
    // The scenario is tight enough that the surge breaks targets, more so
    // with weeks frozen.
    assert!(pubd.stage1_violation < 1e-9);
    let unfrozen = replan(&shocked, &pubd, &set(&["A"]), 0, 0.0, &opts()).expect("replan");
    assert!(unfrozen.stage1_violation > 1.0);
    assert!(re.stage1_violation > unfrozen.stage1_violation + 1.0);
    // A surge can only cost more.
    assert!(re.stage2_cost + re.stage1_violation > pubd.stage2_cost + pubd.stage1_violation);
}

#[test]
fn full_replan_without_freeze_or_stability_is_a_full_solve() {
    let sc = base();
    let pubd = published(&sc);
    let shocked = surge(&sc);
    let full = plan_scenario(&shocked, &opts(), &|_| {}).expect("full solve");
    let re = replan(&shocked, &pubd, &set(&["A", "B"]), 0, 0.0, &opts()).expect("replan");
    assert!(
        close(re.stage1_violation, full.stage1_violation),
        "V {} vs {}",
        re.stage1_violation,
        full.stage1_violation
    );
    assert!(
        close(re.stage2_cost, full.stage2_cost),
        "C {} vs {}",
        re.stage2_cost,
        full.stage2_cost
    );
    // With only A re-optimised, B's part is its published evaluation: the
    // totals still match, since B's block is the same LP in both scenarios.
    let part = replan(&shocked, &pubd, &set(&["A"]), 0, 0.0, &opts()).expect("replan A");
    assert!(close(part.stage1_violation, full.stage1_violation));
}

#[test]
fn stability_moves_no_more_candidates_and_keeps_v() {
    let sc = base();
    let pubd = published(&sc);
    let shocked = surge(&sc);
    let touched = touched_exams(&sc, &shocked);
    for freeze in [0usize, 2] {
        let free = replan(&shocked, &pubd, &touched, freeze, 0.0, &opts()).expect("σ = 0");
        for sigma in [0.05, 1.0, 10.0] {
            let stable = replan(&shocked, &pubd, &touched, freeze, sigma, &opts()).expect("σ > 0");
            assert!(
                close(stable.stage1_violation, free.stage1_violation),
                "F={freeze} σ={sigma}: V {} vs {}",
                stable.stage1_violation,
                free.stage1_violation
            );
            assert!(
                moved(&stable, &pubd) <= moved(&free, &pubd),
                "F={freeze} σ={sigma}: moved {} vs {}",
                moved(&stable, &pubd),
                moved(&free, &pubd)
            );
            // σ does not enter the reported cost, which σ = 0 minimises.
            assert!(stable.stage2_cost >= free.stage2_cost - 1e-6 * free.stage2_cost.max(1.0));
        }
    }
}

#[test]
fn diff_lists_the_changed_cells_of_the_touched_exam_after_the_freeze() {
    let sc = base();
    let pubd = published(&sc);
    let shocked = surge(&sc);
    assert!(diff(&pubd, &pubd).is_empty());
    let re = replan(&shocked, &pubd, &set(&["A"]), 2, 1.0, &opts()).expect("replan");
    let moves = diff(&pubd, &re);
    assert!(!moves.is_empty());
    for m in &moves {
        assert_eq!(m.exam, "A");
        assert!(m.week >= 2);
        assert_ne!(m.delta(), 0);
    }
    // The net change is the change in candidates examined.
    let total = |p: &Plan| -> i64 { p.allocation.iter().map(|a| a.candidates as i64).sum() };
    let net: i64 = moves.iter().map(|m| m.delta()).sum();
    assert_eq!(net, total(&re) - total(&pubd));
}
