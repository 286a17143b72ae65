//! Property tests on random small scenarios. The runner has a fixed seed,
//! so every run checks the same cases.

use examcap_solver::generate::split_regions;
use examcap_solver::model::Instance;
use examcap_solver::reference::{solve_reference_clarabel, solve_reference_highs};
use examcap_solver::repair::repair;
use examcap_solver::reschedule::{replan, touched_exams};
use examcap_solver::rounding::{evaluate, restore_published, usage, Allocation, Cell};
use examcap_solver::validate::validate_scenario;
use examcap_solver::waits::{CohortState, Percentile};
use examcap_solver::{
    parse_scenario, plan_scenario, Plan, PlanOptions, Scenario, ValidationErrors,
};
mod common;

use common::{capacity_violations, close};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Random valid scenarios: up to 3 exams over 2 kinds and an optional rater
/// pool, up to 3 locations (with closures), 3 regions, 5 weeks, backlog.
fn arb_scenario() -> impl Strategy<Value = Scenario> {
    let weeks = 1usize..=5;
    (weeks, 1usize..=3, 1usize..=3, 1usize..=3, any::<u64>()).prop_map(
        |(weeks, n_exams, n_locs, n_regions, seed)| {
            let mut next = splitmix(seed);
            let kinds = ["seat", "booth"];
            let exams: Vec<_> = (0..n_exams)
                .map(|e| {
                    let rated = next(2) == 0;
                    let mut ex = json!({
                        "id": format!("E{e}"), "name": format!("E{e}"),
                        "resource": kinds[e % 2], "seat_minutes": 30 + 15 * next(4),
                        "target_wait_weeks": next(4), "priority": 1 + next(3)
                    });
                    if rated {
                        ex["rating_pool"] = json!("P");
                        ex["rating_minutes"] = json!(5 + 5 * next(3));
                    }
                    ex
                })
                .collect();
            let locations: Vec<_> = (0..n_locs)
                .map(|l| {
                    let mut unavailable = vec![];
                    if next(3) == 0 {
                        let from = next(weeks as u64);
                        let factor = 0.5 * next(2) as f64;
                        unavailable.push(json!({"from_week": from, "to_week": from + next(3),
                                                "factor": factor}));
                    }
                    json!({"id": format!("L{l}"), "name": format!("L{l}"),
                           "resources": kinds.iter().map(|k| json!({
                               "kind": k, "weekly_minutes": 60 * next(8),
                               "extra_weekly_minutes": 30 * next(4),
                               "extra_cost_per_minute": 0.5 * next(5) as f64})).collect::<Vec<_>>(),
                           "unavailable": unavailable})
                })
                .collect();
            let regions: Vec<_> = (0..n_regions)
                .map(|r| {
                    let first = next(n_locs as u64);
                    let count = 1 + next(n_locs as u64);
                    let options: Vec<_> = (0..count)
                        .map(|i| {
                            json!({"location": format!("L{}", (first + i) % n_locs as u64),
                                        "travel_cost": 0.25 * next(8) as f64})
                        })
                        .collect();
                    json!({"id": format!("R{r}"), "name": format!("R{r}"), "options": options})
                })
                .collect();
            let mut demand = vec![];
            let mut backlog = vec![];
            for r in 0..n_regions {
                for e in 0..n_exams {
                    if next(4) == 0 {
                        continue;
                    }
                    let weekly: Vec<f64> = (0..weeks).map(|_| next(12) as f64).collect();
                    demand.push(json!({"region": format!("R{r}"), "exam": format!("E{e}"),
                                       "weekly": weekly}));
                    if next(2) == 0 {
                        backlog.push(json!({"region": format!("R{r}"), "exam": format!("E{e}"),
                                            "registered_week": -1 - next(4) as i64,
                                            "candidates": 1 + next(15)}));
                    }
                }
            }
            let v = json!({
                "format": "examcap/scenario@1", "name": "prop", "start_week": "2026-W10",
                "horizon_weeks": weeks, "exams": exams, "locations": locations,
                "rating_pools": [{"id": "P", "weekly_minutes": 30 * next(10),
                                  "extra_weekly_minutes": 30 * next(3),
                                  "extra_cost_per_minute": 1.5,
                                  "unavailable": [{"from_week": 0, "to_week": 0, "factor": 0.5}]}],
                "regions": regions, "demand": demand, "backlog": backlog,
                "weights": {"waiting_per_candidate_week": 0.5 + 0.5 * next(3) as f64}
            });
            parse_scenario(&serde_json::to_vec(&v).expect("json"))
                .unwrap_or_else(|e| panic!("generated scenario invalid: {e}\n{v}"))
        },
    )
}

