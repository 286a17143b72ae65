//! The time limit is a wall-clock budget for the whole solve: each HiGHS
//! run gets what is left of it. HiGHS itself measures `time_limit` against
//! the run time of every run on one instance so far, so handing it only the
//! time left (as before) stopped a block's later runs early, with a limit
//! well above what the solve needs.

use std::time::Instant;

use examcap_solver::generate::{national, GenerateOptions};
use examcap_solver::plan::{PlanError, PlanStatus};
use examcap_solver::{plan_scenario, Plan, PlanOptions, Scenario};

/// The national speaking exams only: one block, whose weighted stage-1 run
/// is most of the solve, so a run charged twice would not fit the margin.
fn speaking_block() -> Scenario {
    let mut sc = national(&GenerateOptions {
        weeks: 26,
        ..GenerateOptions::default()
    });
    let keep = |e: &str| e.ends_with("SPREKEN") || e == "SPREKEN_B1";
    sc.exams.retain(|e| keep(&e.id));
    sc.demand.retain(|d| keep(&d.exam));
    sc.backlog.retain(|b| keep(&b.exam));
    sc
}

fn timed(sc: &Scenario, limit: Option<f64>) -> (Result<Plan, PlanError>, f64) {
    let opts = PlanOptions {
        time_limit_seconds: limit,
        parallel: 1,
        ..PlanOptions::default()
    };
    let t0 = Instant::now();
    let plan = plan_scenario(sc, &opts, &|_| {});
    (plan, t0.elapsed().as_secs_f64())
}

#[test]
fn a_limit_above_the_solve_time_reaches_the_optimum() {
    let sc = speaking_block();
    assert_eq!(sc.exams.len(), 3);
    let (free, t1) = timed(&sc, None);
    let free = free.expect("solves");
    let (_, t2) = timed(&sc, None);
    assert_eq!(free.status, PlanStatus::Optimal);
    let limit = 1.4 * t1.min(t2);
    // Three tries, so that one slow moment on a shared machine is not a
    // failure; charging a run twice fails every try.
    let mut seen = Vec::new();
    for _ in 0..3 {
        let (plan, secs) = timed(&sc, Some(limit));
        match plan {
            Ok(plan) if plan.status == PlanStatus::Optimal => {
                // The same optimum; the last digits may differ, as the
                // deadline stops the recommendations' search, which runs
                // between the stages, and stage 2 then starts from
                // another basis.
                let same = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(1.0);
                assert!(same(plan.stage1_violation, free.stage1_violation));
                assert!(same(plan.stage2_cost, free.stage2_cost));
                return;
            }
            Ok(plan) => seen.push((format!("{:?}", plan.status), secs)),
            Err(e) => seen.push((e.to_string(), secs)),
        }
    }
    panic!("limit {limit:.3} s (solve alone {t1:.3} and {t2:.3} s): {seen:?}");
}
