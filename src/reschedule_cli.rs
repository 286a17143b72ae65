//! `examcap reschedule`: re-plan a published plan after a surge, against a
//! running service (`--server URL`) or offline on files (`--plan PLAN.json
//! --scenario FILE`). Both forms produce the same RescheduleService events
//! (the offline form builds them with the service's own functions) and
//! print them the same way: the repair, the re-plan, and the diff as tables.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, Context};
use clap::Args;
use examcap::api::shock_proto;
use examcap::client::{authed, call_failure, connect, is_caller_code, ClientError, MAX_MESSAGE};
use examcap::drill::{self, ShockSpec};
use examcap::proto::reschedule_event::Event;
use examcap::proto::reschedule_service_client::RescheduleServiceClient;
use examcap::proto::{self, RescheduleStatus};
use examcap::reschedule::{diff_event, end, repair_event, replan_event, MAX_SIGMA};
use examcap::store::PlanRecord;
use examcap_solver::plan::PlanStatus;
use examcap_solver::repair::repair;
use examcap_solver::reschedule::{check_published, replan, touched_by, RescheduleError};
use examcap_solver::PlanOptions;

use crate::shock_cli::ShockArgs;
use crate::{load, plan_bytes, scenario_bytes, Failure};

/// Largest message accepted from the server (a national plan's diff is small,
/// but a summary of many moves is not).

#[derive(Debug, Args)]
pub struct RescheduleArgs {
    /// The examcap service, e.g. http://127.0.0.1:50051: re-plan its plan.
    #[arg(long, value_name = "URL", conflicts_with_all = ["scenario", "out", "out_scenario"])]
    server: Option<String>,
    /// With --server: the id of the plan to start from (default: the
    /// published plan). Offline: the published plan's JSON file.
    /// (A path, so that any file name is taken; an id must be text.)
    #[arg(long, value_name = "ID|PLAN.json")]
    plan: Option<PathBuf>,
    /// Offline: the scenario file the plan was solved for.
    #[arg(long, value_name = "FILE", requires = "plan")]
    scenario: Option<PathBuf>,
    #[command(flatten)]
    shocks: ShockArgs,
    /// Weeks 0..F-1 keep the published allocation (invitations are out).
    #[arg(long, value_name = "F", default_value_t = 0, value_parser = crate::whole::<u32>,
          allow_negative_numbers = true)]
    freeze: u32,
    /// Stability weight σ ≥ 0: the re-plan pays σ per candidate moved.
    #[arg(long, value_name = "SIGMA", default_value_t = 0.0, value_parser = sigma,
          allow_negative_numbers = true)]
    sigma: f64,
    /// Bearer token for --server (or the EXAMCAP_TOKEN environment variable).
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
    /// Offline: write the re-plan as JSON to this file.
    #[arg(long, value_name = "PLAN.json")]
    out: Option<PathBuf>,
    /// Offline: write the shocked scenario the re-plan was solved for, so
    /// that `report --compare` and `calendar` can read the re-plan.
    #[arg(long, value_name = "FILE")]
    out_scenario: Option<PathBuf>,
    /// Rows of the moves and extra-capacity tables to print (the largest
    /// changes first).
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = crate::whole::<usize>,
          allow_negative_numbers = true)]
    rows: usize,
}

fn sigma(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && (0.0..=MAX_SIGMA).contains(v))
        .ok_or_else(|| format!("must be a number in [0, {MAX_SIGMA}], got {s:?}"))
}

