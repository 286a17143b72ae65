//! Predicted waiting times under FIFO, on the integral allocation.
//!
//! The cohort of registration week τ waits t − τ, where t is the first week
//! in which cumulative exams reach cumulative registrations up to τ (its last
//! candidate is examined). Registrations may be fractional forecasts (a
//! drill's ×1.6, a region split in parts) while exams are whole: a cohort is
//! served only when the exams reach its registrations in full, so a week in
//! which half a candidate registers waits for the next exam, as DESIGN reads.
//!
//! A cohort not served within the horizon is *beyond* when its deadline
//! τ + W_e lies inside the horizon (a promise visibly broken), and
//! *censored* otherwise (the horizon ends before we can tell): censored
//! cohorts are counted, never ranked in the percentiles.

use crate::model::Instance;
use serde::{Deserialize, Serialize};

/// What became of one registration cohort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CohortState {
    Served,
    Beyond,
    Censored,
}

/// One weekly registration cohort of a (region, exam).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cohort {
    pub registered_week: i64,
    pub candidates: f64,
    pub state: CohortState,
    /// Weeks waited (served), or at least this many (beyond / censored:
    /// the weeks from registration to the end of the horizon).
    pub wait_weeks: i64,
    /// Week by which the target says they should have been examined.
    pub deadline_week: i64,
}

/// A weighted percentile; `at_least` when cohorts not served within the
/// horizon could make it longer: `weeks` is then a lower bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Percentile {
    pub weeks: i64,
    pub at_least: bool,
}

impl std::fmt::Display for Percentile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.at_least {
            write!(f, ">={}", self.weeks)
        } else {
            write!(f, "{}", self.weeks)
        }
    }
}

/// National waiting-time figures for one exam.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExamWaits {
    pub exam: String,
    pub target_weeks: i64,
    /// Weighted by candidates, over served and beyond cohorts; `None` if
    /// there are none. A beyond cohort's wait is only bounded below (the
    /// weeks to the horizon's end): a figure is the percentile with those
    /// bounds taken as waits, `at_least` when an endless wait for them would
    /// give more. Both orderings keep p50 ≤ p90 ≤ max.
    pub p50: Option<Percentile>,
    pub p90: Option<Percentile>,
    pub max: Option<Percentile>,
    pub served_candidates: f64,
    /// Candidates served later than their target (within the horizon).
    pub late_candidates: f64,
    pub beyond_candidates: f64,
    pub censored_candidates: f64,
}

/// FIFO cohorts of one stream given its exams per week.
pub fn cohorts(inst: &Instance, stream: usize, exams: &[f64]) -> Vec<Cohort> {
    let st = &inst.streams[stream];
    let target = inst.target[st.exam];
    let horizon = inst.weeks as i64;
    let mut cum_exams = Vec::with_capacity(exams.len());
    let mut acc = 0.0;
    for &x in exams {
        acc += x;
        cum_exams.push(acc);
    }
    let mut out = Vec::new();
    let mut cum_reg = 0.0;
    let mut t = 0usize;
    // The weeks that have registrations: the backlog's (one entry per week,
    // in order, all before week 0) and the horizon's. Not every week from
    // the oldest backlog on: a backlog row may date from 10^9 weeks back.
    let weeks = st
        .backlog
        .iter()
        .copied()
        .chain((0..horizon).map(|tau| (tau, st.registrations(tau))));
    for (tau, n) in weeks {
        cum_reg += n;
        if n <= 0.0 {
            continue;
        }
        // Exams only happen from week 0 on, and never before registration.
        t = t.max(tau.max(0) as usize);
        while t < exams.len() && cum_exams[t] + 1e-6 < cum_reg {
            t += 1;
        }
        let deadline = tau + target;
        let (state, wait) = if t < exams.len() {
            (CohortState::Served, t as i64 - tau)
        } else if deadline < horizon {
            (CohortState::Beyond, horizon - tau)
        } else {
            (CohortState::Censored, horizon - tau)
        };
        out.push(Cohort {
            registered_week: tau,
            candidates: n,
            state,
            wait_weeks: wait,
            deadline_week: deadline,
        });
    }
    out
}

/// The weighted percentile `p` of (wait, weight) pairs sorted by wait.
fn percentile_of(sorted: &[(i64, f64)], total: f64, p: f64) -> Option<i64> {
    let goal = p * total;
    let mut acc = 0.0;
    for &(w, n) in sorted {
        acc += n;
        if acc + 1e-9 >= goal {
            return Some(w);
        }
    }
    sorted.last().map(|&(w, _)| w)
}