fn solve(sc: &Scenario) -> Plan {
    plan_scenario(sc, &PlanOptions::default(), &|_| {}).expect("solves")
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    )
}

/// The integral plan never exceeds regular + bought extra (and never buys
/// more than the extra there is), keeps every backlog ≥ 0, and V ≥ V*.
fn check_integral_plan(sc: &Scenario, plan: &Plan) -> Result<(), TestCaseError> {
    let violations = capacity_violations(sc, plan);
    prop_assert!(violations.is_empty(), "{violations:?}");
    // The check a calendar, a report and an offline re-plan make of a plan
    // file never refuses one the solver made.
    let fits = examcap_solver::reschedule::check_published(sc, plan);
    prop_assert!(fits.is_ok(), "{:?}", fits);
    let mut served: BTreeMap<(String, String, usize), f64> = BTreeMap::new();
    for a in &plan.allocation {
        *served
            .entry((a.region.clone(), a.exam.clone(), a.week))
            .or_default() += a.candidates as f64;
    }
    for d in &sc.demand {
        let mut cum: f64 = sc
            .backlog
            .iter()
            .filter(|b| b.region == d.region && b.exam == d.exam)
            .map(|b| b.candidates)
            .sum();
        for (t, w) in d.weekly.iter().enumerate() {
            cum += w;
            cum -= served
                .get(&(d.region.clone(), d.exam.clone(), t))
                .copied()
                .unwrap_or(0.0);
            prop_assert!(
                cum >= -1e-9,
                "backlog {}/{} week {t}: {cum}",
                d.region,
                d.exam
            );
        }
    }
    prop_assert!(
        plan.rounded.violation >= plan.stage1_violation - 1e-6 * plan.stage1_violation.max(1.0)
    );
    // Wait percentiles are ordered, "at least" ones included, and the max
    // is "at least" exactly when some cohort was not served in time.
    for w in &plan.waits {
        let weeks = |p: Option<Percentile>| p.map_or(0, |p| p.weeks);
        prop_assert!(
            weeks(w.p50) <= weeks(w.p90) && weeks(w.p90) <= weeks(w.max),
            "{w:?}"
        );
        let beyond = plan
            .cohorts
            .iter()
            .filter(|c| c.exam == w.exam)
            .flat_map(|c| &c.cohorts)
            .any(|c| c.state == CohortState::Beyond);
        prop_assert_eq!(w.max.is_some_and(|m| m.at_least), beyond);
    }
    Ok(())
}

/// A plan's allocation as the solver indexes it, with the extra capacity
/// it uses bought (max(0, use − regular) per cell), computed here apart
/// from the solver's own code.
fn allocation(sc: &Scenario, inst: &Instance, plan: &Plan) -> Allocation {
    let pos = |ids: Vec<&str>, id: &str| ids.iter().position(|&x| x == id).expect("known id");
    let mut out = Allocation::default();
    for a in &plan.allocation {
        let r = pos(
            sc.regions.iter().map(|r| r.id.as_str()).collect(),
            &a.region,
        );
        let e = pos(sc.exams.iter().map(|e| e.id.as_str()).collect(), &a.exam);
        let l = pos(
            sc.locations.iter().map(|l| l.id.as_str()).collect(),
            &a.location,
        );
        let stream = inst
            .streams
            .iter()
            .position(|st| st.region == r && st.exam == e)
            .expect("a stream per allocated (region, exam)");
        *out.x
            .entry(Cell {
                stream,
                t: a.week,
                l,
            })
            .or_default() += a.candidates as f64;
    }
    let (seats, raters) = usage(inst, &out);
    for (&(l, k, t), &u) in &seats {
        let (cap, _) = inst.seat_capacity(l, k, t);
        if u > cap + 1e-9 {
            out.extra_seats.insert((l, k, t), u - cap);
        }
    }
    for (&(q, t), &u) in &raters {
        let (cap, _) = inst.rater_capacity(q, t);
        if u > cap + 1e-9 {
            out.extra_raters.insert((q, t), u - cap);
        }
    }
    out
}

