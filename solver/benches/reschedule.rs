//! Rescheduling after a surge, timed: the generated national scenario
//! (seed 1, 52 weeks) is solved and its plan taken as published; then
//! Spreken B1 ×1.6 in weeks 10–16 with F = 4 weeks frozen. Each run times
//! the first answer (touched exams + greedy repair), the optimal re-plan
//! (touched exams + re-plan, σ = 0 and σ = 0.1), and, in the same process, a cold
//! full solve of the shocked scenario. Prints median and p95 of each.
//!
//! `cargo bench -p examcap-solver --bench reschedule [-- RUNS [COLD_RUNS]]`
//! (defaults: 20 runs, 5 cold solves). `SURGE=EXAM:MULT:FROM:TO[:REGION]`
//! times another shock (default `SPREKEN_B1:1.6:10:16`, every region).

use examcap_solver::generate::{national, GenerateOptions};
use examcap_solver::repair::repair;
use examcap_solver::reschedule::{diff, replan, touched_exams};
use examcap_solver::{plan_scenario, PlanOptions, Scenario};
use std::time::Instant;

const FREEZE: usize = 4;
/// The benchmark sets no σ (0); 0.1 is the CLI example's.
const SIGMAS: [f64; 2] = [0.0, 0.1];

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

/// The shock: `exam` × `mult` in weeks `from..=to`, in every region or in
/// `region` only.
struct Surge {
    exam: String,
    mult: f64,
    from: usize,
    to: usize,
    region: Option<String>,
}

impl Surge {
    /// `EXAM:MULT:FROM:TO[:REGION]` from the `SURGE` variable; the issue's
    /// shock (SPREKEN_B1:1.6:10:16) without it.
    fn from_env() -> Surge {
        let spec = std::env::var("SURGE").unwrap_or_else(|_| "SPREKEN_B1:1.6:10:16".into());
        let parts: Vec<&str> = spec.split(':').collect();
        fn bad<T>(spec: &str) -> T {
            panic!("SURGE={spec:?}: expected EXAM:MULT:FROM:TO[:REGION]")
        }
        if !(4..=5).contains(&parts.len()) {
            bad::<()>(&spec);
        }
        Surge {
            exam: parts[0].into(),
            mult: parts[1].parse().unwrap_or_else(|_| bad(&spec)),
            from: parts[2].parse().unwrap_or_else(|_| bad(&spec)),
            to: parts[3].parse().unwrap_or_else(|_| bad(&spec)),
            region: parts.get(4).map(|r| r.to_string()),
        }
    }

    fn apply(&self, base: &Scenario) -> Scenario {
        let mut sc = base.clone();
        sc.name = format!("{}+surge", base.name);
        let hit = |d: &examcap_solver::scenario::Demand| {
            d.exam == self.exam && self.region.as_ref().is_none_or(|r| &d.region == r)
        };
        for d in sc.demand.iter_mut().filter(|d| hit(d)) {
            for w in d.weekly.iter_mut().take(self.to + 1).skip(self.from) {
                *w *= self.mult;
            }
        }
        sc
    }
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
    let cold_opts = PlanOptions {
        recommendations: 0,
        ..PlanOptions::default()
    };
    let published = plan_scenario(&base, &opts, &|_| {}).expect("base plan");
    let surge = Surge::from_env();
    let shocked = surge.apply(&base);

    let (mut first, mut cold) = (Vec::new(), Vec::new());
    let mut optimal: Vec<Vec<f64>> = vec![Vec::new(); SIGMAS.len()];
    let (mut rep, mut re, mut full) = (None, Vec::new(), None);
    // Cold solves are interleaved with the first runs, so that both see the
    // same machine load.
    for i in 0..runs {
        let t0 = Instant::now();
        let touched = touched_exams(&base, &shocked);
        let r = repair(&shocked, &published, &touched, FREEZE).expect("repair");
        first.push(t0.elapsed().as_secs_f64());
        rep = Some(r);

        re.clear();
        for (k, &sigma) in SIGMAS.iter().enumerate() {
            let t0 = Instant::now();
            let touched = touched_exams(&base, &shocked);
            let p = replan(&shocked, &published, &touched, FREEZE, sigma, &opts).expect("re-plan");
            optimal[k].push(t0.elapsed().as_secs_f64());
            re.push(p);
        }

        if i < cold_runs {
            let t0 = Instant::now();
            // Like the re-plan, without the recommendations' session search.
            let p = plan_scenario(&shocked, &cold_opts, &|_| {}).expect("cold solve");
            cold.push(t0.elapsed().as_secs_f64());
            full = Some(p);
        }
    }
    let (rep, full) = (rep.expect("a run"), full.expect("a run"));
    println!(
        "national seed 1, 52 weeks; {} x{} weeks {}-{} in {}; F={FREEZE}; touched={:?}",
        surge.exam,
        surge.mult,
        surge.from,
        surge.to,
        surge.region.as_deref().unwrap_or("every region"),
        touched_exams(&base, &shocked)
    );
    line("first answer (repair)", &first);
    line("cold full solve", &cold);
    for (k, sigma) in SIGMAS.iter().enumerate() {
        line(&format!("optimal re-plan, sigma={sigma}"), &optimal[k]);
        println!(
            "  speed-up over the cold solve (medians): {:.1}x",
            quantile(&cold, 0.5) / quantile(&optimal[k], 0.5)
        );
    }
    println!(
        "published V*={:.3} C={:.3} | repair V={:.3} C={:.3} placed={} removed={} | cold V*={:.3} C={:.3} cols={}",
        published.stage1_violation,
        published.stage2_cost,
        rep.values.violation,
        rep.values.cost,
        rep.placed,
        rep.removed,
        full.stage1_violation,
        full.stage2_cost,
        full.solver.lp_columns,
    );
    for (sigma, re) in SIGMAS.iter().zip(&re) {
        let shown: u64 = diff(&published, re)
            .iter()
            .map(|m| m.delta().unsigned_abs())
            .sum();
        println!(
            "re-plan sigma={sigma}: V*={:.3} C={:.3} integral V={:.3} C={:.3} moved={shown} | cols={} rows={} | build={:.3}s stage1={:.3}s stage2={:.3}s rounding={:.3}s total={:.3}s",
            re.stage1_violation,
            re.stage2_cost,
            re.rounded.violation,
            re.rounded.cost,
            re.solver.lp_columns,
            re.solver.lp_rows,
            re.seconds.build,
            re.seconds.stage1,
            re.seconds.stage2,
            re.seconds.rounding,
            re.seconds.total,
        );
    }
}
