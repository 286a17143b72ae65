//! Predicted waiting times under FIFO, on the integral allocation.
//!
//! The cohort of registration week τ waits t − τ, where t is the first week
//! in which cumulative exams reach cumulative registrations up to τ (its last
//! candidate is examined). Registrations may be fractional forecasts; a
//! cohort counts as served once all its *whole* candidates are (cumulative
//! exams ≥ ⌊cumulative registrations⌋).
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

/// A weighted percentile; `at_least` when it falls on a cohort that was not
/// served within the horizon, so the true wait is longer.
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
    /// there are none. Beyond cohorts rank above all served ones and show as
    /// `at_least` max(their lower bound, the longest served wait), so
    /// p50 ≤ p90 ≤ max always holds.
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
    let first = st.backlog.first().map_or(0, |&(w, _)| w.min(0));
    let mut cum_exams = Vec::with_capacity(exams.len());
    let mut acc = 0.0;
    for &x in exams {
        acc += x;
        cum_exams.push(acc);
    }
    let mut out = Vec::new();
    let mut cum_reg = 0.0;
    let mut t = 0usize;
    for tau in first..horizon {
        let n = st.registrations(tau);
        cum_reg += n;
        if n <= 0.0 {
            continue;
        }
        let need = (cum_reg + 1e-6).floor();
        // Exams only happen from week 0 on, and never before registration.
        t = t.max(tau.max(0) as usize);
        while t < exams.len() && cum_exams[t] + 1e-6 < need {
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

/// Weighted percentile over (wait, weight, at_least), sorted served-first by wait.
fn percentile(sorted: &[(i64, f64, bool)], total: f64, p: f64) -> Option<Percentile> {
    if total <= 0.0 {
        return None;
    }
    let goal = p * total;
    let mut acc = 0.0;
    for &(w, n, at_least) in sorted {
        acc += n;
        if acc + 1e-9 >= goal {
            return Some(Percentile { weeks: w, at_least });
        }
    }
    sorted.last().map(|&(w, _, a)| Percentile {
        weeks: w,
        at_least: a,
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
            // Beyond cohorts rank above every served one: their wait is unknown
            // but longer than the horizon allowed; among themselves by lower
            // bound. So that the figures stay ordered (p90 ≤ max), a beyond
            // cohort is shown as at least the longest served wait.
            let longest_served = ranked
                .iter()
                .filter(|r| !r.2)
                .map(|r| r.0)
                .max()
                .unwrap_or(0);
            for r in ranked.iter_mut().filter(|r| r.2) {
                r.0 = r.0.max(longest_served);
            }
            ranked.sort_by(|a, b| a.2.cmp(&b.2).then(a.0.cmp(&b.0)));
            let total: f64 = ranked.iter().map(|r| r.1).sum();
            w.p50 = percentile(&ranked, total, 0.5);
            w.p90 = percentile(&ranked, total, 0.9);
            w.max = percentile(&ranked, total, 1.0);
            w
        })
        .collect()
}