/// The weighted percentiles `ps` of waits where some are only lower bounds
/// (`unserved`: not examined within the horizon). The true percentile lies
/// between the one with every bound taken as the wait and the one with
/// every bound taken as endless: `weeks` is the first, `at_least` says
/// the second is larger, so the figure is a bound and not the value.
fn percentiles<const N: usize>(
    ranked: &[(i64, f64, bool)],
    ps: [f64; N],
) -> [Option<Percentile>; N] {
    let total: f64 = ranked.iter().map(|r| r.1).sum();
    let mut low: Vec<(i64, f64)> = ranked.iter().map(|&(w, n, _)| (w, n)).collect();
    low.sort_by_key(|r| r.0);
    let mut high: Vec<(i64, f64)> = ranked
        .iter()
        .map(|&(w, n, unserved)| (if unserved { i64::MAX } else { w }, n))
        .collect();
    high.sort_by_key(|r| r.0);
    ps.map(|p| {
        if total <= 0.0 {
            return None;
        }
        let weeks = percentile_of(&low, total, p)?;
        let at_most = percentile_of(&high, total, p)?;
        Some(Percentile {
            weeks,
            at_least: at_most > weeks,
        })
    })
}

/// National figures per exam from every stream's cohorts.
pub fn exam_waits(inst: &Instance, exam_ids: &[String], all: &[Vec<Cohort>]) -> Vec<ExamWaits> {
    exam_ids
        .iter()
        .enumerate()
        .map(|(e, id)| {
            let mut ranked: Vec<(i64, f64, bool)> = Vec::new();
            let mut w = ExamWaits {
                exam: id.clone(),
                target_weeks: inst.target[e],
                p50: None,
                p90: None,
                max: None,
                served_candidates: 0.0,
                late_candidates: 0.0,
                beyond_candidates: 0.0,
                censored_candidates: 0.0,
            };
            for (si, cs) in all.iter().enumerate() {
                if inst.streams[si].exam != e {
                    continue;
                }
                for c in cs {
                    match c.state {
                        CohortState::Served => {
                            w.served_candidates += c.candidates;
                            if c.wait_weeks > inst.target[e] {
                                w.late_candidates += c.candidates;
                            }
                            ranked.push((c.wait_weeks, c.candidates, false));
                        }
                        CohortState::Beyond => {
                            w.beyond_candidates += c.candidates;
                            ranked.push((c.wait_weeks, c.candidates, true));
                        }
                        CohortState::Censored => w.censored_candidates += c.candidates,
                    }
                }
            }
            [w.p50, w.p90, w.max] = percentiles(&ranked, [0.5, 0.9, 1.0]);
            w
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::parse_scenario;

    /// One region and exam (target 1 week), `weekly` registrations, and a
    /// backlog of `backlog` candidates from week −2.
    fn instance(weekly: &[f64], backlog: f64) -> Instance {
        let rows: &[(i64, f64)] = if backlog > 0.0 { &[(-2, backlog)] } else { &[] };
        instance_with(weekly, rows)
    }

    /// The same with backlog rows (registered_week, candidates).
    fn instance_with(weekly: &[f64], backlog: &[(i64, f64)]) -> Instance {
        let rows: Vec<serde_json::Value> = backlog
            .iter()
            .map(|&(w, c)| {
                serde_json::json!({"region": "R", "exam": "E", "registered_week": w, "candidates": c})
            })
            .collect();
        let sc = serde_json::json!({
            "format": "examcap/scenario@1", "name": "w", "start_week": "2027-W01",
            "horizon_weeks": weekly.len(),
            "exams": [{"id": "E", "name": "E", "resource": "room", "seat_minutes": 60,
                       "target_wait_weeks": 1}],
            "locations": [{"id": "L", "name": "L", "resources": [
                {"kind": "room", "weekly_minutes": 600, "extra_weekly_minutes": 0,
                 "extra_cost_per_minute": 0}]}],
            "regions": [{"id": "R", "name": "R", "options": [{"location": "L", "travel_cost": 0}]}],
            "demand": [{"region": "R", "exam": "E", "weekly": weekly}],
            "backlog": rows
        });
        let sc = parse_scenario(sc.to_string().as_bytes()).expect("valid scenario");
        Instance::new(&sc, false)
    }

    fn states(cs: &[Cohort]) -> Vec<(i64, CohortState, i64)> {
        cs.iter()
            .map(|c| (c.registered_week, c.state, c.wait_weeks))
            .collect()
    }

    #[test]
    fn half_a_candidate_a_week_waits_for_the_next_whole_exam() {
        // Registrations 0.5 a week; one exam in weeks 1, 3 and 5. Cumulative
        // registrations 0.5, 1, 1.5, 2, ...; exams 0, 1, 1, 2, 2, 3: the
        // cohort of week 0 is reached in week 1, that of week 2 in week 3.
        let inst = instance(&[0.5; 6], 0.0);
        let cs = cohorts(&inst, 0, &[0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
        use CohortState::*;
        assert_eq!(
            states(&cs),
            vec![
                (0, Served, 1),
                (1, Served, 0),
                (2, Served, 1),
                (3, Served, 0),
                (4, Served, 1),
                (5, Served, 0)
            ]
        );
        let w = exam_waits(&inst, &["E".into()], &[cs]);
        let p = |p: Option<Percentile>| p.map(|p| (p.weeks, p.at_least));
        assert_eq!(p(w[0].p50), Some((0, false)));
        assert_eq!(p(w[0].p90), Some((1, false)));
        assert_eq!(p(w[0].max), Some((1, false)));
    }

    #[test]
    fn a_backlog_from_long_ago_is_one_cohort_among_the_registration_weeks() {
        // Backlog rows from week −10^9 and week −3, then 1 a week; exams 2,
        // 1, 1. FIFO: both backlog cohorts are reached in week 0, week 0's
        // in week 1, week 1's in week 2; week 2's is not reached (deadline
        // 3 = the horizon's end: censored). The cohorts are the weeks with
        // registrations, not every week since 10^9 weeks ago.
        let inst = instance_with(&[1.0; 3], &[(-3, 1.0), (-1_000_000_000, 1.0)]);
        let cs = cohorts(&inst, 0, &[2.0, 1.0, 1.0]);
        use CohortState::*;
        assert_eq!(
            states(&cs),
            vec![
                (-1_000_000_000, Served, 1_000_000_000),
                (-3, Served, 3),
                (0, Served, 1),
                (1, Served, 1),
                (2, Censored, 1)
            ]
        );
    }

    #[test]
    fn nobody_examined_is_nobody_served() {
        // 0.4 a week and a 0.7 backlog, never examined: no cohort is served.
        let inst = instance(&[0.4; 5], 0.7);
        let cs = cohorts(&inst, 0, &[0.0; 5]);
        assert!(cs.iter().all(|c| c.state != CohortState::Served), "{cs:?}");
        // The backlog (deadline week −1) and weeks 0..=3 (deadline ≤ 4) are
        // beyond; week 4's deadline is the horizon's end: censored.
        let beyond: Vec<i64> = cs
            .iter()
            .filter(|c| c.state == CohortState::Beyond)
            .map(|c| c.registered_week)
            .collect();
        assert_eq!(beyond, vec![-2, 0, 1, 2, 3]);
        let w = exam_waits(&inst, &["E".into()], &[cs]);
        assert_eq!(w[0].served_candidates, 0.0);
        assert!((w[0].beyond_candidates - (0.7 + 4.0 * 0.4)).abs() < 1e-9);
    }

    #[test]
    fn unserved_cohorts_bound_the_percentiles_from_below() {
        // 5 candidates served after 13 weeks; 10 never examined, waiting at
        // least 3, 5, 8 and 9 weeks (2.5 each). p50 lies among the unserved:
        // at least 8, not the 13 of the served (nothing says they wait that
        // long); p90 and max at least 13.
        let c = |w: i64, n: f64, unserved: bool| (w, n, unserved);
        let ranked = [
            c(13, 5.0, false),
            c(3, 2.5, true),
            c(5, 2.5, true),
            c(8, 2.5, true),
            c(9, 2.5, true),
        ];
        let at = |p| percentiles(&ranked, [p])[0].map(|p| (p.weeks, p.at_least));
        assert_eq!(at(0.5), Some((8, true)));
        assert_eq!(at(0.9), Some((13, true)));
        assert_eq!(at(1.0), Some((13, true)));
        // Served ones all below the percentile's position: exact.
        let ranked = [c(1, 8.0, false), c(2, 1.0, false), c(6, 1.0, true)];
        let at = |p| percentiles(&ranked, [p])[0].map(|p| (p.weeks, p.at_least));
        assert_eq!(at(0.5), Some((1, false)));
        assert_eq!(at(0.9), Some((2, false)));
        assert_eq!(at(1.0), Some((6, true)));
    }

    #[test]
    fn whole_registrations_are_served_when_the_exams_reach_them() {
        // 2 a week, 3 exams a week from week 1: cumulative exams 0, 3, 6, 9
        // against registrations 2, 4, 6, 8.
        let inst = instance(&[2.0; 4], 0.0);
        let cs = cohorts(&inst, 0, &[0.0, 3.0, 3.0, 3.0]);
        use CohortState::*;
        assert_eq!(
            states(&cs),
            vec![
                (0, Served, 1),
                (1, Served, 1),
                (2, Served, 0),
                (3, Served, 0)
            ]
        );
    }
}
