//! Shadow prices of the seat and rater constraints, and where one extra
//! session helps most.
//!
//! Sign convention (HiGHS, minimisation): the dual of a row is the change of
//! the objective per unit increase of its right-hand side. A binding
//! capacity row (≤) therefore has a dual ≤ 0: one more minute of capacity
//! lowers the objective by −dual. Stage-1 duals price capacity in
//! over-target candidate-weeks, stage-2 duals in cost (with the waiting
//! promise held at V*). Both are marginal rates: "one extra session of N
//! minutes reduces X by −dual·N" holds while the optimal basis stays optimal,
//! which for a session small against the week's capacity it usually does.

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
/// else C.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    pub capacity: CapacityRef,
    pub week: usize,
    pub session_minutes: f64,
    /// Over-target candidate-weeks saved (marginal estimate), at most V*:
    /// a session cannot save more than there is.
    pub violation_reduction: f64,
    /// Cost saved (marginal estimate); 0 when the session lowers V. The
    /// stage-2 dual prices a minute with V held at V*, but a re-solve
    /// spends the minute on the waiting promise first (stage 1 comes
    /// first), so that figure would not be what the session saves.
    pub cost_reduction: f64,
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
            let (capacity, week) = match *row {
                Row::Seat { l, k, t } => (
                    CapacityRef::Seats {
                        location: sc.locations[l].id.clone(),
                        kind: kinds[k].clone(),
                    },
                    t,
                ),
                Row::Rater { q, t } => (
                    CapacityRef::Raters {
                        pool: sc.rating_pools[q].id.clone(),
                    },
                    t,
                ),
                Row::Flow { .. } => continue,
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
/// most: ranked by over-target candidate-weeks saved, then by cost saved.
/// Places where it helps neither are left out. `violation` and `cost` are
/// the plan's V* and C, which cap the estimates (a long session times a
/// marginal rate can claim more than there is to save).
pub fn recommendations(
    prices: &[ShadowPrice],
    session_minutes: f64,
    limit: usize,
    (violation, cost): (f64, f64),
) -> Vec<Recommendation> {
    let mut recs: Vec<Recommendation> = prices
        .iter()
        .map(|p| {
            let v = (-p.stage1 * session_minutes).clamp(0.0, violation.max(0.0));
            let c = if v > 1e-9 {
                0.0
            } else {
                (-p.stage2.unwrap_or(0.0) * session_minutes).clamp(0.0, cost.max(0.0))
            };
            Recommendation {
                capacity: p.capacity.clone(),
                week: p.week,
                session_minutes,
                violation_reduction: v,
                cost_reduction: c,
            }
        })
        .filter(|r| r.violation_reduction > 1e-9 || r.cost_reduction > 1e-9)
        .collect();
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

    fn price(pool: &str, stage1: f64, stage2: f64) -> ShadowPrice {
        ShadowPrice {
            capacity: CapacityRef::Raters { pool: pool.into() },
            week: 0,
            stage1,
            stage2: Some(stage2),
        }
    }

    #[test]
    fn a_session_saves_v_or_c_and_never_more_than_there_is() {
        let prices = [
            // Lowers V by 0.5 a minute: 120 over 240 minutes, capped at V* 85.5;
            // its stage-2 dual is at V held and says nothing.
            price("A", -0.5, -3.0),
            // Lowers V by 0.1 a minute: 24; no cost figure either.
            price("B", -0.1, -1.0),
            // V does not move: the cost figure stands (2 a minute: 480).
            price("C", 0.0, -2.0),
            // Binds nowhere.
            price("D", 0.0, 0.0),
        ];
        let recs = recommendations(&prices, 240.0, 10, (85.5, 1e6));
        let got: Vec<(String, f64, f64)> = recs
            .iter()
            .map(|r| (place(&r.capacity), r.violation_reduction, r.cost_reduction))
            .collect();
        assert_eq!(
            got,
            [
                ("A".to_string(), 85.5, 0.0),
                ("B".to_string(), 24.0, 0.0),
                ("C".to_string(), 0.0, 480.0)
            ]
        );
        // The cost figure is capped at C.
        let recs = recommendations(&prices[2..3], 240.0, 10, (0.0, 100.0));
        assert_eq!(recs[0].cost_reduction, 100.0);
    }

    fn place(c: &CapacityRef) -> String {
        match c {
            CapacityRef::Raters { pool } => pool.clone(),
            CapacityRef::Seats { location, .. } => location.clone(),
        }
    }
}
