//! What `examcap solve` and `examcap demo` print about a plan: a human
//! summary ([`render_summary`]) and its machine-readable twin
//! ([`summary_json`]). Plain functions of a [`Plan`], no I/O.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use examcap_solver::duals::{CapacityRef, Recommendation};
use examcap_solver::plan::{OverTarget, PlanStatus, ScenarioRef, Timings, Values};
use examcap_solver::scenario::{iso_week_label, monday_of, parse_iso_week};
use examcap_solver::waits::{ExamWaits, Percentile};
use examcap_solver::{Plan, PlanOptions};
use serde::Serialize;

/// Longest name printed to a terminal, in characters; longer ones end in `…`.
pub const MAX_SHOWN_CHARS: usize = 80;

/// A name from a scenario, as printed to a terminal. Scenario, exam and
/// location names are free text (DESIGN restricts only ids), so a name could
/// carry escape sequences that rewrite the operator's screen, bidi controls
/// that reorder the line, or a megabyte of text. `Shown` prints control and
/// bidi characters escaped (`\u{1b}`) and cuts the name at
/// [`MAX_SHOWN_CHARS`]. The stored scenario keeps the name as given.
pub struct Shown<'a>(pub &'a str);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, c) in self.0.chars().enumerate() {
            if i == MAX_SHOWN_CHARS {
                return f.write_str("…");
            }
            let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
            if c.is_control() || bidi {
                write!(f, "\\u{{{:x}}}", c as u32)?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

/// Recommendations shown (the plan keeps more).
pub const TOP_RECOMMENDATIONS: usize = 10;
/// Over-target (exam, region) rows shown.
pub const TOP_OVER_TARGET: usize = 10;

/// Extra capacity the integral plan uses, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ExtraTotals {
    pub seat_minutes: f64,
    pub seat_cost: f64,
    /// Distinct (location, week) with extra seat minutes.
    pub location_weeks: usize,
    pub rater_minutes: f64,
    pub rater_cost: f64,
    /// Distinct (pool, week) with extra rater minutes.
    pub pool_weeks: usize,
}

impl ExtraTotals {
    pub fn of(plan: &Plan) -> Self {
        let used = |m: f64| m > 1e-9;
        let seats = plan.extra_seats.iter().filter(|e| used(e.minutes));
        let raters = plan.extra_raters.iter().filter(|e| used(e.minutes));
        // An empty f64 sum is -0.0; `+ 0.0` prints it as 0.
        ExtraTotals {
            seat_minutes: seats.clone().map(|e| e.minutes).sum::<f64>() + 0.0,
            seat_cost: plan.rounded.extra_seat_cost,
            location_weeks: seats
                .map(|e| (e.location.as_str(), e.week))
                .collect::<BTreeSet<_>>()
                .len(),
            rater_minutes: raters.clone().map(|e| e.minutes).sum::<f64>() + 0.0,
            rater_cost: plan.rounded.extra_rater_cost,
            pool_weeks: raters
                .map(|e| (e.pool.as_str(), e.week))
                .collect::<BTreeSet<_>>()
                .len(),
        }
    }
}

/// The over-target rows, largest weighted share of V* first.
pub fn top_over_target(plan: &Plan, limit: usize) -> Vec<&OverTarget> {
    let mut rows: Vec<&OverTarget> = plan.over_target.iter().collect();
    rows.sort_by(|a, b| {
        b.weighted
            .total_cmp(&a.weighted)
            .then(
                b.rounded_candidate_weeks
                    .total_cmp(&a.rounded_candidate_weeks),
            )
            .then_with(|| (&a.exam, &a.region).cmp(&(&b.exam, &b.region)))
    });
    rows.truncate(limit);
    rows
}

fn top_recommendations(plan: &Plan) -> &[Recommendation] {
    &plan.recommendations[..plan.recommendations.len().min(TOP_RECOMMENDATIONS)]
}

/// Solver facts for the JSON summary (the plan has more).
#[derive(Debug, Serialize)]
pub struct SolverSummary<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub blocks: usize,
    pub lp_columns: usize,
    pub lp_rows: usize,
    pub options: &'a PlanOptions,
}