/// Σ|x − p| per (stream, location, week).
fn moves(int: &Allocation, published: &BTreeMap<(usize, usize, usize), f64>) -> f64 {
    let mut keys: Vec<(usize, usize, usize)> = int.x.keys().map(|c| (c.stream, c.l, c.t)).collect();
    keys.extend(published.keys().copied());
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter()
        .map(|(stream, l, t)| {
            let x = int.x.get(&Cell { stream, t, l }).copied().unwrap_or(0.0);
            (x - published.get(&(stream, l, t)).copied().unwrap_or(0.0)).abs()
        })
        .sum()
}

/// Σ|Σ_r x − Σ_r p| per (exam, location, week): the diff a planner reads.
fn moves_shown(
    inst: &Instance,
    int: &Allocation,
    published: &BTreeMap<(usize, usize, usize), f64>,
) -> f64 {
    let mut gap: BTreeMap<(usize, usize, usize), f64> = BTreeMap::new();
    for (c, &v) in &int.x {
        *gap.entry((inst.streams[c.stream].exam, c.l, c.t))
            .or_default() += v;
    }
    for (&(s, l, t), &p) in published {
        *gap.entry((inst.streams[s].exam, l, t)).or_default() -= p;
    }
    gap.values().map(|g| g.abs()).sum()
}

