//! Tiny scenarios whose V* and C were derived by hand (derivations beside
//! each), solved by the fast path and by the literal reference model.

use examcap_solver::duals::CapacityRef;
use examcap_solver::reference::{solve_reference_clarabel, solve_reference_highs};
use examcap_solver::{parse_scenario, plan_scenario, Plan, PlanOptions, Scenario};
mod common;

use common::close;
use serde_json::json;

fn scenario(v: serde_json::Value) -> Scenario {
    parse_scenario(&serde_json::to_vec(&v).unwrap()).unwrap_or_else(|e| panic!("{e}"))
}

fn solve(sc: &Scenario) -> Plan {
    plan_scenario(sc, &PlanOptions::default(), &|_| {}).expect("solves")
}

fn assert_values(sc: &Scenario, v_star: f64, c: f64) -> Plan {
    let plan = solve(sc);
    assert!(
        close(plan.stage1_violation, v_star),
        "V* = {} want {v_star}",
        plan.stage1_violation
    );
    assert!(
        close(plan.stage2_cost, c),
        "C = {} want {c}",
        plan.stage2_cost
    );
    let r = solve_reference_highs(sc).expect("reference solves");
    assert!(
        close(r.violation, v_star),
        "reference V* = {} want {v_star}",
        r.violation
    );
    assert!(close(r.cost, c), "reference C = {} want {c}", r.cost);
    plan
}

/// One exam (60 seat minutes, W = 1), one location with 120 regular minutes
/// a week (2 candidates) and 60 extra (1 more) at 2/min, travel 0.5, w = 1,
/// demand 4 a week for 3 weeks.
///
/// Stage 1: s1 = max(0, 4 − x0 − x1), s2 = max(0, 8 − x0 − x1 − x2) (with
/// W = 1 only the current week's registrations may still wait). Regular
/// capacity alone gives Σx = 6 < 8, so two extra candidates are bought:
/// V* = 0, with Σx = 8 exactly (a 9th costs 120.5 and saves 1 of waiting).
/// Stage 2: an extra candidate costs 120 whenever bought; bought in week 0 it
/// cuts B0, B1, B2 (saves 3), in week 1 saves 2, in week 2 saves 1. So
/// x = (3, 3, 2): B = (1, 2, 4) → waiting 7, travel 0.5·8 = 4, extra
/// 2·60·2 = 240: C = 251.
fn plain() -> serde_json::Value {
    json!({
        "format": "examcap/scenario@1", "name": "plain", "start_week": "2026-W14",
        "horizon_weeks": 3,
        "exams": [{"id": "E", "name": "E", "resource": "seat", "seat_minutes": 60,
                   "target_wait_weeks": 1}],
        "locations": [{"id": "L", "name": "L", "resources": [{"kind": "seat",
            "weekly_minutes": 120, "extra_weekly_minutes": 60, "extra_cost_per_minute": 2}]}],
        "regions": [{"id": "R", "name": "R", "options": [{"location": "L", "travel_cost": 0.5}]}],
        "demand": [{"region": "R", "exam": "E", "weekly": [4, 4, 4]}]
    })
}

#[test]
fn plain_scenario_matches_hand_derivation() {
    let plan = assert_values(&scenario(plain()), 0.0, 251.0);
    let by_week: Vec<u64> = (0..3)
        .map(|t| {
            plan.allocation
                .iter()
                .filter(|a| a.week == t)
                .map(|a| a.candidates)
                .sum()
        })
        .collect();
    assert_eq!(by_week, vec![3, 3, 2], "{:?}", plan.allocation);
    assert!(close(plan.rounded.cost, 251.0));
    assert_eq!(plan.rounded.violation, 0.0);
}

/// Backlog inside and outside the FIFO window. W = 2, one seat a week
/// (60 of 60 minutes, no extra), travel 0.25, w = 1. Backlog: 2 registered
/// in week −2 and 2 in week −1; demand 1 in weeks 0 and 1.
///
/// B[−1] = 4. Window(0) = reg(−1) + reg(0) = 3; window(1) = reg(0) + reg(1) = 2.
/// x ≤ 1 each week. B0 = 5 − x0, s0 = max(0, 2 − x0) = 1 (x0 = 1);
/// B1 = 6 − x0 − x1 = 4, s1 = max(0, 4 − 2) = 2. V* = 3 with x = (1, 1)
/// forced. C = w·(B0 + B1) + 0.25·2 = 8 + 0.5 = 8.5.
fn backlog() -> serde_json::Value {
    json!({
        "format": "examcap/scenario@1", "name": "backlog", "start_week": "2026-W14",
        "horizon_weeks": 2,
        "exams": [{"id": "E", "name": "E", "resource": "seat", "seat_minutes": 60,
                   "target_wait_weeks": 2}],
        "locations": [{"id": "L", "name": "L", "resources": [{"kind": "seat",
            "weekly_minutes": 60, "extra_weekly_minutes": 0, "extra_cost_per_minute": 0}]}],
        "regions": [{"id": "R", "name": "R", "options": [{"location": "L", "travel_cost": 0.25}]}],
        "demand": [{"region": "R", "exam": "E", "weekly": [1, 1]}],
        "backlog": [{"region": "R", "exam": "E", "registered_week": -2, "candidates": 2},
                    {"region": "R", "exam": "E", "registered_week": -1, "candidates": 1},
                    {"region": "R", "exam": "E", "registered_week": -1, "candidates": 1}]
    })
}

