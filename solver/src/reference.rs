//! The model of DESIGN.md written out literally, through good_lp, on any of
//! its backends: one LP for the whole scenario (no blocks, no reductions),
//! stage 2 with the global row Σ π·s ≤ V*·(1+1e-7) + 1e-6.
//!
//! This is slow and simple on purpose: it is the yardstick the fast path in
//! [`crate::solve`] is checked against (tests run it on HiGHS and on the
//! pure-Rust interior-point solver Clarabel).

use crate::scenario::{availability, Scenario};
use crate::solve::{STAGE2_ABS_SLACK, STAGE2_REL_SLACK};
use good_lp::{
    constraint, variable, Expression, ProblemVariables, ResolutionError, Solution, SolverModel,
};
use std::collections::BTreeMap;

/// V* and C of the LP.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReferenceValues {
    pub violation: f64,
    pub cost: f64,
}

struct Built {
    vars: ProblemVariables,
    constraints: Vec<good_lp::Constraint>,
    violation: Expression,
    cost: Expression,
}

/// x[r,l,e,t] held at a value (`None`: free), by (region, exam, location,
/// week) ids: how a re-plan's frozen weeks and fixed exams are written
/// independently of [`crate::reschedule`], to check it.
pub type FixedX<'a> = &'a dyn Fn(&str, &str, &str, usize) -> Option<f64>;

/// Builds every variable and constraint of DESIGN.md "The model".
fn build(sc: &Scenario, fixed: FixedX) -> Built {
    let t_max = sc.horizon_weeks;
    let mut vars = ProblemVariables::new();
    let mut constraints = Vec::new();
    let mut violation = Expression::from(0.0);
    let mut cost = Expression::from(0.0);
    let w = sc.weights.waiting_per_candidate_week;

    // d[r,e,t] for t >= 0, and backlog per registration week τ < 0.
    let mut demand: BTreeMap<(&str, &str), Vec<f64>> = BTreeMap::new();
    let mut past: BTreeMap<(&str, &str), BTreeMap<i64, f64>> = BTreeMap::new();
    for d in &sc.demand {
        demand.insert((&d.region, &d.exam), d.weekly.clone());
    }
    for b in &sc.backlog {
        *past
            .entry((&b.region, &b.exam))
            .or_default()
            .entry(b.registered_week)
            .or_insert(0.0) += b.candidates;
    }

    // Seat and rater usage expressions, filled as x variables are made.
    let mut seats: BTreeMap<(&str, &str, usize), Expression> = BTreeMap::new();
    let mut raters: BTreeMap<(&str, usize), Expression> = BTreeMap::new();

    for region in &sc.regions {
        for exam in &sc.exams {
            let d = demand
                .get(&(region.id.as_str(), exam.id.as_str()))
                .cloned()
                .unwrap_or_else(|| vec![0.0; t_max]);
            let backlog = past
                .get(&(region.id.as_str(), exam.id.as_str()))
                .cloned()
                .unwrap_or_default();
            let reg = |tau: i64| -> f64 {
                if tau >= 0 {
                    d[tau as usize]
                } else {
                    backlog.get(&tau).copied().unwrap_or(0.0)
                }
            };
            // A(r): options whose location has e's kind with capacity > 0 (raw).
            let options: Vec<(&str, f64)> = region
                .options
                .iter()
                .filter(|o| {
                    sc.locations.iter().any(|l| {
                        l.id == o.location
                            && l.resources.iter().any(|r| {
                                r.kind == exam.resource
                                    && r.weekly_minutes + r.extra_weekly_minutes > 0.0
                            })
                    })
                })
                .map(|o| (o.location.as_str(), o.travel_cost))
                .collect();
            let mut prev_b = Expression::from(backlog.values().sum::<f64>());
            for (t, &d_t) in d.iter().enumerate() {
                let mut served = Expression::from(0.0);
                for &(l, travel) in &options {
                    let x = match fixed(&region.id, &exam.id, l, t) {
                        Some(v) => vars.add(variable().min(v).max(v)),
                        None => vars.add(variable().min(0.0)),
                    };
                    served += x;
                    cost += travel * x;
                    *seats.entry((l, &exam.resource, t)).or_default() += exam.seat_minutes * x;
                    if let (Some(q), Some(a)) = (&exam.rating_pool, exam.rating_minutes) {
                        *raters.entry((q, t)).or_default() += a * x;
                    }
                }
                let b = vars.add(variable().min(0.0));
                let s = vars.add(variable().min(0.0));
                // 1. flow
                constraints.push(constraint!(b == prev_b.clone() + d_t - served));
                // 4. waiting target
                let window: f64 = ((t as i64 - exam.target_wait_weeks + 1)..=t as i64)
                    .map(reg)
                    .sum();
                constraints.push(constraint!(b <= window + s));
                violation += exam.priority * s;
                cost += w * b;
                prev_b = Expression::from(b);
            }
        }
    }
    // 2. seats
    for ((l, k, t), used) in seats {
        let loc = sc
            .locations
            .iter()
            .find(|x| x.id == l)
            .expect("option resolves");
        let res = loc
            .resources
            .iter()
            .find(|r| r.kind == k)
            .expect("kind exists");
        let f = availability(&loc.unavailable, t);
        let y = vars.add(variable().min(0.0).max(res.extra_weekly_minutes * f));
        cost += res.extra_cost_per_minute * y;
        constraints.push(constraint!(used <= res.weekly_minutes * f + y));
    }
    // 3. raters
    for ((q, t), used) in raters {
        let pool = sc
            .rating_pools
            .iter()
            .find(|p| p.id == q)
            .expect("pool resolves");
        let f = availability(&pool.unavailable, t);
        let z = vars.add(variable().min(0.0).max(pool.extra_weekly_minutes * f));
        cost += pool.extra_cost_per_minute * z;
        constraints.push(constraint!(used <= pool.weekly_minutes * f + z));
    }
    Built {
        vars,
        constraints,
        violation,
        cost,
    }
}

