//! The numbers behind the report's charts, computed from a plan and the
//! scenario it was solved from. Plain functions, no drawing.
//!
//! The plan holds the allocation and the cohorts but not the forecast or the
//! capacities, so both come from the scenario; the caller has checked that
//! the plan is for this scenario (content hash).

use std::collections::BTreeMap;

use examcap_solver::scenario::{availability, Unavailable};
use examcap_solver::waits::CohortState;
use examcap_solver::{Plan, Scenario};

/// The weekly flow of one exam, summed over regions and locations.
#[derive(Debug, Clone, PartialEq)]
pub struct ExamFlow {
    pub exam: String,
    pub name: String,
    pub target_weeks: i64,
    /// Forecast registrations per week.
    pub registrations: Vec<f64>,
    /// Candidates examined per week (the integral allocation).
    pub examined: Vec<f64>,
    /// Candidates waiting at the end of each week, from the backlog at week 0.
    pub backlog: Vec<f64>,
    /// Waits per registration week (oldest first).
    pub waits: Vec<WeekWait>,
}

/// Predicted waits of the candidates who registered in one week.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeekWait {
    pub registered_week: i64,
    /// Candidate-weighted mean wait in weeks.
    pub mean: f64,
    /// Longest wait in weeks.
    pub max: i64,
    /// Some of these candidates are not examined within the horizon: their
    /// wait is at least what is shown.
    pub at_least: bool,
}

/// Flows of every exam, in scenario order.
pub fn exam_flows(plan: &Plan, sc: &Scenario) -> Vec<ExamFlow> {
    let weeks = sc.horizon_weeks;
    sc.exams
        .iter()
        .map(|e| {
            let mut registrations = vec![0.0; weeks];
            for d in sc.demand.iter().filter(|d| d.exam == e.id) {
                for (t, v) in d.weekly.iter().enumerate().take(weeks) {
                    registrations[t] += v;
                }
            }
            let mut examined = vec![0.0; weeks];
            for r in plan.allocation.iter().filter(|r| r.exam == e.id) {
                if let Some(v) = examined.get_mut(r.week) {
                    *v += r.candidates as f64;
                }
            }
            let mut b: f64 = sc
                .backlog
                .iter()
                .filter(|b| b.exam == e.id)
                .map(|b| b.candidates)
                .sum();
            let backlog = (0..weeks)
                .map(|t| {
                    // Whole candidates examined against fractional forecasts:
                    // a tiny negative remainder is nobody waiting.
                    b = (b + registrations[t] - examined[t]).max(0.0);
                    b
                })
                .collect();
            ExamFlow {
                exam: e.id.clone(),
                name: e.name.clone(),
                target_weeks: e.target_wait_weeks,
                registrations,
                examined,
                backlog,
                waits: week_waits(plan, &e.id),
            }
        })
        .collect()
}

/// Waits per registration week of one exam over all its regions. A week
/// with censored candidates (still waiting when the horizon ends, before
/// their deadline) is left out whole: their wait is not known yet, and the
/// week's served candidates alone, the quick ones, would draw its waits
/// too short (a reviewer saw every line fall to 0 at the horizon's end).
fn week_waits(plan: &Plan, exam: &str) -> Vec<WeekWait> {
    let cohorts = || {
        plan.cohorts
            .iter()
            .filter(|s| s.exam == exam)
            .flat_map(|s| &s.cohorts)
            .filter(|c| c.candidates > 0.0)
    };
    let unknown: std::collections::BTreeSet<i64> = cohorts()
        .filter(|c| c.state == CohortState::Censored)
        .map(|c| c.registered_week)
        .collect();
    // registered week → (candidates, candidate-weeks, max, at_least)
    let mut acc: BTreeMap<i64, (f64, f64, i64, bool)> = BTreeMap::new();
    for c in cohorts().filter(|c| !unknown.contains(&c.registered_week)) {
        let a = acc.entry(c.registered_week).or_insert((0.0, 0.0, 0, false));
        a.0 += c.candidates;
        a.1 += c.candidates * c.wait_weeks as f64;
        a.2 = a.2.max(c.wait_weeks);
        a.3 |= c.state == CohortState::Beyond;
    }
    acc.into_iter()
        .map(|(w, (n, cw, max, at_least))| WeekWait {
            registered_week: w,
            mean: cw / n,
            max,
            at_least,
        })
        .collect()
}

/// How one capacity was used in one week.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Use {
    /// Regular minutes available (after closures).
    pub regular: f64,
    /// Extra minutes that could be bought.
    pub extra: f64,
    /// Minutes the plan uses.
    pub used: f64,
}

