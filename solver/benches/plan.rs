//! End-to-end plan benchmark: parse → validate → both stages → rounding →
//! waits → duals, on the generated national scenario (seed 1, 52 weeks) and
//! its 4-way region split. Prints medians and the process's peak memory.
//!
//! `cargo bench -p examcap-solver --bench plan [-- RUNS [national|split4|split4-unmerged]]`
//!
//! `split4-unmerged` turns off the merging of proportional twin regions, to
//! show what the plain block-decomposed LP costs at 4× the size.

use examcap_solver::generate::{national, split_regions, GenerateOptions};
use examcap_solver::{parse_scenario, plan_scenario, PlanOptions};
use std::time::Instant;

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let runs: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(5);
    let which: Vec<&str> = match args.get(1).map(String::as_str) {
        Some(w) => vec![w],
        None => vec!["national", "split4"],
    };
    let base = national(&GenerateOptions {
        seed: 1,
        weeks: 52,
        ..GenerateOptions::default()
    });
    for name in which {
        let sc = match name {
            "split4" | "split4-unmerged" => split_regions(&base, 4),
            _ => base.clone(),
        };
        let opts = PlanOptions {
            merge_twins: name != "split4-unmerged",
            ..PlanOptions::default()
        };
        let bytes = serde_json::to_vec(&sc).expect("serialises");
        let mut times = Vec::new();
        let mut last = None;
        for _ in 0..runs {
            let t0 = Instant::now();
            let parsed = parse_scenario(&bytes).expect("generated scenario is valid");
            let plan = plan_scenario(&parsed, &opts, &|_| {}).expect("solves");
            times.push(t0.elapsed().as_secs_f64());
            last = Some(plan);
        }
        let plan = last.expect("at least one run");
        println!(
            "{name}: runs={runs} median={:.3}s min={:.3}s max={:.3}s | cols={} rows={} blocks={} | V*={:.6} C={:.6} | stage1={:.3}s stage2={:.3}s build={:.3}s rounding={:.3}s waits={:.3}s duals={:.3}s | peak_rss={:.0} MiB",
            median(times.clone()),
            times.iter().copied().fold(f64::INFINITY, f64::min),
            times.iter().copied().fold(0.0, f64::max),
            plan.solver.lp_columns,
            plan.solver.lp_rows,
            plan.solver.blocks,
            plan.stage1_violation,
            plan.stage2_cost,
            plan.seconds.stage1,
            plan.seconds.stage2,
            plan.seconds.build,
            plan.seconds.rounding,
            plan.seconds.waits,
            plan.seconds.duals,
            peak_rss_mib().unwrap_or(f64::NAN),
        );
    }
}
