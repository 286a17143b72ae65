//! `examcap drill`: a what-if drill against a running service
//! (`DrillService.RunDrill`, roles drill and planner), as ops run it: shocks
//! (surge, demand delta, location closure, rater shortage) on a copy of a
//! stored scenario, solved and compared with the base plan. The drill's
//! scenario and plan are stored, never published.

use anyhow::anyhow;
use clap::Args;
use examcap::api::shock_proto;
use examcap::client::{authed, call_failure, connect, is_caller_code, ClientError, MAX_MESSAGE};
use examcap::proto::{self, ExamWait};
use tonic::transport::Channel;

use crate::shock_cli::ShockArgs;
use crate::Failure;

#[derive(Debug, Args)]
pub struct DrillArgs {
    /// The examcap service, e.g. http://127.0.0.1:50051.
    #[arg(long, value_name = "URL")]
    server: String,
    /// The stored scenario to shock (default: the published plan's).
    #[arg(long, value_name = "SCENARIO_ID")]
    base: Option<String>,
    /// Name of the shocked scenario (default: `<base name>+drill`).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    #[command(flatten)]
    shocks: ShockArgs,
    /// Bearer token, of role drill or planner (or the EXAMCAP_TOKEN
    /// environment variable).
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
}

pub fn cmd_drill(a: &DrillArgs) -> Result<(), Failure> {
    let token = examcap::client::token_or_env(a.token.as_deref());
    let (labels, shocks): (Vec<String>, Vec<_>) = a.shocks.shocks().into_iter().unzip();
    let title = labels
        .iter()
        .zip(&shocks)
        .map(|(l, s)| format!("{} {}", l.split(' ').next().unwrap_or(l), describe(s)))
        .collect::<Vec<_>>()
        .join(", ");
    let response = crate::block_on(run(a, token.as_deref(), &labels, &shocks))??;
    crate::emit(&render_drill(&title, &response))
}

/// A shock in the flag's own syntax, for the drill's headline.
fn describe(s: &examcap::drill::ShockSpec) -> String {
    use examcap::drill::{CapacityTarget, DemandChange, ShockSpec};
    match s {
        ShockSpec::Demand {
            region,
            exam,
            from_week,
            to_week,
            change,
        } => {
            let any = |x: &Option<String>| x.clone().unwrap_or_else(|| "*".into());
            let by = match change {
                DemandChange::Multiplier(m) => format!("×{m}"),
                DemandChange::Delta(d) => format!("{d:+}/week"),
            };
            match change {
                DemandChange::Multiplier(_) if region.is_none() => {
                    format!("{} {by} weeks {from_week}-{to_week}", any(exam))
                }
                _ => format!(
                    "{}:{} {by} weeks {from_week}-{to_week}",
                    any(region),
                    any(exam)
                ),
            }
        }
        ShockSpec::Capacity {
            target,
            from_week,
            to_week,
            factor,
        } => {
            let who = match target {
                CapacityTarget::Location(l) | CapacityTarget::RatingPool(l) => l,
            };
            format!("{who} ×{factor} weeks {from_week}-{to_week}")
        }
    }
}

async fn run(
    a: &DrillArgs,
    token: Option<&str>,
    labels: &[String],
    shocks: &[examcap::drill::ShockSpec],
) -> Result<proto::RunDrillResponse, Failure> {
    let client_failure = |e: ClientError| {
        if e.is_input() {
            Failure::Input(format!("examcap drill: {e}"))
        } else {
            Failure::Internal(anyhow!("{e}"))
        }
    };
    // The caller's mistakes (a bad shock, an unknown base, the wrong role)
    // exit 2, each shock's named by its flag.
    let status = |rpc: &str, s: tonic::Status| {
        let said = crate::shock_cli::in_flags(&s, labels, |f| match f {
            "base_scenario_id" => "--base".to_string(),
            "name" => "--name".to_string(),
            other => other.to_string(),
        })
        .unwrap_or_else(|| call_failure(&s, token.is_some()));
        let message = format!("examcap drill: {rpc}: {said}");
        if is_caller_code(s.code()) {
            Failure::Input(message)
        } else {
            Failure::Internal(anyhow!("{:?}: {message}", s.code()))
        }
    };
    let channel: Channel = connect(&a.server).await.map_err(client_failure)?;
    let base_scenario_id = match &a.base {
        Some(id) => id.clone(),
        None => {
            let mut plans = proto::plan_service_client::PlanServiceClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE);
            let req = authed(proto::GetPublishedRequest {}, token).map_err(client_failure)?;
            let published = plans
                .get_published(req)
                .await
                .map_err(|s| match s.code() {
                    tonic::Code::NotFound => Failure::Input(
                        "examcap drill: no plan is published yet: give the scenario to shock \
                         with --base SCENARIO_ID"
                            .into(),
                    ),
                    _ => status("GetPublished (no --base given)", s),
                })?
                .into_inner();
            published
                .summary
                .map(|s| s.scenario_id)
                .ok_or_else(|| Failure::Internal(anyhow!("GetPublished gave no summary")))?
        }
    };
    let mut drills = proto::drill_service_client::DrillServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE);
    let req = authed(
        proto::RunDrillRequest {
            base_scenario_id,
            shocks: shocks.iter().map(shock_proto).collect(),
            name: a.name.clone().unwrap_or_default(),
        },
        token,
    )
    .map_err(client_failure)?;
    Ok(drills
        .run_drill(req)
        .await
        .map_err(|s| status("RunDrill", s))?
        .into_inner())
}