/// What a heat-map cell shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UseState {
    /// No capacity at all this week (closed).
    Closed,
    /// Capacity but nothing used.
    Idle,
    /// Within regular capacity; the share of it used, in (0, 1].
    Regular(f64),
    /// Beyond regular capacity; the share of the extra used, in (0, 1].
    Extra(f64),
}

impl Use {
    pub fn state(&self) -> UseState {
        const EPS: f64 = 1e-9;
        if self.regular + self.extra <= EPS {
            UseState::Closed
        } else if self.used <= EPS {
            UseState::Idle
        } else if self.used <= self.regular + EPS {
            UseState::Regular((self.used / self.regular).min(1.0))
        } else if self.extra > EPS {
            UseState::Extra(((self.used - self.regular) / self.extra).clamp(0.0, 1.0))
        } else {
            UseState::Extra(1.0)
        }
    }
}

/// One heat map: a row per capacity, a column per week.
#[derive(Debug, Clone, PartialEq)]
pub struct UseGrid {
    pub rows: Vec<String>,
    /// [row][week]
    pub cells: Vec<Vec<Use>>,
}

/// One capacity's weeks: regular and extra minutes after its
/// unavailability factors, and the minutes the plan uses (`used(t)`).
fn weekly_use(
    weekly: f64,
    extra: f64,
    unavailable: &[Unavailable],
    weeks: usize,
    used: impl Fn(usize) -> f64,
) -> Vec<Use> {
    (0..weeks)
        .map(|t| {
            let f = availability(unavailable, t);
            Use {
                regular: weekly * f,
                extra: extra * f,
                used: used(t),
            }
        })
        .collect()
}

/// Seat use per (location, resource kind) and week.
pub fn seat_use(plan: &Plan, sc: &Scenario) -> UseGrid {
    let weeks = sc.horizon_weeks;
    let seat_minutes: BTreeMap<&str, (&str, f64)> = sc
        .exams
        .iter()
        .map(|e| (e.id.as_str(), (e.resource.as_str(), e.seat_minutes)))
        .collect();
    let mut used: BTreeMap<(&str, &str, usize), f64> = BTreeMap::new();
    for r in &plan.allocation {
        if let Some(&(kind, m)) = seat_minutes.get(r.exam.as_str()) {
            *used
                .entry((r.location.as_str(), kind, r.week))
                .or_insert(0.0) += r.candidates as f64 * m;
        }
    }
    let mut grid = UseGrid {
        rows: Vec::new(),
        cells: Vec::new(),
    };
    for l in &sc.locations {
        for res in &l.resources {
            grid.rows.push(format!("{} {}", l.id, res.kind));
            grid.cells.push(weekly_use(
                res.weekly_minutes,
                res.extra_weekly_minutes,
                &l.unavailable,
                weeks,
                |t| {
                    used.get(&(l.id.as_str(), res.kind.as_str(), t))
                        .copied()
                        .unwrap_or(0.0)
                },
            ));
        }
    }
    grid
}