/// Giving a rounded re-plan's moves back (`restore_published`) keeps every
/// cell within regular + extra capacity and every backlog ≥ 0, leaves the
/// pinned week alone, never lets V grow, nor C + σ·Σ|x − p| unless V
/// falls, and never moves more, per region or in the diff.
/// The "re-plan" is the plan of a scenario whose demand was scaled, the
/// "published" plan that of the original.
#[test]
fn giving_moves_back_keeps_capacity_and_never_costs_the_objective() {
    static CHANGED: AtomicUsize = AtomicUsize::new(0);
    let sigma = prop_oneof![Just(0.05), Just(1.0), Just(10.0)];
    runner(120)
        .run(
            &(arb_scenario(), [0.3f64..3.0, 0.3f64..3.0], sigma),
            |(sc, scale, sigma)| {
                let base = solve(&sc);
                // Regions scaled apart, so that one gains what another loses.
                let mut shocked = sc.clone();
                for d in &mut shocked.demand {
                    let f = scale[(d.region == sc.regions[0].id) as usize];
                    for w in &mut d.weekly[1..] {
                        *w *= f;
                    }
                }
                let replanned = solve(&shocked);
                let inst = Instance::new(&shocked, false);
                let before = allocation(&shocked, &inst, &replanned);
                let published: BTreeMap<(usize, usize, usize), f64> =
                    allocation(&shocked, &inst, &base)
                        .x
                        .into_iter()
                        .map(|(c, v)| ((c.stream, c.l, c.t), v))
                        .collect();
                let mut after = before.clone();
                restore_published(&inst, &mut after, &published, sigma, &|_, t| t < 1);

                for (c, &v) in &after.x {
                    prop_assert!(v >= 0.0 && v.fract() == 0.0, "{c:?}: {v}");
                }
                let week0 = |a: &Allocation| -> Vec<(Cell, f64)> {
                    a.x.iter()
                        .filter(|(c, _)| c.t < 1)
                        .map(|(&c, &v)| (c, v))
                        .collect()
                };
                prop_assert_eq!(week0(&after), week0(&before), "the pinned week changed");
                let (seats, raters) = usage(&inst, &after);
                for (&(l, k, t), &u) in &seats {
                    let (cap, xcap) = inst.seat_capacity(l, k, t);
                    prop_assert!(
                        u <= cap + xcap + 1e-6,
                        "seats {l}/{k}/{t}: {u} > {}",
                        cap + xcap
                    );
                    let bought = after.extra_seats.get(&(l, k, t)).copied().unwrap_or(0.0);
                    prop_assert!(
                        u <= cap + bought + 1e-6,
                        "seats {l}/{k}/{t} beyond what is bought"
                    );
                }
                for (&(q, t), &u) in &raters {
                    let (cap, xcap) = inst.rater_capacity(q, t);
                    prop_assert!(
                        u <= cap + xcap + 1e-6,
                        "raters {q}/{t}: {u} > {}",
                        cap + xcap
                    );
                    let bought = after.extra_raters.get(&(q, t)).copied().unwrap_or(0.0);
                    prop_assert!(
                        u <= cap + bought + 1e-6,
                        "raters {q}/{t} beyond what is bought"
                    );
                }
                let (eb, ea) = (evaluate(&inst, &before), evaluate(&inst, &after));
                for b in ea.backlog.iter().flatten() {
                    prop_assert!(*b >= -1e-9, "backlog {b}");
                }
                let (mb, ma) = (moves(&before, &published), moves(&after, &published));
                // In the model's order: V first, then C + σ·moves.
                prop_assert!(
                    ea.violation <= eb.violation + 1e-6,
                    "V {} -> {}",
                    eb.violation,
                    ea.violation
                );
                prop_assert!(
                    ea.violation < eb.violation - 1e-6
                        || ea.cost + sigma * ma <= eb.cost + sigma * mb + 1e-6 * eb.cost.max(1.0),
                    "C + σ·moves {} -> {}",
                    eb.cost + sigma * mb,
                    ea.cost + sigma * ma
                );
                prop_assert!(ma <= mb, "moves {mb} -> {ma}");
                let (sb, sa) = (
                    moves_shown(&inst, &before, &published),
                    moves_shown(&inst, &after, &published),
                );
                prop_assert!(sa <= sb, "moves shown {sb} -> {sa}");
                if ma < mb {
                    CHANGED.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            },
        )
        .unwrap();
    // The cases must exercise the pass, not only leave plans as they were.
    assert!(CHANGED.load(Ordering::Relaxed) >= 10, "{CHANGED:?}");
}

#[test]
fn integral_plan_never_exceeds_capacity() {
    runner(200)
        .run(&arb_scenario(), |sc| check_integral_plan(&sc, &solve(&sc)))
        .unwrap();
}

/// No candidate of an integral plan waits beyond target in a week where one
/// of their locations still has seat minutes (regular or extra) and their
/// rater pool still has minutes: seating them there, when they wait in
/// every later week too, would lower V, which comes before any cost.
/// Checked on the plan's own allocation, with usage and backlogs computed
/// here, on cases of which at least 20 have candidates over target.
#[test]
fn no_candidate_waits_over_target_beside_free_capacity() {
    static WAITING: AtomicUsize = AtomicUsize::new(0);
    runner(200)
        .run(&arb_scenario(), |sc| {
            let plan = solve(&sc);
            let inst = Instance::new(&sc, false);
            let int = allocation(&sc, &inst, &plan);
            let (seats, raters) = usage(&inst, &int);
            let ev = evaluate(&inst, &int);
            let mut checked = false;
            for (si, st) in inst.streams.iter().enumerate() {
                let e = st.exam;
                let b = &ev.backlog[si];
                for t in 0..inst.weeks {
                    let over: f64 = (t..inst.weeks)
                        .map(|u| (b[u] - st.window(u, inst.target[e])).clamp(0.0, 1.0))
                        .sum();
                    if over <= 1e-6 || b[t..].iter().any(|&b| b < 1.0 - 1e-9) {
                        continue;
                    }
                    checked = true;
                    let k = inst.exam_kind[e];
                    let raters_free = inst.exam_pool[e].is_none_or(|q| {
                        let (cap, xcap) = inst.rater_capacity(q, t);
                        raters.get(&(q, t)).copied().unwrap_or(0.0) + inst.rating_minutes[e]
                            <= cap + xcap + 1e-9
                    });
                    for &(l, _) in &st.options {
                        let (cap, xcap) = inst.seat_capacity(l, k, t);
                        let seats_free = seats.get(&(l, k, t)).copied().unwrap_or(0.0)
                            + inst.seat_minutes[e]
                            <= cap + xcap + 1e-9;
                        prop_assert!(
                            !(seats_free && raters_free),
                            "stream {si} waits over target in week {t} beside free minutes at \
                             location {l}: {:?}",
                            plan.allocation
                        );
                    }
                }
            }
            if checked {
                WAITING.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
        .unwrap();
    // The cases must have candidates over target to check at all.
    assert!(WAITING.load(Ordering::Relaxed) >= 20, "{WAITING:?}");
}

#[test]
fn fast_path_matches_reference_on_highs_and_clarabel() {
    runner(60)
        .run(&arb_scenario(), |sc| {
            let plan = solve(&sc);
            let h = solve_reference_highs(&sc).expect("reference HiGHS");
            let c = solve_reference_clarabel(&sc).expect("reference Clarabel");
            for (name, r) in [("highs", h), ("clarabel", c)] {
                prop_assert!(
                    close(plan.stage1_violation, r.violation),
                    "{name} V*: fast {} ref {}",
                    plan.stage1_violation,
                    r.violation
                );
                prop_assert!(
                    close(plan.stage2_cost, r.cost),
                    "{name} C: fast {} ref {}",
                    plan.stage2_cost,
                    r.cost
                );
            }
            // The LP point the plan reports reproduces the objective values.
            // Its Σπ·s may use the stage-2 slack, never more.
            let v = plan.stage1_violation;
            prop_assert!(plan.lp.violation >= v - 1e-6 * v.max(1.0));
            prop_assert!(plan.lp.violation <= v * (1.0 + 1e-7) + 1e-6 + 1e-6 * v.max(1.0));
            prop_assert!(close(plan.lp.cost, plan.stage2_cost));
            Ok(())
        })
        .unwrap();
}

#[test]
fn splitting_regions_leaves_values_unchanged() {
    runner(40)
        .run(&(arb_scenario(), 2usize..=4), |(sc, k)| {
            let a = solve(&sc);
            let split = split_regions(&sc, k);
            let b = solve(&split);
            // The split scenario's twins are merged by the fast path; the
            // unmerged fast path and the reference (which never merges)
            // must agree with it.
            let unmerged = plan_scenario(
                &split,
                &PlanOptions {
                    merge_twins: false,
                    ..PlanOptions::default()
                },
                &|_| {},
            )
            .expect("solves");
            let r = solve_reference_highs(&split).expect("reference");
            for (name, v, c) in [
                ("unmerged", unmerged.stage1_violation, unmerged.stage2_cost),
                ("reference", r.violation, r.cost),
            ] {
                prop_assert!(
                    close(b.stage1_violation, v),
                    "{name} V*: {v} vs {}",
                    b.stage1_violation
                );
                prop_assert!(
                    close(b.stage2_cost, c),
                    "{name} C: {c} vs {}",
                    b.stage2_cost
                );
            }
            prop_assert!(unmerged.solver.lp_columns >= b.solver.lp_columns);
            prop_assert!(
                close(a.stage1_violation, b.stage1_violation),
                "V*: {} vs split {}",
                a.stage1_violation,
                b.stage1_violation
            );
            prop_assert!(
                close(a.stage2_cost, b.stage2_cost),
                "C: {} vs split {}",
                a.stage2_cost,
                b.stage2_cost
            );
            Ok(())
        })
        .unwrap();
}

/// Values a hostile or careless client might put anywhere in a document.
fn odd_value(pick: u64) -> serde_json::Value {
    match pick % 22 {
        0 => json!(null),
        1 => json!(true),
        2 => json!(-1),
        3 => json!(0),
        4 => json!(-0.0),
        5 => json!(0.5),
        6 => json!(1e9),
        7 => json!(1_000_000_001),
        8 => json!(1e308),
        9 => json!(-1e308),
        10 => json!(1e-300),
        11 => json!(u64::MAX),
        12 => json!(i64::MIN),
        13 => json!(""),
        14 => json!("X"),
        15 => json!("2026-W53"),
        16 => json!("0000-W01"),
        17 => json!("\u{0}é\u{202e}"),
        18 => json!([]),
        19 => json!({}),
        20 => json!([1, "a", null]),
        _ => json!("x".repeat(5000)),
    }
}

/// Every node of `v` as a JSON pointer, the root first.
fn pointers(v: &serde_json::Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        serde_json::Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                pointers(x, format!("{at}/{i}"), out);
            }
        }
        serde_json::Value::Object(map) => {
            for (k, x) in map {
                pointers(x, format!("{at}/{k}"), out);
            }
        }
        _ => {}
    }
}

/// One random edit at a random node: replace it with an odd value, delete
/// it (object key or array element), duplicate it, add an unknown key, or
/// nudge a number (off by one, negated, scaled up).
fn mutate(doc: &mut serde_json::Value, under: &[&str], mut next: impl FnMut(u64) -> u64) {
    let mut all = Vec::new();
    pointers(doc, String::new(), &mut all);
    if !under.is_empty() {
        all.retain(|p| under.iter().any(|u| p.starts_with(u)));
        if all.is_empty() {
            return;
        }
    }
    let at = all[next(all.len() as u64) as usize].clone();
    let (parent, key) = match at.rfind('/') {
        Some(i) => (at[..i].to_string(), at[i + 1..].to_string()),
        None => (String::new(), String::new()),
    };
    let how = next(6);
    let Some(node) = doc.pointer_mut(&at) else {
        return;
    };
    match how {
        0 => *node = odd_value(next(1 << 20)),
        1 => {
            if let Some(n) = node.as_f64() {
                *node = match next(4) {
                    0 => json!(n + 1.0),
                    1 => json!(-n),
                    2 => json!(n * 1e6),
                    _ => json!(n - 1.0),
                };
            } else {
                *node = odd_value(next(1 << 20));
            }
        }
        2 => {
            if let Some(map) = node.as_object_mut() {
                map.insert("unexpected".into(), odd_value(next(1 << 20)));
            }
        }
        _ => {
            let copy = node.clone();
            match doc.pointer_mut(&parent) {
                Some(serde_json::Value::Object(map)) if how == 3 => {
                    map.remove(&key);
                }
                Some(serde_json::Value::Array(items)) => {
                    let i: usize = key.parse().expect("array index");
                    if how == 3 {
                        items.remove(i);
                    } else {
                        items.insert(i, copy);
                    }
                }
                _ => {}
            }
        }
    }
}

/// A deterministic stream of numbers below `n` (SplitMix64).
fn splitmix(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut rng = seed;
    move |n: u64| {
        rng = rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n.max(1)
    }
}

/// A rejection says something, and every error it keeps names its field
/// and what is wrong with it.
fn names_every_field(e: &ValidationErrors) -> Result<(), TestCaseError> {
    prop_assert!(!e.errors.is_empty() && e.total >= e.errors.len(), "{e:?}");
    for f in &e.errors {
        prop_assert!(!f.path.is_empty(), "no field path: {f:?}");
        prop_assert!(!f.message.is_empty(), "no message: {f:?}");
    }
    Ok(())
}

/// Solves `shocked`, then repairs and re-plans the plan of `base` for it
/// (F = 1, σ = 0.1); each may refuse. False if any of them panicked.
fn solved_without_panic(base: &Scenario, shocked: &Scenario) -> bool {
    let opts = PlanOptions {
        time_limit_seconds: Some(10.0),
        ..PlanOptions::default()
    };
    std::panic::catch_unwind(|| {
        let _ = plan_scenario(shocked, &opts, &|_| {});
        let published = plan_scenario(base, &opts, &|_| {}).expect("original solves");
        let touched = touched_exams(base, shocked);
        let _ = repair(shocked, &published, &touched, 1);
        let _ = replan(shocked, &published, &touched, 1, 0.1, &opts);
    })
    .is_ok()
}

/// Bad input never panics: a valid document with one to three random edits
/// either parses, or is rejected with every error naming a field and saying
/// what is wrong. What parses is then solved and used as the "shocked"
/// scenario of a repair and a re-plan against the original's plan: any of
/// them may refuse (a frozen week it cannot honour, say), none may panic.
#[test]
fn mutated_documents_never_panic() {
    let edits = (1u64..=3, any::<u64>());
    runner(400)
        .run(&(arb_scenario(), edits), |(sc, (n_edits, seed))| {
            let mut next = splitmix(seed);
            let mut doc = serde_json::to_value(&sc).expect("to json");
            for _ in 0..n_edits {
                mutate(&mut doc, &[], &mut next);
            }
            let bytes = serde_json::to_vec(&doc).expect("json");
            let parsed = std::panic::catch_unwind(|| parse_scenario(&bytes));
            prop_assert!(parsed.is_ok(), "parse panicked on {doc}");
            let shocked = match parsed.unwrap() {
                Ok(s) => s,
                Err(e) => return names_every_field(&e),
            };
            prop_assert!(
                solved_without_panic(&sc, &shocked),
                "solve, repair or re-plan panicked on {doc}"
            );
            Ok(())
        })
        .unwrap();
}

/// The offline `examcap reschedule --plan PLAN.json` reads a plan file that
/// only has to carry the scenario's content hash: its allocation and extra
/// capacity are input too. A plan with one to three random edits there
/// (unknown ids, weeks past the horizon, absurd counts or minutes) either
/// fails to load, or the repair and re-plan against it answer or refuse,
/// never panic.
#[test]
fn mutated_published_plans_never_panic() {
    let edits = (1u64..=3, any::<u64>());
    runner(150)
        .run(&(arb_scenario(), edits), |(sc, (n_edits, seed))| {
            let mut next = splitmix(seed);
            let published = solve(&sc);
            let mut doc = serde_json::to_value(&published).expect("to json");
            for _ in 0..n_edits {
                mutate(
                    &mut doc,
                    &["/allocation", "/extra_seats", "/extra_raters"],
                    &mut next,
                );
            }
            let Ok(tampered) = serde_json::from_value::<Plan>(doc.clone()) else {
                return Ok(());
            };
            let mut shocked = sc.clone();
            for d in &mut shocked.demand {
                for w in &mut d.weekly {
                    *w = (*w * 1.5).round();
                }
            }
            let touched = touched_exams(&sc, &shocked);
            let opts = PlanOptions {
                time_limit_seconds: Some(10.0),
                ..PlanOptions::default()
            };
            // On its own thread, so that a hang (a loop whose length is set
            // by a count in the file) fails the test instead of stalling it.
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let run = std::panic::catch_unwind(|| {
                    for freeze in [0, 1, 2] {
                        let _ = repair(&shocked, &tampered, &touched, freeze);
                        let _ = replan(&shocked, &tampered, &touched, freeze, 0.1, &opts);
                    }
                });
                let _ = tx.send(run.is_ok());
            });
            let done = rx.recv_timeout(std::time::Duration::from_secs(120));
            prop_assert!(done.is_ok(), "repair or re-plan hung on {doc}");
            prop_assert!(done == Ok(true), "repair or re-plan panicked on {doc}");
            Ok(())
        })
        .unwrap();
}