/// What `solve --json` prints: one object, fields in this order.
#[derive(Debug, Serialize)]
pub struct SolveSummary<'a> {
    pub format: &'static str,
    /// `optimal` or `stage2_time_limit`.
    pub status: PlanStatus,
    pub scenario_hash: &'a str,
    pub plan_fingerprint: String,
    pub scenario: &'a ScenarioRef,
    pub solver: SolverSummary<'a>,
    /// V* of the LP.
    pub stage1_violation: f64,
    /// C of the LP.
    pub stage2_cost: f64,
    pub lp: &'a Values,
    /// The integral plan's V and C.
    pub rounded: &'a Values,
    pub extra_capacity: ExtraTotals,
    pub waits: &'a [ExamWaits],
    /// The largest over-target (exam, region) rows, at most [`TOP_OVER_TARGET`].
    pub over_target: Vec<&'a OverTarget>,
    /// How many over-target rows the plan has in all.
    pub over_target_rows: usize,
    /// At most [`TOP_RECOMMENDATIONS`].
    pub recommendations: &'a [Recommendation],
    /// The time limit stopped the search for them: places may be missing.
    pub recommendations_cut: bool,
    pub seconds: &'a Timings,
}

/// Why a plan lists no "one extra session" places.
pub enum NoRecommendations {
    /// Solved without the search (a re-plan).
    NotSearched,
    /// The time limit stopped the search before it found any.
    Cut,
    /// No single session lowers V or C.
    Nowhere,
}

/// Why `plan` lists no places; `None` when it lists some.
pub fn no_recommendations(plan: &Plan) -> Option<NoRecommendations> {
    if plan.solver.options.recommendations == 0 {
        Some(NoRecommendations::NotSearched)
    } else if !plan.recommendations.is_empty() {
        None
    } else if plan.recommendations_cut {
        Some(NoRecommendations::Cut)
    } else {
        Some(NoRecommendations::Nowhere)
    }
}

/// The summary `solve --json` prints.
pub fn summary_json(plan: &Plan) -> SolveSummary<'_> {
    let s = &plan.solver;
    SolveSummary {
        format: "examcap/solve-summary@1",
        status: plan.status,
        scenario_hash: &plan.scenario.content_hash,
        plan_fingerprint: plan.fingerprint(),
        scenario: &plan.scenario,
        solver: SolverSummary {
            name: &s.name,
            version: &s.version,
            blocks: s.blocks,
            lp_columns: s.lp_columns,
            lp_rows: s.lp_rows,
            options: &s.options,
        },
        stage1_violation: plan.stage1_violation,
        stage2_cost: plan.stage2_cost,
        lp: &plan.lp,
        rounded: &plan.rounded,
        extra_capacity: ExtraTotals::of(plan),
        waits: &plan.waits,
        over_target: top_over_target(plan, TOP_OVER_TARGET),
        over_target_rows: plan.over_target.len(),
        recommendations: top_recommendations(plan),
        recommendations_cut: plan.recommendations_cut,
        seconds: &plan.seconds,
    }
}