/// p50/p90/max of an exam's waits, `>=` where censored by the horizon.
fn wait_cell(w: Option<&ExamWait>) -> String {
    let p = |p: &Option<proto::Percentile>| match p {
        Some(p) if p.at_least => format!(">={}", p.weeks),
        Some(p) => p.weeks.to_string(),
        None => "-".into(),
    };
    match w {
        Some(w) => format!("{}/{}/{}", p(&w.p50), p(&w.p90), p(&w.max)),
        None => "-".into(),
    }
}

/// A drill's comparison with its base plan, as `demo` and `drill` print it:
/// the LP's ΔV* and ΔC, the integral plans' ΔV and ΔC, extra capacity and
/// the waits that change.
pub fn render_drill(title: &str, drill: &proto::RunDrillResponse) -> String {
    let mut text = String::new();
    let Some(c) = &drill.comparison else {
        return text;
    };
    text.push_str(&format!(
        "\nDrill: {title} (scenario {})\n  \
         LP:            ΔV* {:>+9.1}   ΔC {:>+12.2}   (V: over-target candidate-weeks)\n  \
         integral plan: ΔV  {:>+9.1}   ΔC {:>+12.2}\n",
        drill.drill_scenario_id,
        c.delta_violation,
        c.delta_cost,
        c.delta_rounded_violation,
        c.delta_rounded_cost
    ));
    if let (Some(b), Some(a)) = (&c.extra_before, &c.extra_after) {
        text.push_str(&format!(
            "  extra seat minutes {:.0} → {:.0}, extra rater minutes {:.0} → {:.0}\n",
            b.seat_minutes, a.seat_minutes, b.rater_minutes, a.rater_minutes
        ));
    }
    // Late and beyond as the solve's table has them: examined after the
    // target, and due in the horizon but not examined in it. A surge can
    // raise them while p50/p90/max stay (the surged exam was left out of
    // the table then).
    let counts = |w: Option<&ExamWait>| {
        w.map_or((0.0, 0.0), |w| {
            (w.late_candidates.round(), w.beyond_candidates.round())
        })
    };
    text.push_str(
        "  waits p50/p90/max (weeks)   before        after         late            beyond\n",
    );
    for w in &c.waits {
        let (b, a) = (w.before.as_ref(), w.after.as_ref());
        let (before, after) = (wait_cell(b), wait_cell(a));
        let ((late_b, beyond_b), (late_a, beyond_a)) = (counts(b), counts(a));
        if before != after || (late_b, beyond_b) != (late_a, beyond_a) {
            let late = format!("{late_b} → {late_a}");
            text.push_str(&format!(
                "  {:<26}  {before:<12}  {after:<12}  {late:<14}  {beyond_b} → {beyond_a}\n",
                w.exam,
            ));
        }
    }
    text.push_str("  (exams whose waits, late and beyond candidates do not change are left out)\n");
    if let (Some(d), Some(b)) = (&drill.drill, &drill.base) {
        text.push_str(&format!(
            "  drill plan {} against base plan {}: stored, never published\n",
            d.plan_id, b.plan_id
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An exam whose wait percentiles stay but whose late candidates rise
    /// is listed, with both counts; one where nothing changes is not.
    #[test]
    fn the_drill_lists_exams_whose_late_candidates_change() {
        let wait = |max: i64, late: f64| ExamWait {
            max: Some(proto::Percentile {
                weeks: max,
                at_least: false,
            }),
            late_candidates: late,
            beyond_candidates: 1.0,
            ..Default::default()
        };
        let change = |exam: &str, before: ExamWait, after: ExamWait| proto::WaitChange {
            exam: exam.into(),
            before: Some(before),
            after: Some(after),
        };
        let drill = proto::RunDrillResponse {
            drill_scenario_id: "d".into(),
            comparison: Some(proto::Comparison {
                waits: vec![
                    change("SURGED", wait(4, 29.0), wait(4, 53.0)),
                    change("CALM", wait(4, 2.0), wait(4, 2.0)),
                    change("LONGER", wait(4, 2.0), wait(6, 2.0)),
                ],
                ..Default::default()
            }),
            ..Default::default()
        };
        let text = render_drill("t", &drill);
        let row = |exam: &str| text.lines().find(|l| l.trim_start().starts_with(exam));
        // Late and beyond apart, as the solve's table has them (the sum
        // read as "late" there).
        let surged = row("SURGED").unwrap_or_else(|| panic!("{text}"));
        fn cols(l: &str) -> Vec<String> {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .skip(3)
                .map(String::from)
                .collect()
        }
        assert_eq!(cols(surged), ["29 → 53", "1 → 1"], "{surged}");
        let longer = row("LONGER").unwrap_or_else(|| panic!("{text}"));
        assert_eq!(cols(longer), ["2 → 2", "1 → 1"], "{longer}");
        assert!(row("CALM").is_none(), "{text}");
        // Beyond alone changing lists the exam.
        let mut more = drill.clone();
        let after = more.comparison.as_mut().unwrap().waits[1]
            .after
            .as_mut()
            .unwrap();
        after.beyond_candidates = 3.0;
        let text = render_drill("t", &more);
        let calm = text.lines().find(|l| l.trim_start().starts_with("CALM"));
        assert_eq!(
            calm.map(cols),
            Some(vec!["2 → 2".into(), "1 → 3".into()]),
            "{text}"
        );
    }
}