pub fn cmd_reschedule(a: &RescheduleArgs) -> Result<(), Failure> {
    // Checked before the re-plan, not after it.
    let plan = a.plan.as_deref();
    let inputs: Vec<&std::path::Path> = plan.into_iter().chain(a.scenario.as_deref()).collect();
    for out in a.out.iter().chain(&a.out_scenario) {
        crate::check_out(out, &inputs)?;
    }
    if a.server.is_none() {
        crate::one_stdin(&[("--plan", plan), ("--scenario", a.scenario.as_deref())])?;
    }
    if let (Some(p), Some(s)) = (&a.out, &a.out_scenario) {
        if crate::same_path(p, s) {
            return Err(Failure::Input(format!(
                "examcap reschedule: --out and --out-scenario are both {}",
                p.display()
            )));
        }
    }
    // What the diff is against: the published plan unless one was named.
    let base = match (&a.plan, &a.server) {
        (None, _) => "the published plan".to_string(),
        (Some(id), Some(_)) => format!("plan {}", id.display()),
        (Some(file), None) => file.display().to_string(),
    };
    // Each answer is printed as it comes: the repair is what ops act on
    // while the re-plan runs, and it stays on screen if the re-plan fails.
    let mut show = |e: &Event| crate::emit(&render(e, a.rows, &base));
    match (&a.server, &a.scenario) {
        (Some(url), _) => online(url, a, &mut show),
        (None, Some(_)) => offline(a, &mut show),
        (None, None) => Err(Failure::Input(
            "examcap reschedule: give --server URL, or --plan PLAN.json --scenario FILE".into(),
        )),
    }
}

/// Where each event goes as it arrives.
type Show<'a> = &'a mut dyn FnMut(&Event) -> Result<(), Failure>;