/// The human summary of a plan, several sections, ending in a newline.
pub fn render_summary(plan: &Plan) -> String {
    let mut out = String::new();
    let sc = &plan.scenario;
    let s = &plan.solver;
    let _ = writeln!(
        out,
        "examcap plan: {} · from {} · {} weeks",
        Shown(&sc.name),
        sc.start_week,
        sc.horizon_weeks
    );
    let status = match plan.status {
        PlanStatus::Optimal => "optimal".to_string(),
        PlanStatus::Stage2TimeLimit => {
            "stage 2 stopped at the time limit (V* exact, cost not minimal)".to_string()
        }
    };
    let _ = writeln!(out, "  status       {status}");
    let _ = writeln!(
        out,
        "  solver       {} {} · {} blocks · {} columns · {} rows",
        s.name,
        s.version,
        s.blocks,
        thousands(s.lp_columns as f64, 0),
        thousands(s.lp_rows as f64, 0)
    );
    let _ = writeln!(
        out,
        "  scenario     sha256 {}   plan fingerprint {}",
        short(&sc.content_hash),
        short(&plan.fingerprint())
    );

    out.push('\n');
    let _ = writeln!(
        out,
        "Objective (V: priority-weighted candidate-weeks over target; C: cost)"
    );
    let table = Table::new(&["", "V", "C"], "lrr")
        .row(vec![
            "LP optimum (V*, C)".into(),
            thousands(plan.stage1_violation, 1),
            thousands(plan.stage2_cost, 2),
        ])
        .row(vec![
            "integral plan".into(),
            thousands(plan.rounded.violation, 1),
            thousands(plan.rounded.cost, 2),
        ]);
    out.push_str(&table.render());
    let r = &plan.rounded;
    let _ = writeln!(
        out,
        "  integral cost = extra seats {} + extra raters {} + travel {} + waiting {}",
        thousands(r.extra_seat_cost, 2),
        thousands(r.extra_rater_cost, 2),
        thousands(r.travel_cost, 2),
        thousands(r.waiting_cost, 2)
    );

    out.push('\n');
    let x = ExtraTotals::of(plan);
    let _ = writeln!(out, "Extra capacity bought (integral plan)");
    if x.seat_minutes <= 0.0 && x.rater_minutes <= 0.0 {
        let _ = writeln!(out, "  none: regular capacity suffices");
    } else {
        let table = Table::new(&["", "minutes", "cost", "where"], "lrrl")
            .row(vec![
                "seats".into(),
                thousands(x.seat_minutes, 0),
                thousands(x.seat_cost, 2),
                plural(x.location_weeks, "location-week"),
            ])
            .row(vec![
                "raters".into(),
                thousands(x.rater_minutes, 0),
                thousands(x.rater_cost, 2),
                plural(x.pool_weeks, "pool-week"),
            ]);
        out.push_str(&table.render());
    }

    out.push('\n');
    let _ = writeln!(
        out,
        "Predicted waits per exam (weeks, FIFO; late/beyond/censored in candidates)"
    );
    let mut table = Table::new(
        &[
            "exam", "target", "p50", "p90", "max", "late", "beyond", "censored",
        ],
        "lrrrrrrr",
    );
    for w in &plan.waits {
        table = table.row(vec![
            w.exam.clone(),
            w.target_weeks.to_string(),
            pct(w.p50),
            pct(w.p90),
            pct(w.max),
            thousands(w.late_candidates, 0),
            thousands(w.beyond_candidates, 0),
            thousands(w.censored_candidates, 0),
        ]);
    }
    out.push_str(&table.render());
    let _ = writeln!(
        out,
        "  (\">=N\": not examined within the horizon, waits at least N weeks)"
    );

    out.push('\n');
    let recs = top_recommendations(plan);
    let minutes = recs
        .first()
        .map_or(s.options.session_minutes, |r| r.session_minutes);
    let _ = writeln!(
        out,
        "Where one extra session of {} min helps most",
        thousands(minutes, 0)
    );
    if let Some(why) = no_recommendations(plan) {
        let said = match why {
            NoRecommendations::NotSearched => {
                "not looked for: a re-plan lists none (a drill of its shocked scenario does)"
            }
            NoRecommendations::Cut => "not looked for: the time limit left the time to stage 2",
            NoRecommendations::Nowhere => "nowhere: no single session lowers V or C",
        };
        let _ = writeln!(out, "  {said}");
    } else {
        let mut table = Table::new(&["#", "place", "week", "−V", "−C"], "rllrr");
        for (i, r) in recs.iter().enumerate() {
            table = table.row(vec![
                (i + 1).to_string(),
                place(&r.capacity),
                week_label(&sc.start_week, r.week),
                thousands(r.violation_reduction, 1),
                thousands(r.cost_reduction, 2),
            ]);
        }
        out.push_str(&table.render());
        let _ = writeln!(
            out,
            "  −V: priority-weighted over-target candidate-weeks saved, −C: cost saved where\n  \
             V does not move (each place re-solved with the session; the plan lists {})",
            plan.recommendations.len()
        );
        if plan.recommendations_cut {
            let _ = writeln!(
                out,
                "  (the time limit stopped the search: places may be missing)"
            );
        }
    }

    out.push('\n');
    if plan.over_target.is_empty() {
        // V* = 0 counts from week 0: a backlog already past its target then,
        // or a candidate the integral plan seats later than the LP, can
        // still be late. Then "every target is met" would be false.
        let late: f64 = plan.waits.iter().map(|w| w.late_candidates).sum();
        if late > 0.0 {
            let _ = writeln!(
                out,
                "Waiting targets: V* = 0, yet {} candidates are late (the `late` column): a \
                 backlog already past\n  its target at week 0 counts in no V, and the \
                 integral plan may seat some later than the LP",
                thousands(late, 0)
            );
        } else {
            let _ = writeln!(out, "Waiting targets: every target is met");
        }
    } else {
        let _ = writeln!(
            out,
            "Waiting targets that cannot be met (over-target candidate-weeks, top {} of {})",
            TOP_OVER_TARGET.min(plan.over_target.len()),
            plan.over_target.len()
        );
        let mut table = Table::new(&["exam", "region", "LP", "weighted", "integral"], "llrrr");
        for o in top_over_target(plan, TOP_OVER_TARGET) {
            table = table.row(vec![
                o.exam.clone(),
                o.region.clone(),
                thousands(o.candidate_weeks, 1),
                thousands(o.weighted, 1),
                thousands(o.rounded_candidate_weeks, 1),
            ]);
        }
        out.push_str(&table.render());
    }

    out.push('\n');
    let t = &plan.seconds;
    let _ = writeln!(out, "Stage times (s)");
    let table = Table::new(
        &[
            "validate", "build", "stage1", "stage2", "rounding", "waits", "duals", "total",
        ],
        "rrrrrrrr",
    )
    .row(
        [
            t.validate, t.build, t.stage1, t.stage2, t.rounding, t.waits, t.duals, t.total,
        ]
        .iter()
        .map(|s| format!("{s:.2}"))
        .collect(),
    );
    out.push_str(&table.render());
    out
}