/// Solves stage 1 and stage 2 as DESIGN.md writes them with the given
/// good_lp backend (`backend` turns the unsolved problem into a model).
pub fn solve_reference<M, F>(sc: &Scenario, backend: F) -> Result<ReferenceValues, ResolutionError>
where
    M: SolverModel<Error = ResolutionError>,
    F: Fn(good_lp::variable::UnsolvedProblem) -> M,
{
    solve_reference_fixed(sc, &|_, _, _, _| None, backend)
}

/// [`solve_reference`] with some x held at given values.
pub fn solve_reference_fixed<M, F>(
    sc: &Scenario,
    fixed: FixedX,
    backend: F,
) -> Result<ReferenceValues, ResolutionError>
where
    M: SolverModel<Error = ResolutionError>,
    F: Fn(good_lp::variable::UnsolvedProblem) -> M,
{
    let solve_with = |objective: &dyn Fn(&Built) -> Expression,
                      budget: Option<f64>|
     -> Result<(f64, f64), ResolutionError> {
        let built = build(sc, fixed);
        let obj = objective(&built);
        let Built {
            vars,
            constraints,
            violation,
            cost,
        } = built;
        let mut model = backend(vars.minimise(obj));
        for c in constraints {
            model.add_constraint(c);
        }
        if let Some(cap) = budget {
            model.add_constraint(constraint!(violation.clone() <= cap));
        }
        let sol = model.solve()?;
        Ok((sol.eval(&violation), sol.eval(&cost)))
    };
    let (v_star, _) = solve_with(&|b| b.violation.clone(), None)?;
    let cap = v_star * (1.0 + STAGE2_REL_SLACK) + STAGE2_ABS_SLACK;
    let (_, c) = solve_with(&|b| b.cost.clone(), Some(cap))?;
    Ok(ReferenceValues {
        violation: v_star,
        cost: c,
    })
}

/// [`solve_reference`] on HiGHS through good_lp (one thread, like the fast path).
pub fn solve_reference_highs(sc: &Scenario) -> Result<ReferenceValues, ResolutionError> {
    solve_reference(sc, |p| good_lp::highs(p).set_threads(1))
}

/// [`solve_reference_fixed`] on HiGHS through good_lp.
pub fn solve_reference_fixed_highs(
    sc: &Scenario,
    fixed: FixedX,
) -> Result<ReferenceValues, ResolutionError> {
    solve_reference_fixed(sc, fixed, |p| good_lp::highs(p).set_threads(1))
}

/// [`solve_reference`] on Clarabel (interior point, pure Rust).
pub fn solve_reference_clarabel(sc: &Scenario) -> Result<ReferenceValues, ResolutionError> {
    solve_reference(sc, good_lp::clarabel)
}
