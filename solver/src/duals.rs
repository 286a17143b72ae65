//! Shadow prices of the seat and rater constraints, and where one extra
//! session helps most (found by re-solving, see
//! [`crate::solve::SessionGain`]).
//!
//! Sign convention (HiGHS, minimisation): the dual of a row is the change of
//! the objective per unit increase of its right-hand side. A binding
//! capacity row (≤) therefore has a dual ≤ 0: one more minute of capacity
//! lowers the objective by −dual. Stage-1 duals price capacity in
//! over-target candidate-weeks, stage-2 duals in cost (with the waiting
//! promise held at V*). Both are marginal rates of one optimal basis, and
//! −dual·N only bounds what N more minutes save: at a degenerate optimum
//! another optimal dual may be smaller (0 where seats and raters bind
//! together), and the rate holds only over a range. The recommendations
//! therefore say what a re-solve with the session saves.

use crate::model::{BlockLp, Row};
use crate::scenario::Scenario;
use crate::solve::BlockResult;
use serde::{Deserialize, Serialize};

/// Where a capacity constraint sits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CapacityRef {
    /// Seat minutes of `kind` at `location`.
    Seats { location: String, kind: String },
    /// Rater minutes of `pool`.
    Raters { pool: String },
}

/// The duals of one capacity constraint (one place, one week).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowPrice {
    pub capacity: CapacityRef,
    pub week: usize,
    /// ∂V*/∂minutes (≤ 0): over-target candidate-weeks per extra minute.
    pub stage1: f64,
    /// ∂C/∂minutes (≤ 0), if stage 2 finished.
    pub stage2: Option<f64>,
}

/// "One extra session of N minutes here reduces over-target
/// candidate-weeks (or cost) by X" (DESIGN.md): V if the session lowers V,
/// else C. X is what the LP re-solved with the session gives, not the
/// dual times N: a dual overstates the saving where two limits bind
/// together (seats and raters full in the same week) and past the range
/// where its rate holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    pub capacity: CapacityRef,
    pub week: usize,
    pub session_minutes: f64,
    /// V saved: priority-weighted over-target candidate-weeks (V* less
    /// V* re-solved with the session).
    pub violation_reduction: f64,
    /// Cost saved with V unchanged (C less C re-solved with the session);
    /// 0 when the session lowers V, where stage 1 spends the session on
    /// the waiting promise first and C may go either way.
    pub cost_reduction: f64,
}

/// The place and week of a capacity row; `None` for a flow row.
fn place(sc: &Scenario, kinds: &[String], row: &Row) -> Option<(CapacityRef, usize)> {
    match *row {
        Row::Seat { l, k, t } => Some((
            CapacityRef::Seats {
                location: sc.locations[l].id.clone(),
                kind: kinds[k].clone(),
            },
            t,
        )),
        Row::Rater { q, t } => Some((
            CapacityRef::Raters {
                pool: sc.rating_pools[q].id.clone(),
            },
            t,
        )),
        Row::Flow { .. } => None,
    }
}

/// The duals of every seat and rater row, in block and row order.
pub fn shadow_prices(
    sc: &Scenario,
    kinds: &[String],
    blocks: &[BlockLp],
    results: &[BlockResult],
) -> Vec<ShadowPrice> {
    let mut out = Vec::new();
    for (lp, res) in blocks.iter().zip(results) {
        for (i, row) in lp.rows.iter().enumerate() {
            let Some((capacity, week)) = place(sc, kinds, row) else {
                continue;
            };
            out.push(ShadowPrice {
                capacity,
                week,
                // Clamp the −0.0 and the 1e-12 noise HiGHS leaves on non-binding rows.
                stage1: tidy(res.stage1_duals.get(i).copied().unwrap_or(0.0)),
                stage2: res
                    .stage2_duals
                    .as_ref()
                    .map(|d| tidy(d.get(i).copied().unwrap_or(0.0))),
            });
        }
    }
    out
}

fn tidy(d: f64) -> f64 {
    if d.abs() < 1e-9 {
        0.0
    } else {
        d
    }
}

/// The `limit` places where one extra session of `session_minutes` helps
/// most, with what a re-solve says it saves ([`crate::solve::SessionGain`]:
/// each block's best places, re-solved): ranked by V saved, then by C
/// saved. Places where it saves neither are left out.
pub fn recommendations(
    sc: &Scenario,
    kinds: &[String],
    blocks: &[BlockLp],
    results: &[BlockResult],
    session_minutes: f64,
    limit: usize,
) -> Vec<Recommendation> {
    let recs = blocks
        .iter()
        .zip(results)
        .flat_map(|(lp, res)| res.sessions.iter().map(move |g| (lp, g)))
        .filter_map(|(lp, g)| {
            let (capacity, week) = place(sc, kinds, &lp.rows[g.row])?;
            Some(Recommendation {
                capacity,
                week,
                session_minutes,
                violation_reduction: g.violation,
                cost_reduction: g.cost,
            })
        })
        .collect();
    rank(recs, limit)
}

/// The best `limit` of `recs`: most V saved, then most C saved; ties by
/// week, then place. Drops those that save nothing.
fn rank(mut recs: Vec<Recommendation>, limit: usize) -> Vec<Recommendation> {
    recs.retain(|r| r.violation_reduction > 1e-9 || r.cost_reduction > 1e-9);
    recs.sort_by(|a, b| {
        b.violation_reduction
            .total_cmp(&a.violation_reduction)
            .then(b.cost_reduction.total_cmp(&a.cost_reduction))
            .then(a.week.cmp(&b.week))
            .then(a.capacity.cmp(&b.capacity))
    });
    recs.truncate(limit);
    recs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(pool: &str, week: usize, v: f64, c: f64) -> Recommendation {
        Recommendation {
            capacity: CapacityRef::Raters { pool: pool.into() },
            week,
            session_minutes: 240.0,
            violation_reduction: v,
            cost_reduction: c,
        }
    }

    #[test]
    fn places_rank_by_v_then_c_and_those_saving_nothing_go() {
        let recs = vec![
            rec("C", 0, 0.0, 480.0),
            rec("D", 0, 0.0, 0.0),
            rec("B", 1, 24.0, 0.0),
            rec("A", 2, 85.5, 0.0),
            rec("E", 0, 0.0, 500.0),
            rec("B", 0, 24.0, 0.0),
        ];
        let got: Vec<(String, usize)> = rank(recs, 4)
            .iter()
            .map(|r| match &r.capacity {
                CapacityRef::Raters { pool } => (pool.clone(), r.week),
                CapacityRef::Seats { location, .. } => (location.clone(), r.week),
            })
            .collect();
        assert_eq!(
            got,
            [
                ("A".to_string(), 2),
                ("B".to_string(), 0),
                ("B".to_string(), 1),
                ("E".to_string(), 0)
            ]
        );
    }
}