#[test]
fn backlog_in_negative_weeks_matches_hand_derivation() {
    let plan = assert_values(&scenario(backlog()), 3.0, 8.5);
    // FIFO on x = (1, 1): the week −2 cohort (2) is done in week 1 → waits 3;
    // the week −1 cohort is not served within the horizon, and its deadline
    // (−1 + 2 = 1) is inside it: beyond.
    let w = &plan.waits[0];
    assert_eq!(w.served_candidates, 2.0);
    assert_eq!(w.beyond_candidates, 2.0);
    assert_eq!(w.censored_candidates, 2.0);
    assert_eq!(w.max.map(|p| p.at_least), Some(true));
}

/// Rater bottleneck with priorities. Exams A (π = 2) and B (π = 1), W = 0,
/// plenty of seats, both rated by pool P at 10 minutes each; P has 30
/// regular minutes (3 candidates) and 5 extra at 5/min. T = 1, demand 2
/// each, w = 1, travel 0.
///
/// Stage 1: at most 3.5 candidates rated; A first (π = 2): x_A = 2,
/// x_B = 1.5, V* = 1·0.5 = 0.5.
/// Stage 2 with the budget V ≤ 0.5·(1 + 1e-7) + 1e-6 = 0.50000105: serving
/// u fewer B saves 10u extra minutes (50u) and costs u waiting, so the LP
/// spends the whole slack: u = 1.05e-6. C = 5·(5 − 10u) + (0.5 + u)
/// = 25.5 − 49u = 25.49994855 (25.5 would be 2e-6 off: the slack matters).
/// Duals of P's row: stage 1, one more minute rates 0.1 more B: −0.1;
/// stage 2, one more regular minute replaces one bought minute: −5.
fn raters() -> serde_json::Value {
    json!({
        "format": "examcap/scenario@1", "name": "raters", "start_week": "2026-W14",
        "horizon_weeks": 1,
        "exams": [
            {"id": "A", "name": "A", "resource": "booth", "seat_minutes": 30,
             "rating_pool": "P", "rating_minutes": 10, "target_wait_weeks": 0, "priority": 2},
            {"id": "B", "name": "B", "resource": "booth", "seat_minutes": 30,
             "rating_pool": "P", "rating_minutes": 10, "target_wait_weeks": 0}],
        "locations": [{"id": "L", "name": "L", "resources": [{"kind": "booth",
            "weekly_minutes": 10000, "extra_weekly_minutes": 0, "extra_cost_per_minute": 0}]}],
        "rating_pools": [{"id": "P", "weekly_minutes": 30, "extra_weekly_minutes": 5,
                          "extra_cost_per_minute": 5}],
        "regions": [{"id": "R", "name": "R", "options": [{"location": "L", "travel_cost": 0}]}],
        "demand": [{"region": "R", "exam": "A", "weekly": [2]},
                   {"region": "R", "exam": "B", "weekly": [2]}]
    })
}

#[test]
fn rater_bottleneck_with_priorities_matches_hand_derivation() {
    let plan = assert_values(&scenario(raters()), 0.5, 25.5 - 49.0 * 1.05e-6);
    let over: Vec<(&str, f64)> = plan
        .over_target
        .iter()
        .map(|o| (o.exam.as_str(), o.candidate_weeks))
        .collect();
    assert_eq!(over.len(), 1);
    assert_eq!(over[0].0, "B");
    assert!(close(over[0].1, 0.5 + 1.05e-6));
}

#[test]
fn capacity_duals_have_the_hand_derived_sign_and_size() {
    let plan = solve(&scenario(raters()));
    let p = plan
        .shadow_prices
        .iter()
        .find(|p| p.capacity == CapacityRef::Raters { pool: "P".into() })
        .expect("rater row priced");
    assert!(close(p.stage1, -0.1), "stage-1 dual {}", p.stage1);
    assert!(
        close(p.stage2.expect("stage 2 finished"), -5.0),
        "stage-2 dual {:?}",
        p.stage2
    );
    let seats = plan
        .shadow_prices
        .iter()
        .find(|p| matches!(p.capacity, CapacityRef::Seats { .. }))
        .expect("seat row priced");
    assert_eq!(seats.stage1, 0.0, "plenty of seats: not binding");
    let top = &plan.recommendations[0];
    assert!(close(top.violation_reduction, 0.1 * 240.0));
    assert!(close(top.cost_reduction, 5.0 * 240.0));
}