/// Rater use per pool and week.
pub fn rater_use(plan: &Plan, sc: &Scenario) -> UseGrid {
    let weeks = sc.horizon_weeks;
    let rating: BTreeMap<&str, (&str, f64)> = sc
        .exams
        .iter()
        .filter_map(|e| {
            let pool = e.rating_pool.as_deref()?;
            Some((e.id.as_str(), (pool, e.rating_minutes.unwrap_or(0.0))))
        })
        .collect();
    let mut used: BTreeMap<(&str, usize), f64> = BTreeMap::new();
    for r in &plan.allocation {
        if let Some(&(pool, m)) = rating.get(r.exam.as_str()) {
            *used.entry((pool, r.week)).or_insert(0.0) += r.candidates as f64 * m;
        }
    }
    UseGrid {
        rows: sc.rating_pools.iter().map(|p| p.id.clone()).collect(),
        cells: sc
            .rating_pools
            .iter()
            .map(|p| {
                weekly_use(
                    p.weekly_minutes,
                    p.extra_weekly_minutes,
                    &p.unavailable,
                    weeks,
                    |t| used.get(&(p.id.as_str(), t)).copied().unwrap_or(0.0),
                )
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use examcap_solver::{parse_scenario, plan_scenario, PlanOptions};

    /// The report test fixture, solved: 2 exams, 6 weeks, AMS closed in week 2.
    fn solved() -> (Plan, Scenario) {
        let sc = parse_scenario(include_bytes!("../../tests/fixtures/report.json")).unwrap();
        let plan = plan_scenario(&sc, &PlanOptions::default(), &|_| {}).unwrap();
        (plan, sc)
    }

    #[test]
    fn flows_add_up_to_the_plan_and_the_forecast() {
        let (plan, sc) = solved();
        let flows = exam_flows(&plan, &sc);
        assert_eq!(flows.len(), 2);
        for f in &flows {
            let demand: f64 = sc
                .demand
                .iter()
                .filter(|d| d.exam == f.exam)
                .flat_map(|d| &d.weekly)
                .sum();
            assert!((f.registrations.iter().sum::<f64>() - demand).abs() < 1e-9);
            let examined: u64 = plan
                .allocation
                .iter()
                .filter(|r| r.exam == f.exam)
                .map(|r| r.candidates)
                .sum();
            assert_eq!(f.examined.iter().sum::<f64>(), examined as f64);
            let backlog: f64 = sc
                .backlog
                .iter()
                .filter(|b| b.exam == f.exam)
                .map(|b| b.candidates)
                .sum();
            // Nobody is examined before registering, so the balance is the backlog.
            let last = *f.backlog.last().unwrap();
            assert!(
                (last - (backlog + demand - examined as f64)).abs() < 1e-6,
                "{f:?}"
            );
            assert!(!f.waits.is_empty());
            for w in &f.waits {
                assert!(w.mean <= w.max as f64 + 1e-9 && w.mean >= 0.0, "{w:?}");
            }
        }
        // SPK has a backlog registered in week -2: its cohort is drawn.
        assert_eq!(flows[0].waits[0].registered_week, -2);
        // A registration week with candidates still waiting at the end
        // (censored) is not drawn at all, and every other week is.
        for f in &flows {
            let censored: std::collections::BTreeSet<i64> = plan
                .cohorts
                .iter()
                .filter(|s| s.exam == f.exam)
                .flat_map(|s| &s.cohorts)
                .filter(|c| c.state == CohortState::Censored && c.candidates > 0.0)
                .map(|c| c.registered_week)
                .collect();
            assert!(
                !censored.is_empty(),
                "{}: the fixture ends with waiting candidates",
                f.exam
            );
            let drawn: std::collections::BTreeSet<i64> =
                f.waits.iter().map(|w| w.registered_week).collect();
            assert!(
                drawn.is_disjoint(&censored),
                "{}: {drawn:?} {censored:?}",
                f.exam
            );
            let all: std::collections::BTreeSet<i64> = plan
                .cohorts
                .iter()
                .filter(|s| s.exam == f.exam)
                .flat_map(|s| &s.cohorts)
                .filter(|c| c.candidates > 0.0)
                .map(|c| c.registered_week)
                .collect();
            assert_eq!(drawn, &all - &censored, "{}", f.exam);
        }
    }

    #[test]
    fn use_is_the_allocation_within_capacity() {
        let (plan, sc) = solved();
        let seats = seat_use(&plan, &sc);
        assert_eq!(
            seats.rows,
            [
                "AMS speaking_booth",
                "AMS pc",
                "UTR speaking_booth",
                "UTR pc"
            ]
        );
        let minutes = |exam: &str| sc.exams.iter().find(|e| e.id == exam).unwrap().seat_minutes;
        let allocated: f64 = plan
            .allocation
            .iter()
            .map(|r| r.candidates as f64 * minutes(&r.exam))
            .sum();
        let used: f64 = seats.cells.iter().flatten().map(|u| u.used).sum();
        assert!((used - allocated).abs() < 1e-6);
        for (row, cells) in seats.rows.iter().zip(&seats.cells) {
            for (t, u) in cells.iter().enumerate() {
                assert!(
                    u.used <= u.regular + u.extra + 1e-6,
                    "{row} week {t}: {u:?}"
                );
                if row.starts_with("AMS") && t == 2 {
                    assert_eq!(u.state(), UseState::Closed);
                }
            }
        }
        let raters = rater_use(&plan, &sc);
        assert_eq!(raters.rows, ["RATERS"]);
        let spk: u64 = plan
            .allocation
            .iter()
            .filter(|r| r.exam == "SPK")
            .map(|r| r.candidates)
            .sum();
        let rated: f64 = raters.cells[0].iter().map(|u| u.used).sum();
        assert!((rated - spk as f64 * 15.0).abs() < 1e-6);
    }

    #[test]
    fn use_states() {
        let u = |regular, extra, used| {
            Use {
                regular,
                extra,
                used,
            }
            .state()
        };
        assert_eq!(u(0.0, 0.0, 0.0), UseState::Closed);
        assert_eq!(u(100.0, 0.0, 0.0), UseState::Idle);
        assert_eq!(u(100.0, 50.0, 25.0), UseState::Regular(0.25));
        assert_eq!(u(100.0, 50.0, 100.0), UseState::Regular(1.0));
        assert_eq!(u(100.0, 50.0, 125.0), UseState::Extra(0.5));
        assert_eq!(u(0.0, 50.0, 50.0), UseState::Extra(1.0));
    }
}
