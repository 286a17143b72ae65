//! Rescheduling after a surge, timed: the generated national scenario
//! (seed 1, 52 weeks) is solved and its plan taken as published; then
//! Spreken B1 ×1.6 in weeks 10–16 with F = 4 weeks frozen. Each run times
//! the first answer (touched exams + greedy repair), the optimal re-plan
//! (touched exams + re-plan, σ = 0.1), and, in the same process, a cold
//! full solve of the shocked scenario. Prints median and p95 of each.
//!
//! `cargo bench -p examcap-solver --bench reschedule [-- RUNS [COLD_RUNS]]`
//! (defaults: 20 runs, 5 cold solves).

use examcap_solver::generate::{national, GenerateOptions};
use examcap_solver::repair::repair;
use examcap_solver::reschedule::{replan, touched_exams};
use examcap_solver::{plan_scenario, PlanOptions, Scenario};
use std::time::Instant;

const FREEZE: usize = 4;
const SIGMA: f64 = 0.1;

/// The q-quantile (nearest rank) of `v`.
fn quantile(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn line(what: &str, v: &[f64]) {
    println!(
        "{what}: runs={} median={:.1} ms p95={:.1} ms min={:.1} ms max={:.1} ms",
        v.len(),
        quantile(v, 0.5) * 1e3,
        quantile(v, 0.95) * 1e3,
        quantile(v, 0.0) * 1e3,
        quantile(v, 1.0) * 1e3,
    );
}

fn surge(base: &Scenario) -> Scenario {
    let mut sc = base.clone();
    sc.name = format!("{}+surge", base.name);
    for d in sc.demand.iter_mut().filter(|d| d.exam == "SPREKEN_B1") {
        for w in d.weekly.iter_mut().take(17).skip(10) {
            *w *= 1.6;
        }
    }
    sc
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let runs = args.first().copied().unwrap_or(20).max(1);
    let cold_runs = args.get(1).copied().unwrap_or(5).max(1);
    let base = national(&GenerateOptions {
        seed: 1,
        weeks: 52,
        ..GenerateOptions::default()
    });
    let opts = PlanOptions::default();
    let published = plan_scenario(&base, &opts, &|_| {}).expect("base plan");
    let shocked = surge(&base);

    let (mut first, mut optimal, mut cold) = (Vec::new(), Vec::new(), Vec::new());
    let (mut rep, mut re) = (None, None);
    for _ in 0..runs {
        let t0 = Instant::now();
        let touched = touched_exams(&base, &shocked);
        let r = repair(&shocked, &published, &touched, FREEZE).expect("repair");
        first.push(t0.elapsed().as_secs_f64());
        rep = Some(r);

        let t0 = Instant::now();
        let touched = touched_exams(&base, &shocked);
        let p = replan(&shocked, &published, &touched, FREEZE, SIGMA, &opts).expect("re-plan");
        optimal.push(t0.elapsed().as_secs_f64());
        re = Some(p);
    }
    let mut full = None;
    for _ in 0..cold_runs {
        let t0 = Instant::now();
        let p = plan_scenario(&shocked, &opts, &|_| {}).expect("cold solve");
        cold.push(t0.elapsed().as_secs_f64());
        full = Some(p);
    }
    let (rep, re, full) = (
        rep.expect("a run"),
        re.expect("a run"),
        full.expect("a run"),
    );
    println!(
        "national seed 1, 52 weeks; SPREKEN_B1 x1.6 weeks 10-16; F={FREEZE} sigma={SIGMA}; touched={:?}",
        touched_exams(&base, &shocked)
    );
    line("first answer (repair)", &first);
    line("optimal re-plan", &optimal);
    line("cold full solve", &cold);
    println!(
        "re-plan speed-up over the cold solve (medians): {:.1}x",
        quantile(&cold, 0.5) / quantile(&optimal, 0.5)
    );
    println!(
        "published V*={:.3} C={:.3} | repair V={:.3} C={:.3} placed={} removed={} | re-plan V*={:.3} C={:.3} cols={} blocks={} | cold V*={:.3} C={:.3}",
        published.stage1_violation,
        published.stage2_cost,
        rep.values.violation,
        rep.values.cost,
        rep.placed,
        rep.removed,
        re.stage1_violation,
        re.stage2_cost,
        re.solver.lp_columns,
        re.solver.blocks,
        full.stage1_violation,
        full.stage2_cost,
    );
    println!(
        "re-plan steps (last run): build={:.3}s stage1={:.3}s stage2={:.3}s rounding={:.3}s total={:.3}s | cold: stage1={:.3}s stage2={:.3}s total={:.3}s",
        re.seconds.build,
        re.seconds.stage1,
        re.seconds.stage2,
        re.seconds.rounding,
        re.seconds.total,
        full.seconds.stage1,
        full.seconds.stage2,
        full.seconds.total,
    );
}