/// Two independent blocks, each like `raters` but with different prices:
/// block 1 saves 49 per unit of slack, block 2 (extra at 2/min) saves
/// 10·2 − 1 = 19. DESIGN's single global row lets the whole shared slack
/// Δ = V*·1e-7 + 1e-6 (V* = 1) go to block 1:
/// C = (25.5) + (0.5 + 2·5) − 49·Δ = 36 − 49·1.1e-6.
#[test]
fn global_stage2_slack_goes_where_it_saves_most() {
    let mut v = raters();
    v["exams"].as_array_mut().unwrap().push(json!(
        {"id": "C", "name": "C", "resource": "desk", "seat_minutes": 30,
         "rating_pool": "Q", "rating_minutes": 10, "target_wait_weeks": 0}));
    v["locations"][0]["resources"]
        .as_array_mut()
        .unwrap()
        .push(json!(
        {"kind": "desk", "weekly_minutes": 10000, "extra_weekly_minutes": 0,
         "extra_cost_per_minute": 0}));
    v["rating_pools"].as_array_mut().unwrap().push(json!(
        {"id": "Q", "weekly_minutes": 10, "extra_weekly_minutes": 5, "extra_cost_per_minute": 2}));
    v["demand"]
        .as_array_mut()
        .unwrap()
        .push(json!({"region": "R", "exam": "C", "weekly": [2]}));
    let sc = scenario(v);
    // Block 2 alone: C serves 1.5 (10 + 5 minutes), V = 0.5, cost 2·5 + 0.5.
    let delta = 1.0 * 1e-7 + 1e-6;
    let plan = assert_values(&sc, 1.0, 25.5 + 10.5 - 49.0 * delta);
    assert_eq!(plan.solver.blocks, 2);
}

#[test]
fn clarabel_agrees_on_the_golden_scenarios() {
    for (v, vs, c) in [
        (plain(), 0.0, 251.0),
        (backlog(), 3.0, 8.5),
        (raters(), 0.5, 25.5 - 49.0 * 1.05e-6),
    ] {
        let r = solve_reference_clarabel(&scenario(v)).expect("clarabel solves");
        assert!(
            close(r.violation, vs),
            "clarabel V* {} want {vs}",
            r.violation
        );
        assert!(close(r.cost, c), "clarabel C {} want {c}", r.cost);
    }
}

#[test]
fn same_scenario_same_plan_bit_for_bit() {
    let sc = scenario(raters());
    let a = solve(&sc);
    let b = plan_scenario(
        &sc,
        &PlanOptions {
            parallel: 1,
            ..PlanOptions::default()
        },
        &|_| {},
    )
    .expect("solves");
    assert_eq!(a.fingerprint(), b.fingerprint());
    assert_eq!(a.scenario.content_hash, sc.content_hash());
}

/// Two locations; the near one's extra minutes cost 1e9 each and the LP
/// buys none (it serves 266⅔ candidates a week at AMS from regular minutes).
/// Rounding the third of a candidate up at AMS would buy 15 such minutes
/// (1.5e10) to save under a candidate-week of waiting; no week is over
/// target (8 weeks allowed), so the integral plan must not buy them.
#[test]
fn rounding_buys_no_extra_minute_that_does_not_pay() {
    let sc = scenario(json!({
        "format": "examcap/scenario@1", "name": "dear-extra", "start_week": "2026-W14",
        "horizon_weeks": 3,
        "exams": [{"id": "SPK", "name": "Spreken", "resource": "booth", "seat_minutes": 45,
                   "target_wait_weeks": 8}],
        "locations": [
            {"id": "AMS", "name": "A", "resources": [{"kind": "booth", "weekly_minutes": 12000,
             "extra_weekly_minutes": 3000, "extra_cost_per_minute": 1e9}]},
            {"id": "UTR", "name": "U", "resources": [{"kind": "booth", "weekly_minutes": 6000,
             "extra_weekly_minutes": 3000, "extra_cost_per_minute": 0.9}]}],
        "regions": [{"id": "R", "name": "R", "options": [
            {"location": "AMS", "travel_cost": 0.0}, {"location": "UTR", "travel_cost": 2.5}]}],
        "demand": [{"region": "R", "exam": "SPK", "weekly": [120, 118, 131]}],
        "backlog": [{"region": "R", "exam": "SPK", "registered_week": -3, "candidates": 240}]
    }));
    let plan = solve(&sc);
    assert_eq!(plan.lp.extra_seat_cost, 0.0);
    assert_eq!(plan.rounded.violation, 0.0);
    assert_eq!(plan.rounded.extra_seat_cost, 0.0, "{:?}", plan.extra_seats);
    // Whole candidates cost at most one candidate-week more than the LP.
    assert!(
        plan.rounded.cost <= plan.lp.cost + 1.0,
        "{:?}",
        plan.rounded
    );
}