fn online(url: &str, a: &RescheduleArgs, show: Show) -> Result<(), Failure> {
    let plan_id = match &a.plan {
        None => String::new(),
        Some(id) => crate::plan_id_arg("reschedule --plan", id)?.to_string(),
    };
    let token = examcap::client::token_or_env(a.token.as_deref());
    let msg = proto::RescheduleRequest {
        plan_id,
        shocks: a
            .shocks
            .shocks()
            .iter()
            .map(|(_, s)| shock_proto(s))
            .collect(),
        freeze_weeks: a.freeze,
        sigma: a.sigma,
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let labels: Vec<String> = a.shocks.shocks().into_iter().map(|(l, _)| l).collect();
    rt.block_on(async move {
        let client_error = |e: ClientError| {
            if e.is_input() {
                Failure::Input(format!("examcap reschedule: {e}"))
            } else {
                Failure::Internal(anyhow!(e))
            }
        };
        let channel = connect(url).await.map_err(client_error)?;
        let mut client =
            RescheduleServiceClient::new(channel).max_decoding_message_size(MAX_MESSAGE);
        let req = authed(msg, token.as_deref()).map_err(client_error)?;
        let token_given = token.is_some();
        let status = |s: tonic::Status| {
            if is_caller_code(s.code()) {
                let said = in_flags(&s, &labels).unwrap_or_else(|| call_failure(&s, token_given));
                Failure::Input(format!("examcap reschedule: {said}"))
            } else {
                Failure::Internal(anyhow!("{}: {}", s.code(), s.message()))
            }
        };
        let mut stream = client.reschedule(req).await.map_err(status)?.into_inner();
        while let Some(ev) = stream.message().await.map_err(status)? {
            if let Some(e) = ev.event.filter(|e| !matches!(e, Event::Progress(_))) {
                show(&e)?;
            }
        }
        Ok(())
    })
}

/// A refused request's field violations in the flags that set them, as the
/// offline form words them. `None` without a BadRequest detail.
fn in_flags(s: &tonic::Status, labels: &[String]) -> Option<String> {
    crate::shock_cli::in_flags(s, labels, request_flag)
}

/// The flag that sets a request field: `freeze_weeks` is `--freeze`,
/// `shocks[2]...` the flag of the third shock (see [`ShockArgs::shocks`]).
fn flag_of(field: &str, labels: &[String]) -> String {
    crate::shock_cli::flag_of(field, labels, request_flag)
}

/// The flag of a request field other than a shock's.
fn request_flag(field: &str) -> String {
    match field {
        "freeze_weeks" => "--freeze".to_string(),
        "sigma" => "--sigma".to_string(),
        "plan_id" => "--plan".to_string(),
        other => other.to_string(),
    }
}

fn offline(a: &RescheduleArgs, show: Show) -> Result<(), Failure> {
    let start = Instant::now();
    let (Some(plan_file), Some(scenario_file)) = (&a.plan, &a.scenario) else {
        return Err(Failure::Input(
            "examcap reschedule: offline needs --plan PLAN.json and --scenario FILE".into(),
        ));
    };
    let base = load(scenario_file)?;
    let published = crate::read_plan(plan_file)?;
    let plan_file = plan_file.display();
    if published.scenario.content_hash != base.content_hash() {
        return Err(Failure::Input(format!(
            "examcap reschedule: {plan_file} was solved for another scenario than {}",
            scenario_file.display()
        )));
    }
    // The file may have been edited: it must fit the scenario it claims,
    // before any shock, whatever the freeze.
    check_published(&base, &published).map_err(|v| {
        Failure::Input(format!(
            "examcap reschedule: {plan_file} does not fit {}:\n{v}",
            scenario_file.display()
        ))
    })?;
    let (labels, specs): (Vec<String>, Vec<ShockSpec>) = a.shocks.shocks().into_iter().unzip();
    let shocked = drill::apply(
        &base,
        &specs,
        &examcap_solver::validate::derived_name(&base.name, "+reschedule"),
    )
    .map_err(|e| {
        // In flags, as the online form says them: `shocks[1]...` is `--surge #2`.
        let mut said: Vec<String> = e
            .errors
            .into_iter()
            .map(|f| format!("{}: {}", flag_of(&f.path, &labels), f.message))
            .collect();
        if e.total > said.len() {
            said.push(format!("... and {} more", e.total - said.len()));
        }
        Failure::Input(format!("examcap reschedule: {}", said.join("; ")))
    })?;
    // As the service refuses it: a scenario past the document limit could
    // not be read back (`--out-scenario` wrote one `validate` refused).
    let limit = examcap_solver::validate::MAX_DOCUMENT_BYTES;
    let size = serde_json::to_vec(&shocked)
        .context("scenario to JSON")?
        .len();
    if size > limit {
        return Err(Failure::Input(format!(
            "examcap reschedule: the shocks: the shocked scenario would be {size} bytes as \
             JSON, more than the {limit} bytes (16 MiB) a scenario may be"
        )));
    }
    let freeze = a.freeze as usize;
    if freeze > base.horizon_weeks {
        // As the service words it (reschedule::params), in flag terms.
        return Err(Failure::Input(format!(
            "examcap reschedule: --freeze: must be <= the horizon ({} weeks), got {freeze}",
            base.horizon_weeks
        )));
    }
    let failed = |e: RescheduleError| match e {
        RescheduleError::Freeze(f) => Failure::Input(format!("examcap reschedule: {f}")),
        RescheduleError::Published(v) => Failure::Input(format!(
            "examcap reschedule: {plan_file} does not fit {}:\n{v}",
            scenario_file.display()
        )),
        RescheduleError::Plan(examcap_solver::plan::PlanError::Invalid(v)) => {
            crate::invalid("the shocked scenario", &v)
        }
        other => Failure::Internal(anyhow!(other)),
    };
    let touched = touched_by(&base, &shocked, &drill::named_exams(&base, &specs));
    let rep = repair(&shocked, &published, &touched, freeze).map_err(failed)?;
    let scenario_id = shocked.content_hash();
    let first = repair_event(
        &scenario_id,
        &touched,
        &published,
        &rep,
        start.elapsed().as_secs_f64(),
    );
    if let Some(e) = &first.event {
        show(e)?;
    }
    let re = replan(
        &shocked,
        &published,
        &touched,
        freeze,
        a.sigma,
        &PlanOptions::default(),
    )
    .map_err(failed)?;
    // Both or neither: a re-plan without its shocked scenario cannot be
    // read by `calendar` or `report`.
    let mut files = Vec::new();
    if let Some(out) = &a.out {
        files.push((out.as_path(), plan_bytes(&re)?));
    }
    if let Some(out) = &a.out_scenario {
        files.push((out.as_path(), scenario_bytes(&shocked)?));
    }
    crate::write_all_atomically(&files)?;
    let status = match re.status {
        PlanStatus::Optimal => RescheduleStatus::Optimal,
        PlanStatus::Stage2TimeLimit => RescheduleStatus::Stage2TimeLimit,
    };
    let rec = PlanRecord {
        id: re.fingerprint(),
        scenario_id,
        created_unix: 0,
        drill: false,
        plan: re,
    };
    let message = match &a.out {
        Some(out) => format!("re-plan written to {}", out.display()),
        None => "re-plan not written (give --out PLAN.json to keep it)".into(),
    };
    let rest = [
        replan_event(&rec, start.elapsed().as_secs_f64()),
        diff_event(&published, &rec.plan),
        end(status, message),
    ];
    for e in rest.iter().filter_map(|e| e.event.as_ref()) {
        show(e)?;
    }
    Ok(())
}

fn wait_cell(w: Option<&proto::ExamWait>) -> String {
    let p = |p: &Option<proto::Percentile>| match p {
        Some(p) if p.at_least => format!(">={}", p.weeks),
        Some(p) => p.weeks.to_string(),
        None => "-".into(),
    };
    w.map_or_else(
        || "-".into(),
        |w| format!("{}/{}/{}", p(&w.p50), p(&w.p90), p(&w.max)),
    )
}

fn waits_table(out: &mut String, waits: &[proto::WaitChange]) {
    out.push_str(&format!(
        "  {:<20} {:>16} {:>16}\n",
        "exam", "before p50/p90/max", "after"
    ));
    for w in waits {
        out.push_str(&format!(
            "  {:<20} {:>16} {:>16}\n",
            w.exam,
            wait_cell(w.before.as_ref()),
            wait_cell(w.after.as_ref())
        ));
    }
}

fn moves_table(out: &mut String, moves: &[proto::CandidateMove], rows: usize) {
    let mut m: Vec<&proto::CandidateMove> = moves.iter().collect();
    let delta = |m: &proto::CandidateMove| m.after as i64 - m.before as i64;
    m.sort_by_key(|x| {
        (
            std::cmp::Reverse(delta(x).abs()),
            x.week,
            x.location.clone(),
        )
    });
    let moved: i64 = moves.iter().map(|m| delta(m).abs()).sum();
    out.push_str(&format!(
        "  {} cells changed, {moved} candidate moves in all\n",
        moves.len()
    ));
    out.push_str(&format!(
        "  {:<12} {:>5} {:<20} {:>7} {:>7} {:>7}\n",
        "location", "week", "exam", "before", "after", "change"
    ));
    for x in m.iter().take(rows) {
        out.push_str(&format!(
            "  {:<12} {:>5} {:<20} {:>7} {:>7} {:>+7}\n",
            x.location,
            x.week,
            x.exam,
            x.before,
            x.after,
            delta(x)
        ));
    }
    cut_rows(out, m.len(), rows);
}

/// The line a table cut at `rows` of `total` ends with.
fn cut_rows(out: &mut String, total: usize, rows: usize) {
    if total > rows {
        out.push_str(&format!("  ... and {} more (--rows)\n", total - rows));
    }
}

/// One event as text: the repair, the re-plan, the diff tables (against
/// `base`, which names the plan the re-plan started from), or how it ended.
pub fn render(e: &Event, rows: usize, base: &str) -> String {
    let mut out = String::new();
    match e {
        Event::Repair(r) => {
            out.push_str(&format!(
                    "Repair (first answer, {:.0} ms): V = {:.3}, C = {:.2}; placed {}, removed {}; touched exams: {}\n",
                    r.seconds * 1e3,
                    r.violation,
                    r.cost,
                    r.placed,
                    r.removed,
                    r.touched_exams.join(", ")
                ));
            moves_table(&mut out, &r.moves, rows);
            waits_table(&mut out, &r.waits);
        }
        Event::Replan(r) => {
            let s = r.plan.clone().unwrap_or_default();
            out.push_str(&format!(
                    "\nOptimal re-plan ({:.2} s): V* = {:.3}, C = {:.2} (integral V = {:.3}, C = {:.2})\n  plan {} (not published)\n",
                    r.seconds, s.stage1_violation, s.stage2_cost, s.rounded_violation, s.rounded_cost, s.plan_id
                ));
        }
        Event::Diff(d) => {
            out.push_str(&format!("\nRe-plan against {base}\n"));
            moves_table(&mut out, &d.moves, rows);
            if !d.extra_changes.is_empty() {
                out.push_str(&format!(
                    "  extra capacity changed in {} cells:\n  {:<24} {:>5} {:>10} {:>10}\n",
                    d.extra_changes.len(),
                    "where",
                    "week",
                    "before",
                    "after"
                ));
                // Largest change first, as the moves are.
                let mut changes: Vec<&proto::ExtraChange> = d.extra_changes.iter().collect();
                let change = |c: &proto::ExtraChange| (c.after_minutes - c.before_minutes).abs();
                changes.sort_by(|a, b| change(b).total_cmp(&change(a)).then(a.week.cmp(&b.week)));
                for c in changes.iter().take(rows) {
                    let place = if c.pool.is_empty() {
                        format!("{}/{}", c.location, c.kind)
                    } else {
                        format!("raters {}", c.pool)
                    };
                    out.push_str(&format!(
                        "  {:<24} {:>5} {:>10.0} {:>10.0}\n",
                        place, c.week, c.before_minutes, c.after_minutes
                    ));
                }
                cut_rows(&mut out, changes.len(), rows);
            }
            waits_table(&mut out, &d.waits);
        }
        Event::End(e) => {
            let status =
                RescheduleStatus::try_from(e.status).map_or("unknown", |s| s.as_str_name());
            out.push_str(&format!("\n{status}: {}\n", e.message));
        }
        Event::Progress(_) => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::shock_cli::surge;
    use examcap::drill::DemandChange;

    /// The extra-capacity table is cut at --rows like the moves, largest
    /// change first, and says how many it left out (it showed the first
    /// cells in location order, silently).
    #[test]
    fn the_extra_capacity_table_shows_the_largest_changes_and_says_it_is_cut() {
        let change = |location: &str, week: u32, before: f64, after: f64| proto::ExtraChange {
            location: location.into(),
            kind: "booth".into(),
            week,
            before_minutes: before,
            after_minutes: after,
            ..Default::default()
        };
        let diff = Event::Diff(proto::RescheduleDiff {
            extra_changes: vec![
                change("AMS", 1, 0.0, 10.0),
                change("AMS", 2, 500.0, 0.0),
                change("UTR", 3, 0.0, 90.0),
            ],
            ..Default::default()
        });
        let text = render(&diff, 2, "plan p");
        let rows: Vec<&str> = text.lines().filter(|l| l.contains("/booth")).collect();
        assert_eq!(rows.len(), 2, "{text}");
        assert!(
            rows[0].trim_start().starts_with("AMS/booth") && rows[0].contains("500"),
            "{text}"
        );
        assert!(rows[1].trim_start().starts_with("UTR/booth"), "{text}");
        assert!(text.contains("extra capacity changed in 3 cells"), "{text}");
        assert!(text.contains("  ... and 1 more (--rows)\n"), "{text}");
        assert!(!render(&diff, 3, "plan p").contains("more (--rows)"));
    }

    #[test]
    fn surges_parse_or_say_why() {
        assert_eq!(
            surge("SPREKEN_B1:1.6:10:16").unwrap(),
            ShockSpec::Demand {
                region: None,
                exam: Some("SPREKEN_B1".into()),
                from_week: 10,
                to_week: 16,
                change: DemandChange::Multiplier(1.6),
            }
        );
        assert!(surge("A:1.6:10").unwrap_err().contains("expected"));
        assert!(surge("A:-1:1:2").unwrap_err().contains("multiplier"));
        assert!(surge("A:1:3:2").unwrap_err().contains("after"));
        assert!(sigma("-0.1").is_err());
        assert_eq!(sigma("0.1"), Ok(0.1));
    }
}