/// `12a4f0c9e1b3…` for a hex digest.
pub(crate) fn short(hash: &str) -> String {
    match hash.get(..12) {
        Some(h) if hash.len() > 12 => format!("{h}…"),
        _ => hash.to_string(),
    }
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn pct(p: Option<Percentile>) -> String {
    p.map_or_else(|| "-".to_string(), |p| p.to_string())
}

/// `AMS speaking_booth` or `speaking_raters (raters)`.
pub fn place(c: &CapacityRef) -> String {
    match c {
        CapacityRef::Seats { location, kind } => format!("{location} {kind}"),
        CapacityRef::Raters { pool } => format!("{pool} (raters)"),
    }
}

/// `12 (2027-W13)`: the week index and its ISO week, if the start week parses.
pub fn week_label(start_week: &str, week: usize) -> String {
    let iso = parse_iso_week(start_week)
        .and_then(|start| monday_of(start, week))
        .map(iso_week_label);
    match iso {
        Some(iso) => format!("{week} ({iso})"),
        None => week.to_string(),
    }
}

/// `1234567.891` with 2 decimals → `1,234,567.89`. Non-finite values as is.
pub fn thousands(x: f64, decimals: usize) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let s = format!("{:.*}", decimals, x.abs());
    let (int, frac) = s.split_once('.').map_or((s.as_str(), ""), |(i, f)| (i, f));
    let mut grouped = String::with_capacity(int.len() + int.len() / 3 + decimals + 2);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if !frac.is_empty() {
        grouped.push('.');
        grouped.push_str(frac);
    }
    // No "-0.0": only a value that shows a non-zero digit gets a sign.
    if x < 0.0 && grouped.chars().any(|c| ('1'..='9').contains(&c)) {
        grouped.insert(0, '-');
    }
    grouped
}