/// Every number of a scenario, as a place to write an odd value into:
/// floats, week integers and the horizon.
enum Slot<'a> {
    F(&'a mut f64),
    I(&'a mut i64),
    U(&'a mut usize),
}

fn unavailable_slots<'a>(
    u: &'a mut [examcap_solver::scenario::Unavailable],
    out: &mut Vec<Slot<'a>>,
) {
    for x in u {
        out.push(Slot::I(&mut x.from_week));
        out.push(Slot::I(&mut x.to_week));
        out.push(Slot::F(&mut x.factor));
    }
}

fn numbers(sc: &mut Scenario) -> Vec<Slot<'_>> {
    let mut out = vec![
        Slot::U(&mut sc.horizon_weeks),
        Slot::F(&mut sc.weights.waiting_per_candidate_week),
    ];
    for e in &mut sc.exams {
        out.push(Slot::F(&mut e.seat_minutes));
        out.push(Slot::F(&mut e.priority));
        out.push(Slot::I(&mut e.target_wait_weeks));
        if let Some(m) = e.rating_minutes.as_mut() {
            out.push(Slot::F(m));
        }
    }
    for l in &mut sc.locations {
        for r in &mut l.resources {
            out.push(Slot::F(&mut r.weekly_minutes));
            out.push(Slot::F(&mut r.extra_weekly_minutes));
            out.push(Slot::F(&mut r.extra_cost_per_minute));
        }
        unavailable_slots(&mut l.unavailable, &mut out);
    }
    for q in &mut sc.rating_pools {
        out.push(Slot::F(&mut q.weekly_minutes));
        out.push(Slot::F(&mut q.extra_weekly_minutes));
        out.push(Slot::F(&mut q.extra_cost_per_minute));
        unavailable_slots(&mut q.unavailable, &mut out);
    }
    for r in &mut sc.regions {
        for o in &mut r.options {
            out.push(Slot::F(&mut o.travel_cost));
        }
    }
    for d in &mut sc.demand {
        for w in &mut d.weekly {
            out.push(Slot::F(w));
        }
    }
    for b in &mut sc.backlog {
        out.push(Slot::I(&mut b.registered_week));
        out.push(Slot::F(&mut b.candidates));
    }
    out
}

