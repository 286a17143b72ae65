//! `examcap report`: a plan as one self-contained HTML page that planners
//! look at rather than read. Charts are inline SVG drawn by plotters; the page
//! loads nothing and runs no script (its Content-Security-Policy forbids
//! both), so it can be mailed, archived and opened offline.
//!
//! The plan holds the allocation, cohorts and shadow prices but only the
//! hash of its scenario, so the forecast and the capacities come from the
//! scenario: a file (`--scenario`), or with `--server` the service's copy,
//! fetched by that hash (which is the scenario id).

mod charts;
mod data;
mod fetch;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{ArgGroup, Args};
use examcap_solver::waits::{ExamWaits, Percentile};
use examcap_solver::{Plan, Scenario};

use crate::progress::Progress;
use crate::summary::{
    no_recommendations, place, thousands, week_label, ExtraTotals, NoRecommendations, Shown,
    TOP_RECOMMENDATIONS,
};
use crate::Failure;
use charts::{Line, LineChart, SERIES, TARGET};
use data::{ExamFlow, UseState};

/// Arguments of `examcap report`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["plan_file", "plan"])))]
pub struct ReportArgs {
    /// The plan JSON file written by `examcap solve --out` (or use --server with --plan).
    #[arg(
        value_name = "PLAN.json",
        requires = "scenario",
        conflicts_with = "server"
    )]
    plan_file: Option<PathBuf>,
    /// The scenario the plan was solved from (a plan holds only its hash).
    #[arg(long, value_name = "SCENARIO.json", conflicts_with = "server")]
    scenario: Option<PathBuf>,
    /// A second plan drawn against the first (a drill or a re-plan against its
    /// base): a plan file, or with --server a plan id.
    /// (A path, so that any file name is taken; an id must be text.)
    #[arg(long, value_name = "OTHER")]
    compare: Option<PathBuf>,
    /// The scenario of the --compare plan file; by default --scenario.
    #[arg(
        long,
        value_name = "SCENARIO.json",
        requires = "compare",
        conflicts_with = "server"
    )]
    compare_scenario: Option<PathBuf>,
    /// Read the plans and their scenarios from an examcap service, e.g. http://127.0.0.1:50051.
    #[arg(long, value_name = "URL", requires = "plan")]
    server: Option<String>,
    /// The plan id on the server (from Solve, RunDrill or ListPlans).
    #[arg(long, value_name = "ID", requires = "server")]
    plan: Option<String>,
    /// Bearer token of a planner or drill role; by default $EXAMCAP_TOKEN
    /// (which, unlike an argument, other users cannot see in the process list).
    #[arg(long, value_name = "T", requires = "server")]
    token: Option<String>,
    /// Where the HTML report goes.
    #[arg(long, value_name = "report.html")]
    out: PathBuf,
    /// Nothing on stderr but errors: no spinner (shown only on a terminal
    /// anyway) and no closing line.
    #[arg(long, short)]
    quiet: bool,
}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The inputs do not fit together (names the file or option).
    #[error("{0}")]
    Input(String),
    /// The plan's rows name what its scenario does not have (a tampered or
    /// hand-edited plan file), each with its field path.
    #[error("{label} does not fit its scenario:\n{errors}")]
    PlanRows {
        label: String,
        errors: examcap_solver::ValidationErrors,
    },
    #[error(transparent)]
    Chart(#[from] charts::ChartError),
    #[error(transparent)]
    Fetch(#[from] fetch::FetchError),
}

/// One plan with the scenario it was solved from, checked to belong together.
pub struct Input {
    pub plan: Plan,
    pub scenario: Scenario,
    /// How the report names this plan (`base`, a file name, a plan id).
    pub label: String,
}

impl Input {
    /// Pairs a plan with its scenario; `what` names them in the error.
    pub fn new(plan: Plan, scenario: Scenario, label: String) -> Result<Self, ReportError> {
        if plan.scenario.content_hash != scenario.content_hash() {
            return Err(ReportError::Input(format!(
                "{label}: the plan is for scenario \"{}\" ({}), not the scenario \"{}\" given ({})",
                Shown(&plan.scenario.name),
                short(&plan.scenario.content_hash),
                Shown(&scenario.name),
                short(&scenario.content_hash()),
            )));
        }
        // Rows that do not fit would be left out of the charts without a
        // word, or drawn past a location's capacity.
        if let Err(errors) = examcap_solver::reschedule::check_published(&scenario, &plan) {
            return Err(ReportError::PlanRows { label, errors });
        }
        Ok(Input {
            plan,
            scenario,
            label,
        })
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Runs `examcap report`.
pub fn run(a: &ReportArgs) -> Result<(), Failure> {
    let compare = a.compare.as_deref();
    let inputs: Vec<&Path> = [a.plan_file.as_deref(), a.scenario.as_deref()]
        .into_iter()
        .flatten()
        .chain(compare)
        .chain(a.compare_scenario.as_deref())
        .collect();
    crate::check_out(&a.out, &inputs)?;
    crate::one_stdin(&[
        ("PLAN", a.plan_file.as_deref()),
        ("--scenario", a.scenario.as_deref()),
        ("--compare", a.server.is_none().then_some(compare).flatten()),
        ("--compare-scenario", a.compare_scenario.as_deref()),
    ])?;
    let (base, other) = match (&a.server, &a.plan, &a.plan_file) {
        (Some(url), Some(id), _) => {
            let token = examcap::client::token_or_env(a.token.as_deref());
            let mut ids = vec![id.as_str()];
            if let Some(other) = &a.compare {
                ids.push(crate::plan_id_arg("report --compare", other)?);
            }
            let mut fetched =
                fetch::fetch(url, token.as_deref(), &ids).map_err(|e| failure(e.into()))?;
            let other = (fetched.len() > 1).then(|| fetched.remove(1));
            (fetched.remove(0), other)
        }
        (_, _, Some(file)) => {
            let scenario_file = a.scenario.as_ref().ok_or_else(|| {
                Failure::Input("examcap: report: a plan file needs --scenario".into())
            })?;
            let base = from_files(file, scenario_file)?;
            let other = match &a.compare {
                Some(other) => Some(from_files(
                    other,
                    a.compare_scenario.as_ref().unwrap_or(scenario_file),
                )?),
                None => None,
            };
            (base, other)
        }
        _ => {
            return Err(Failure::Input(
                "examcap: report: give a PLAN.json file, or --server with --plan".into(),
            ))
        }
    };
    let progress = Progress::terminal_only(a.quiet);
    let t0 = Instant::now();
    let html = render(&base, other.as_ref(), &|done, total| {
        progress.count("report: chart", done, total, t0.elapsed())
    })
    .map_err(failure)?;
    progress.close();
    crate::write_atomically(&a.out, html.as_bytes())?;
    if !a.quiet {
        eprintln!(
            "examcap: wrote the report to {} ({})",
            a.out.display(),
            crate::progress::duration(t0.elapsed())
        );
    }
    Ok(())
}

fn failure(e: ReportError) -> Failure {
    match e {
        ReportError::Input(m) => Failure::Input(format!("examcap: report: {m}")),
        e @ ReportError::PlanRows { .. } => Failure::Input(format!("examcap: report: {e}")),
        ReportError::Fetch(f) if f.is_input() => Failure::Input(format!("examcap: report: {f}")),
        e => Failure::Internal(anyhow::Error::new(e).context("report")),
    }
}

fn from_files(plan: &Path, scenario: &Path) -> Result<Input, Failure> {
    let sc = crate::load(scenario)?;
    let plan_doc = crate::read_plan(plan)?;
    // Errors name the file as given (two plans may share a file name);
    // the report itself by its file name.
    let mut input = Input::new(plan_doc, sc, plan.display().to_string()).map_err(|e| match e {
        ReportError::Input(m) => Failure::Input(format!(
            "examcap: report: {m} ({}); pass the plan's own scenario",
            scenario.display()
        )),
        e => failure(e),
    })?;
    if let Some(name) = plan.file_name() {
        input.label = name.to_string_lossy().into_owned();
    }
    Ok(input)
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The kinds of chart, as the `data-kind` of their `<figure>`.
pub mod kind {
    /// Per exam: registrations and exams per week, and the backlog.
    pub const FLOW: &str = "flow";
    /// Per exam: predicted wait per registration week against the target.
    pub const WAIT: &str = "wait";
    /// Seat use per location, resource kind and week.
    pub const SEAT_USE: &str = "seat-use";
    /// Rater use per pool and week.
    pub const RATER_USE: &str = "rater-use";
    /// Per exam, with --compare: both backlogs.
    pub const COMPARE_BACKLOG: &str = "compare-backlog";
    /// Per exam, with --compare: both mean waits.
    pub const COMPARE_WAIT: &str = "compare-wait";
}

/// The whole page. `progress(done, total)` is called after each chart.
pub fn render(
    base: &Input,
    other: Option<&Input>,
    progress: &dyn Fn(usize, usize),
) -> Result<String, ReportError> {
    if let Some(o) = other {
        let (a, b) = (&base.plan.scenario, &o.plan.scenario);
        if a.start_week != b.start_week || a.horizon_weeks != b.horizon_weeks {
            return Err(ReportError::Input(format!(
                "{} starts {} for {} weeks but {} starts {} for {} weeks: only plans over \
                 the same weeks can be compared",
                base.label, a.start_week, a.horizon_weeks, o.label, b.start_week, b.horizon_weeks
            )));
        }
    }
    let sc = &base.scenario;
    let flows = data::exam_flows(&base.plan, sc);
    let other_flows = other.map(|o| data::exam_flows(&o.plan, &o.scenario));
    let pairs: Vec<(&ExamFlow, &ExamFlow)> = other_flows
        .iter()
        .flat_map(|of| {
            flows
                .iter()
                .filter_map(move |f| of.iter().find(|g| g.exam == f.exam).map(|g| (f, g)))
        })
        .collect();
    let total = 2 * flows.len() + 1 + usize::from(!sc.rating_pools.is_empty()) + 2 * pairs.len();
    let mut done = 0;
    let mut tick = || {
        done += 1;
        progress(done, total);
    };

    let mut h = String::new();
    let title = format!("examcap report: {}", sc.name);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>{}</h1>\n",
        esc(&title),
        esc(&title)
    );
    header(&mut h, base, other);
    waits_table(&mut h, &base.plan.waits);

    h.push_str("<section id=\"exams\">\n<h2>Per exam</h2>\n");
    for (i, f) in flows.iter().enumerate() {
        let _ = writeln!(h, "<h3>{} ({})</h3>", esc(&f.name), esc(&f.exam));
        let caption = format!("{}: registrations, exams and backlog", f.exam);
        let svg = charts::line_chart(&LineChart {
            caption: &caption,
            x_title: "week",
            y_title: "candidates",
            lines: vec![
                line("registrations", weekly(&f.registrations), SERIES[0]),
                line("examined", weekly(&f.examined), SERIES[1]),
                line("backlog", weekly(&f.backlog), SERIES[3]),
            ],
        })?;
        figure(&mut h, kind::FLOW, i, &f.exam, &svg);
        tick();
        let caption = format!("{}: predicted wait per registration week", f.exam);
        let svg = charts::line_chart(&LineChart {
            caption: &caption,
            x_title: "registration week",
            y_title: "wait (weeks)",
            lines: wait_lines(f),
        })?;
        figure(&mut h, kind::WAIT, i, &f.exam, &svg);
        tick();
    }
    h.push_str(
        "<p class=\"note\">Waits of candidates not examined within the horizon are lower \
         bounds; a registration week with candidates still waiting at the horizon's end, \
         before their deadline, is not shown (their wait is not known yet).</p>\n</section>\n",
    );

    h.push_str("<section id=\"capacity\">\n<h2>Capacity use</h2>\n");
    let weeks = sc.horizon_weeks;
    let seats = data::seat_use(&base.plan, sc);
    let svg = charts::heat_map("Seat minutes per week", "location", &seats, weeks)?;
    figure(&mut h, kind::SEAT_USE, 0, "seats", &svg);
    tick();
    if sc.rating_pools.is_empty() {
        h.push_str("<p>The scenario has no rater pools.</p>\n");
    } else {
        let raters = data::rater_use(&base.plan, sc);
        let svg = charts::heat_map("Rater minutes per week", "rater pool", &raters, weeks)?;
        figure(&mut h, kind::RATER_USE, 0, "raters", &svg);
        tick();
    }
    use_legend(&mut h);
    h.push_str("</section>\n");

    recommendations(&mut h, &base.plan);

    if let Some(o) = other {
        let _ = write!(
            h,
            "<section id=\"compare\">\n<h2>{} against {}</h2>\n",
            esc(&o.label),
            esc(&base.label)
        );
        deltas(&mut h, base, o);
        for (i, (f, g)) in pairs.iter().enumerate() {
            let _ = writeln!(h, "<h3>{} ({})</h3>", esc(&f.name), esc(&f.exam));
            let caption = format!("{}: backlog", f.exam);
            let svg = charts::line_chart(&LineChart {
                caption: &caption,
                x_title: "week",
                y_title: "candidates waiting",
                lines: vec![
                    line(&base.label, weekly(&f.backlog), SERIES[0]),
                    line(&o.label, weekly(&g.backlog), SERIES[1]),
                ],
            })?;
            figure(&mut h, kind::COMPARE_BACKLOG, i, &f.exam, &svg);
            tick();
            let caption = format!("{}: mean wait per registration week", f.exam);
            let mean = |f: &ExamFlow| {
                f.waits
                    .iter()
                    .map(|w| (w.registered_week as f64, w.mean))
                    .collect()
            };
            let svg = charts::line_chart(&LineChart {
                caption: &caption,
                x_title: "registration week",
                y_title: "wait (weeks)",
                lines: vec![
                    line(&base.label, mean(f), SERIES[0]),
                    line(&o.label, mean(g), SERIES[1]),
                    target_line(f),
                ],
            })?;
            figure(&mut h, kind::COMPARE_WAIT, i, &f.exam, &svg);
            tick();
        }
        h.push_str("</section>\n");
    }
    h.push_str("</body>\n</html>\n");
    Ok(h)
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em auto;max-width:820px;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1em}\
th,td{border:1px solid #ccc;padding:2px 8px;text-align:right}td{white-space:nowrap}\
th:first-child,td:first-child{text-align:left}\
figure{margin:.5em 0}.note{color:#555;font-size:90%}\
.swatch{display:inline-block;width:1em;height:1em;vertical-align:middle;\
border:1px solid #999;margin:0 .3em 0 1em}";

fn line(name: &str, points: Vec<(f64, f64)>, color: plotters::style::RGBColor) -> Line {
    Line {
        name: name.to_string(),
        points,
        color,
    }
}

fn weekly(v: &[f64]) -> Vec<(f64, f64)> {
    v.iter().enumerate().map(|(t, &y)| (t as f64, y)).collect()
}

/// Mean and longest wait per registration week, and the target.
fn wait_lines(f: &ExamFlow) -> Vec<Line> {
    vec![
        line(
            "mean wait",
            f.waits
                .iter()
                .map(|w| (w.registered_week as f64, w.mean))
                .collect(),
            SERIES[0],
        ),
        line(
            "longest wait",
            f.waits
                .iter()
                .map(|w| (w.registered_week as f64, w.max as f64))
                .collect(),
            SERIES[3],
        ),
        target_line(f),
    ]
}

/// The target wait as a horizontal line across the registration weeks shown.
fn target_line(f: &ExamFlow) -> Line {
    let first = f.waits.first().map_or(0, |w| w.registered_week.min(0));
    let last = f
        .waits
        .last()
        .map_or(f.backlog.len() as i64, |w| w.registered_week)
        .max(first + 1);
    let y = f.target_weeks as f64;
    line(
        &format!("target ({} weeks)", f.target_weeks),
        vec![(first as f64, y), (last as f64, y)],
        TARGET,
    )
}

fn figure(h: &mut String, kind: &str, i: usize, about: &str, svg: &str) {
    let _ = writeln!(
        h,
        "<figure class=\"chart\" id=\"{kind}-{i}\" data-kind=\"{kind}\" data-about=\"{}\">\n{svg}\n</figure>",
        esc(about)
    );
}

fn header(h: &mut String, base: &Input, other: Option<&Input>) {
    let p = &base.plan;
    let status = match p.status {
        examcap_solver::plan::PlanStatus::Optimal => "optimal",
        examcap_solver::plan::PlanStatus::Stage2TimeLimit => {
            "stage 2 stopped by the time limit (the cost is not minimal)"
        }
    };
    let _ = writeln!(
        h,
        "<p>Plan <code>{}</code> ({}) for scenario <code>{}</code>, {} weeks from {}; {}. \
         Made by {} {}.</p>",
        esc(short(&p.fingerprint())),
        esc(&base.label),
        esc(short(&p.scenario.content_hash)),
        p.scenario.horizon_weeks,
        esc(&p.scenario.start_week),
        status,
        esc(&p.solver.name),
        esc(&p.solver.version)
    );
    if let Some(o) = other {
        let _ = writeln!(
            h,
            "<p>Compared with plan <code>{}</code> ({}) for scenario \"{}\".</p>",
            esc(short(&o.plan.fingerprint())),
            esc(&o.label),
            esc(&o.plan.scenario.name)
        );
    }
    let x = ExtraTotals::of(p);
    let _ = writeln!(
        h,
        "<table id=\"values\">\n<tr><th></th><th>LP</th><th>integral plan</th></tr>\n\
         <tr><td>candidate-weeks over target (V, priority-weighted)</td><td>{}</td><td>{}</td></tr>\n\
         <tr><td>cost (C)</td><td>{}</td><td>{}</td></tr>\n\
         <tr><td>extra seat minutes (cost)</td><td></td><td>{} ({})</td></tr>\n\
         <tr><td>extra rater minutes (cost)</td><td></td><td>{} ({})</td></tr>\n</table>",
        thousands(p.stage1_violation, 2),
        thousands(p.rounded.violation, 2),
        thousands(p.stage2_cost, 2),
        thousands(p.rounded.cost, 2),
        thousands(x.seat_minutes, 0),
        thousands(x.seat_cost, 2),
        thousands(x.rater_minutes, 0),
        thousands(x.rater_cost, 2),
    );
}

fn pct(p: Option<Percentile>) -> String {
    p.map_or_else(|| "-".into(), |p| esc(&p.to_string()))
}

fn waits_table(h: &mut String, waits: &[ExamWaits]) {
    h.push_str(
        "<section id=\"waits\">\n<h2>Predicted waits (weeks)</h2>\n<table>\n<tr><th>exam</th>\
         <th>target</th><th>p50</th><th>p90</th><th>max</th><th>examined</th>\
         <th>late</th><th>not examined by deadline</th></tr>\n",
    );
    for w in waits {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td></tr>",
            esc(&w.exam),
            w.target_weeks,
            pct(w.p50),
            pct(w.p90),
            pct(w.max),
            thousands(w.served_candidates, 0),
            thousands(w.late_candidates, 0),
            thousands(w.beyond_candidates, 0),
        );
    }
    h.push_str("</table>\n</section>\n");
}

fn use_legend(h: &mut String) {
    h.push_str("<p class=\"legend\">");
    let items = [
        (UseState::Closed, "closed"),
        (UseState::Idle, "idle"),
        (UseState::Regular(0.3), "regular, part used"),
        (UseState::Regular(1.0), "regular, full"),
        (UseState::Extra(0.3), "extra bought, part"),
        (UseState::Extra(1.0), "all extra bought"),
    ];
    for (s, name) in items {
        let plotters::style::RGBColor(r, g, b) = charts::use_color(s);
        let _ = write!(
            h,
            "<span class=\"swatch\" style=\"background:#{r:02x}{g:02x}{b:02x}\"></span>{name}"
        );
    }
    h.push_str("</p>\n");
}

fn recommendations(h: &mut String, p: &Plan) {
    h.push_str("<section id=\"recommendations\">\n<h2>Where one extra session helps most</h2>\n");
    if let Some(why) = no_recommendations(p) {
        h.push_str(match why {
            NoRecommendations::NotSearched => {
                "<p>Not looked for: a re-plan lists none (a drill of its shocked scenario \
                 does).</p>\n"
            }
            NoRecommendations::Cut => {
                "<p>Not looked for: the time limit left the time to stage 2.</p>\n"
            }
            NoRecommendations::Nowhere => "<p>No single extra session lowers V or C.</p>\n",
        });
    } else {
        h.push_str(
            "<table>\n<tr><th>capacity</th><th>week</th><th>session minutes</th>\
             <th>over-target candidate-weeks saved (weighted)</th><th>cost saved</th></tr>\n",
        );
        for r in p.recommendations.iter().take(TOP_RECOMMENDATIONS) {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&place(&r.capacity)),
                esc(&week_label(&p.scenario.start_week, r.week)),
                thousands(r.session_minutes, 0),
                thousands(r.violation_reduction, 2),
                thousands(r.cost_reduction, 2),
            );
        }
        h.push_str(
            "</table>\n<p>What the plan's LP saves re-solved with the session (V: \
             over-target candidate-weeks weighted by priority). The cost saved is given \
             where the session saves no over-target weeks: where it does, it goes to \
             those first.</p>\n",
        );
        if p.recommendations_cut {
            h.push_str(
                "<p>The time limit stopped the search (stage 2 comes first): places \
                 may be missing.</p>\n",
            );
        }
    }
    h.push_str("</section>\n");
}

/// `12` → `+12`, `-3.5` → `-3.50`: the signed change in a delta table.
fn signed(d: f64, decimals: usize) -> String {
    let s = thousands(d, decimals);
    if d > 0.0 && s.chars().any(|c| ('1'..='9').contains(&c)) {
        format!("+{s}")
    } else {
        s
    }
}

fn deltas(h: &mut String, base: &Input, o: &Input) {
    let (a, b) = (&base.plan, &o.plan);
    let (xa, xb) = (ExtraTotals::of(a), ExtraTotals::of(b));
    let _ = writeln!(
        h,
        "<table id=\"deltas\">\n<tr><th></th><th>{}</th><th>{}</th><th>change</th></tr>",
        esc(&base.label),
        esc(&o.label)
    );
    let rows = [
        (
            "candidate-weeks over target (V)",
            a.rounded.violation,
            b.rounded.violation,
            2,
        ),
        ("cost (C)", a.rounded.cost, b.rounded.cost, 2),
        ("extra seat minutes", xa.seat_minutes, xb.seat_minutes, 0),
        ("extra rater minutes", xa.rater_minutes, xb.rater_minutes, 0),
    ];
    for (name, x, y, d) in rows {
        let _ = writeln!(
            h,
            "<tr><td>{name}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            thousands(x, d),
            thousands(y, d),
            signed(y - x, d)
        );
    }
    for wa in &a.waits {
        let Some(wb) = b.waits.iter().find(|w| w.exam == wa.exam) else {
            continue;
        };
        let exam = esc(&wa.exam);
        for (name, x, y) in [
            ("p50", wa.p50, wb.p50),
            ("p90", wa.p90, wb.p90),
            ("max", wa.max, wb.max),
        ] {
            let change = wait_change(x, y);
            let _ = writeln!(
                h,
                "<tr><td>{exam} {name} wait (weeks)</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                pct(x),
                pct(y),
                esc(&change)
            );
        }
        let late = |w: &ExamWaits| w.late_candidates + w.beyond_candidates;
        let _ = writeln!(
            h,
            "<tr><td>{exam} late or not examined by deadline</td><td>{}</td><td>{}</td>\
             <td>{}</td></tr>",
            thousands(late(wa), 0),
            thousands(late(wb), 0),
            signed(late(wb) - late(wa), 0),
        );
    }
    h.push_str("</table>\n");
}

/// The change of a wait percentile from `x` (base) to `y` (compared). A
/// lower bound ("at least N weeks") on one side bounds the change: the
/// other way for the base (the true base may be longer, so the change at
/// most), this way for the compared plan. Two lower bounds say nothing.
fn wait_change(x: Option<Percentile>, y: Option<Percentile>) -> String {
    match (x, y) {
        (Some(x), Some(y)) => {
            let d = signed((y.weeks - x.weeks) as f64, 0);
            match (x.at_least, y.at_least) {
                (false, false) => d,
                (true, false) => format!("≤ {d}"),
                (false, true) => format!("≥ {d}"),
                (true, true) => "?".into(),
            }
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_wait_change_against_a_lower_bound_is_a_bound_or_unknown() {
        let p = |weeks, at_least| Some(Percentile { weeks, at_least });
        assert_eq!(wait_change(p(3, false), p(5, false)), signed(2.0, 0));
        // Base "≥11", compared 8: the change is at most −3.
        assert_eq!(
            wait_change(p(11, true), p(8, false)),
            format!("≤ {}", signed(-3.0, 0))
        );
        // Base 8, compared "≥11": at least +3.
        assert_eq!(
            wait_change(p(8, false), p(11, true)),
            format!("≥ {}", signed(3.0, 0))
        );
        assert_eq!(wait_change(p(11, true), p(11, true)), "?");
        assert_eq!(wait_change(None, p(1, false)), "");
    }

    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href=\"x\">R&D's</a>"),
            "&lt;a href=&quot;x&quot;&gt;R&amp;D&#39;s&lt;/a&gt;"
        );
    }

    #[test]
    fn signed_changes() {
        assert_eq!(signed(12.0, 0), "+12");
        assert_eq!(signed(-3.5, 2), "-3.50");
        assert_eq!(signed(0.0, 0), "0");
        assert_eq!(signed(0.001, 0), "0");
    }
}