/// A plain text table: header, rule, rows; `aligns` has one `l`/`r` per column.
pub(crate) struct Table {
    header: Vec<String>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(header: &[&str], aligns: &str) -> Self {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            right: aligns.chars().map(|c| c == 'r').collect(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(mut self, cells: Vec<String>) -> Self {
        self.rows.push(cells);
        self
    }

    pub(crate) fn render(&self) -> String {
        let width = |s: &str| s.chars().count();
        let mut widths: Vec<usize> = self.header.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (i, c) in row.iter().enumerate() {
                if i < widths.len() {
                    widths[i] = widths[i].max(width(c));
                }
            }
        }
        let line = |cells: &[String]| {
            let mut l = String::from(" ");
            for (i, w) in widths.iter().enumerate() {
                let c = cells.get(i).map_or("", String::as_str);
                let pad = " ".repeat(w - width(c).min(*w));
                l.push(' ');
                if self.right.get(i).copied().unwrap_or(false) {
                    l.push_str(&pad);
                    l.push_str(c);
                } else {
                    l.push_str(c);
                    l.push_str(&pad);
                }
                l.push(' ');
            }
            let mut l = l.trim_end().to_string();
            l.push('\n');
            l
        };
        let mut out = line(&self.header);
        let rule: Vec<String> = widths.iter().map(|w| "─".repeat(*w)).collect();
        out.push_str(&line(&rule));
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use examcap_solver::{parse_scenario, plan_scenario, PlanOptions};

    #[test]
    fn thousands_groups_and_rounds() {
        assert_eq!(thousands(0.0, 1), "0.0");
        assert_eq!(thousands(999.0, 0), "999");
        assert_eq!(thousands(1000.0, 0), "1,000");
        assert_eq!(thousands(1_234_567.891, 2), "1,234,567.89");
        assert_eq!(thousands(-1234.5, 1), "-1,234.5");
        assert_eq!(thousands(-0.01, 1), "0.0");
        assert_eq!(thousands(999_999.96, 1), "1,000,000.0");
        assert_eq!(thousands(f64::NAN, 1), "NaN");
    }

    #[test]
    fn names_are_shown_escaped_and_cut() {
        assert_eq!(Shown("nl-2027 Spreken").to_string(), "nl-2027 Spreken");
        assert_eq!(Shown("a\u{1b}[2Jb\nc").to_string(), "a\\u{1b}[2Jb\\u{a}c");
        assert_eq!(Shown("x\u{202e}y").to_string(), "x\\u{202e}y");
        assert_eq!(Shown("Zuid-Holland é ü").to_string(), "Zuid-Holland é ü");
        let long = "é".repeat(MAX_SHOWN_CHARS + 5);
        let shown = Shown(&long).to_string();
        assert_eq!(shown.chars().count(), MAX_SHOWN_CHARS + 1);
        assert!(shown.ends_with('…'));
        assert_eq!(
            Shown(&long[..2 * MAX_SHOWN_CHARS]).to_string(),
            long[..2 * MAX_SHOWN_CHARS]
        );
    }

    #[test]
    fn week_labels() {
        assert_eq!(week_label("2027-W01", 0), "0 (2027-W01)");
        assert_eq!(week_label("2025-W52", 2), "2 (2026-W02)");
        // 2026 has 53 ISO weeks.
        assert_eq!(week_label("2026-W52", 2), "2 (2027-W01)");
        assert_eq!(week_label("bogus", 3), "3");
    }

    #[test]
    fn table_aligns_columns() {
        let t = Table::new(&["a", "num"], "lr")
            .row(vec!["long name".into(), "1".into()])
            .row(vec!["x".into(), "1,000".into()])
            .render();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "  a            num");
        assert_eq!(lines[2], "  long name      1");
        assert_eq!(lines[3], "  x          1,000");
    }

    const TINY: &str = r#"{
      "format": "examcap/scenario@1", "name": "tiny", "start_week": "2026-W14",
      "horizon_weeks": 3,
      "exams": [{"id": "SPK", "name": "Spreken", "resource": "booth",
                 "seat_minutes": 45, "target_wait_weeks": 0}],
      "locations": [{"id": "AMS", "name": "Amsterdam",
                     "resources": [{"kind": "booth", "weekly_minutes": 450,
                                    "extra_weekly_minutes": 45,
                                    "extra_cost_per_minute": 1.0}]}],
      "regions": [{"id": "R1", "name": "Region 1",
                   "options": [{"location": "AMS", "travel_cost": 0.5}]}],
      "demand": [{"region": "R1", "exam": "SPK", "weekly": [8, 14, 10]}]
    }"#;

    #[test]
    fn summary_of_a_tiny_plan() {
        let sc = parse_scenario(TINY.as_bytes()).expect("valid");
        let plan = plan_scenario(&sc, &PlanOptions::default(), &|_| {}).expect("solves");
        let s = render_summary(&plan);
        for needle in [
            "examcap plan: tiny · from 2026-W14 · 3 weeks",
            "status       optimal",
            "LP optimum (V*, C)",
            "integral plan",
            "Extra capacity bought",
            "Predicted waits per exam",
            "SPK",
            "Where one extra session of 240 min helps most",
            "AMS booth",
            "Waiting targets that cannot be met",
            "Stage times (s)",
        ] {
            assert!(s.contains(needle), "missing {needle:?} in\n{s}");
        }
        // Demand 14 in week 1 against 11 seats, target 0: someone waits.
        assert!(plan.stage1_violation > 0.0, "{s}");
        let j = serde_json::to_value(summary_json(&plan)).expect("serialises");
        assert_eq!(j["status"], "optimal");
        assert_eq!(j["stage1_violation"], plan.stage1_violation);
        assert_eq!(j["plan_fingerprint"], plan.fingerprint());
        assert!(j["waits"].as_array().is_some_and(|w| w.len() == 1));

        // What the list says when no place was looked for.
        let mut cut = plan.clone();
        cut.recommendations.clear();
        cut.recommendations_cut = true;
        let s = render_summary(&cut);
        assert!(s.contains("not looked for: the time limit"), "{s}");
        let j = serde_json::to_value(summary_json(&cut)).expect("serialises");
        assert_eq!(j["recommendations_cut"], true);
        let mut replan = cut.clone();
        replan.recommendations_cut = false;
        replan.solver.options.recommendations = 0;
        let s = render_summary(&replan);
        assert!(s.contains("not looked for: a re-plan lists none"), "{s}");
        let mut none = replan;
        none.solver.options.recommendations = 10;
        let s = render_summary(&none);
        assert!(
            s.contains("nowhere: no single session lowers V or C"),
            "{s}"
        );
    }
}