/// A scenario built in code (as the service builds one from a proto
/// message) can hold what JSON cannot: NaN and ±inf. `validate_scenario`
/// must refuse those, and anything out of range, naming the field; what it
/// accepts must solve, repair and re-plan without a panic.
#[test]
fn odd_numbers_in_a_built_scenario_are_refused_or_solved_never_a_panic() {
    let floats = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -1.0,
        -0.0,
        0.0,
        5e-324,
        0.5,
        1e9 + 1.0,
        1e300,
    ];
    let ints = [
        i64::MIN,
        -1_000_000_001,
        -1,
        0,
        1,
        53,
        1_000_000_001,
        i64::MAX,
    ];
    let sizes = [0, 1, 521, usize::MAX];
    runner(300)
        .run(
            &(arb_scenario(), 1u64..=2, any::<u64>()),
            |(sc, n_edits, seed)| {
                let mut next = splitmix(seed);
                let mut odd = sc.clone();
                for _ in 0..n_edits {
                    let mut slots = numbers(&mut odd);
                    let at = next(slots.len() as u64) as usize;
                    match &mut slots[at] {
                        Slot::F(x) => **x = floats[next(floats.len() as u64) as usize],
                        Slot::I(x) => **x = ints[next(ints.len() as u64) as usize],
                        Slot::U(x) => **x = sizes[next(sizes.len() as u64) as usize],
                    }
                }
                let checked = std::panic::catch_unwind(|| validate_scenario(&odd));
                prop_assert!(checked.is_ok(), "validate panicked on {odd:?}");
                if let Err(e) = checked.unwrap() {
                    return names_every_field(&e);
                }
                prop_assert!(
                    solved_without_panic(&sc, &odd),
                    "solve, repair or re-plan panicked on {odd:?}"
                );
                Ok(())
            },
        )
        .unwrap();
}
