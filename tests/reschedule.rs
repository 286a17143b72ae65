//! RescheduleService over real gRPC: a national scenario (16 weeks) is
//! solved and published, then Spreken B1 surges ×1.6 in weeks 4–8.

use std::time::Duration;

use examcap::proto::reschedule_event::Event;
use examcap::proto::reschedule_service_client::RescheduleServiceClient;
use examcap::proto::{self, RescheduleStatus};
use examcap_solver::generate::{national, GenerateOptions};
use examcap_solver::Plan;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

mod common;

use common::{
    admitted_solve, config, demand_shock, publish_scenario, req, solve_req, start,
    violation_fields, Running, DRILL, PLANNER, REGISTRATION,
};

const FREEZE: u32 = 2;

/// Puts, solves and publishes the 16-week national scenario; returns the
/// published plan.
async fn publish_national(srv: &Running) -> Plan {
    let sc = national(&GenerateOptions {
        weeks: 16,
        ..GenerateOptions::default()
    });
    publish_scenario(srv.channel().await, &serde_json::to_value(&sc).unwrap()).await;
    published(srv).await
}

async fn published(srv: &Running) -> Plan {
    let got = srv
        .plans()
        .await
        .get_published(req(proto::GetPublishedRequest {}, PLANNER))
        .await
        .unwrap()
        .into_inner();
    serde_json::from_str(&got.plan_json).unwrap()
}

/// The surge most tests use: Spreken B1 ×1.6 in weeks 4–8.
fn surge() -> proto::Shock {
    demand_shock("SPREKEN_B1", 4, 8, 1.6)
}

fn request(shocks: Vec<proto::Shock>) -> proto::RescheduleRequest {
    proto::RescheduleRequest {
        shocks,
        freeze_weeks: FREEZE,
        sigma: 0.1,
        ..Default::default()
    }
}

/// Every event of a stream, or the call's status.
async fn events(
    c: &mut RescheduleServiceClient<Channel>,
    r: Request<proto::RescheduleRequest>,
) -> Result<Vec<Event>, Status> {
    let mut stream = c.reschedule(r).await?.into_inner();
    let mut out = Vec::new();
    while let Some(ev) = stream.message().await? {
        out.push(ev.event.expect("an event"));
    }
    Ok(out)
}

fn ends(events: &[Event]) -> &proto::RescheduleEnd {
    match events.last() {
        Some(Event::End(e)) => e,
        other => panic!("the stream did not end with an end event: {other:?}"),
    }
}

/// The stream gave the repair, no re-plan or diff, and ended saying the
/// optimum was not reached.
fn assert_repair_only(evs: &[Event]) {
    assert!(matches!(evs.first(), Some(Event::Repair(_))), "{evs:?}");
    assert!(!evs
        .iter()
        .any(|e| matches!(e, Event::Replan(_) | Event::Diff(_))));
    let end = ends(evs);
    assert_eq!(end.status, RescheduleStatus::OptimumNotReached as i32);
    assert!(end.message.contains("only the repair"), "{}", end.message);
}

/// Cells (region, exam, location, week) → candidates of weeks < FREEZE.
fn frozen(
    rows: &[examcap_solver::plan::AllocationRow],
) -> Vec<(String, String, String, usize, u64)> {
    let mut v: Vec<_> = rows
        .iter()
        .filter(|a| a.week < FREEZE as usize)
        .map(|a| {
            (
                a.region.clone(),
                a.exam.clone(),
                a.location.clone(),
                a.week,
                a.candidates,
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_first_then_the_optimal_replan_unpublished() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    let before = publish_national(&srv).await;
    let mut c = srv.reschedules().await;
    let mut r = req(request(vec![surge()]), DRILL);
    // A generous deadline: parsed, never reached.
    r.set_timeout(Duration::from_secs(600));
    let evs = events(&mut c, r).await.unwrap();

    let Some(Event::Repair(repair)) = evs.first() else {
        panic!("the repair is not the first answer: {:?}", evs.first());
    };
    assert!(repair.touched_exams.contains(&"SPREKEN_B1".to_string()));
    assert!(repair.placed > 0);
    assert!(repair.moves.iter().all(|m| m.week >= FREEZE));
    let replans: Vec<&proto::Replan> = evs
        .iter()
        .filter_map(|e| match e {
            Event::Replan(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(replans.len(), 1);
    let summary = replans[0].plan.as_ref().unwrap();
    assert!(
        repair.violation >= summary.stage1_violation - 1e-6 * summary.stage1_violation.max(1.0),
        "repair V {} below re-plan V* {}",
        repair.violation,
        summary.stage1_violation
    );
    assert!(evs.iter().any(|e| matches!(e, Event::Progress(_))));
    let Some(Event::Diff(d)) = evs.iter().rev().nth(1) else {
        panic!("no diff before the end");
    };
    assert!(!d.moves.is_empty());
    assert!(d
        .moves
        .iter()
        .all(|m| m.week >= FREEZE && m.before != m.after));
    assert!(d.waits.iter().any(|w| w.exam == "SPREKEN_B1"));
    let end = ends(&evs);
    assert_eq!(end.status, RescheduleStatus::Optimal as i32);

    // Stored, not published; frozen weeks as published.
    assert_eq!(published(&srv).await.fingerprint(), before.fingerprint());
    // Its scenario is the surge as it happened, not a drill's what-if.
    let scenarios = stored_scenarios(&srv).await;
    let shocked = scenarios
        .iter()
        .find(|s| s.scenario_id == summary.scenario_id)
        .expect("the re-plan's scenario is stored");
    assert!(shocked.reschedule && !shocked.drill, "{shocked:?}");
    assert!(
        scenarios
            .iter()
            .any(|s| s.scenario_id == shocked.base_scenario_id && !s.reschedule && !s.drill),
        "{scenarios:?}"
    );
    let mut p = srv.plans().await;
    let got = p
        .get_plan(req(
            proto::GetPlanRequest {
                plan_id: summary.plan_id.clone(),
                ..Default::default()
            },
            PLANNER,
        ))
        .await
        .unwrap()
        .into_inner();
    let re: Plan = serde_json::from_str(&got.plan_json).unwrap();
    assert_eq!(frozen(&re.allocation), frozen(&before.allocation));
    // Publish is a separate, explicit step.
    p.publish(req(
        proto::PublishRequest {
            plan_id: summary.plan_id.clone(),
        },
        PLANNER,
    ))
    .await
    .unwrap();
    assert_eq!(published(&srv).await.fingerprint(), re.fingerprint());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_before_the_replan_returns_the_repair_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    publish_national(&srv).await;
    let mut c = srv.reschedules().await;
    // The re-plan's time limit runs out before its first solver run: the
    // deterministic stand-in for a deadline that lands between the answers.
    let r = proto::RescheduleRequest {
        replan_time_limit_seconds: 1e-9,
        ..request(vec![surge()])
    };
    let evs = events(&mut c, req(r, PLANNER)).await.unwrap();
    assert_repair_only(&evs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_deadline_before_the_replan_returns_the_repair_and_says_so() {
    // The real thing: the client's grpc-timeout, no request option. Through
    // the service the 52-week national re-plan takes about 1.4 s on this
    // machine's 2 cores and the repair 40–80 ms (BENCHMARKS.md); 600 ms
    // lands between. (It was 1.5 s when the re-plan took over 2 s.)
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    let sc = national(&GenerateOptions {
        weeks: 52,
        ..GenerateOptions::default()
    });
    publish_scenario(srv.channel().await, &serde_json::to_value(&sc).unwrap()).await;
    let mut c = srv.reschedules().await;
    let mut r = req(
        proto::RescheduleRequest {
            freeze_weeks: 4,
            ..request(vec![demand_shock("SPREKEN_B1", 10, 16, 1.6)])
        },
        DRILL,
    );
    r.set_timeout(Duration::from_millis(600));
    let evs = events(&mut c, r)
        .await
        .expect("the stream ends before the deadline");
    assert_repair_only(&evs);
    // A deadline barely past the repair: the stream still ends with the
    // repair and its status (or, if the repair itself comes too late, the
    // call is DEADLINE_EXCEEDED), and no re-plan is started that could only
    // overrun it (HiGHS's first steps on this block take longer than the
    // time left; from Python, whose client enforces the deadline, the stream
    // was cut after the repair).
    for ms in [100, 150, 200] {
        let mut r = req(
            proto::RescheduleRequest {
                freeze_weeks: 4,
                ..request(vec![demand_shock("SPREKEN_B1", 10, 16, 1.6)])
            },
            DRILL,
        );
        r.set_timeout(Duration::from_millis(ms));
        match events(&mut c, r).await {
            Ok(evs) => {
                assert_repair_only(&evs);
                assert!(
                    !evs.iter().any(|e| matches!(e, Event::Progress(_))),
                    "{ms} ms: a re-plan was started: {evs:?}"
                );
            }
            // The repair came too late: said by the handler, or, when the
            // store's write ran past the deadline on a loaded machine, by
            // the deadline layer (seen 2 runs in 10 on 2 cores).
            Err(e) => assert!(
                e.code() == Code::DeadlineExceeded
                    && (e.message().contains("before the repair")
                        || e.message().contains("did not finish within its deadline")),
                "{ms} ms: {e:?}"
            ),
        }
    }
}

/// A re-plan whose deadline strikes around the repair either stores
/// nothing or stores its shocked scenario with its audit entry, never the
/// scenario alone (the handler's future is dropped at the deadline; the
/// scenario and its entry are one write).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_at_the_repair_leaves_no_unaudited_scenario() {
    use examcap::store::{SledStore, Store};
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    publish_national(&srv).await;
    let mut c = srv.reschedules().await;
    // Timeouts around the repair's few milliseconds; each call's shock
    // differs, so each would store a scenario of its own.
    for (k, ms) in [2, 4, 6, 8, 10, 12, 14, 16, 20, 25].into_iter().enumerate() {
        let mut r = req(
            request(vec![demand_shock(
                "SPREKEN_B1",
                4,
                8,
                1.1 + k as f64 / 100.0,
            )]),
            DRILL,
        );
        r.set_timeout(Duration::from_millis(ms));
        let _ = events(&mut c, r).await;
    }
    srv.stop().await;
    // A write task still finishing holds the store for a moment.
    let mut store = SledStore::open(dir.path());
    for _ in 0..50 {
        if store.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        store = SledStore::open(dir.path());
    }
    let store = store.expect("the store reopens once the server is gone");
    let audited: Vec<String> = store
        .audit_log()
        .unwrap()
        .into_iter()
        .filter(|e| e.rpc == "Reschedule")
        .map(|e| e.target)
        .collect();
    for sc in store.list_scenarios().unwrap() {
        if sc.drill.as_ref().is_some_and(|d| d.reschedule) {
            assert!(
                audited.contains(&sc.id),
                "{} stored without an audit entry",
                sc.id
            );
        }
    }
}

/// Every stored scenario, as a planner lists them.
async fn stored_scenarios(srv: &common::Running) -> Vec<proto::ScenarioInfo> {
    srv.scenarios()
        .await
        .list_scenarios(req(proto::ListScenariosRequest::default(), PLANNER))
        .await
        .unwrap()
        .into_inner()
        .scenarios
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_calls_get_clear_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    let mut c = srv.reschedules().await;
    let code = |r: Result<Vec<Event>, Status>| r.expect_err("an error").code();

    // Nothing published yet.
    let e = events(&mut c, req(request(vec![surge()]), PLANNER))
        .await
        .expect_err("nothing to re-plan");
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("no plan is published"), "{e:?}");

    let before = publish_national(&srv).await;
    let e = events(&mut c, req(request(vec![surge()]), REGISTRATION)).await;
    assert_eq!(code(e), Code::PermissionDenied);
    let e = events(&mut c, req(request(vec![]), PLANNER)).await;
    assert_eq!(code(e), Code::InvalidArgument);
    let bad_sigma = proto::RescheduleRequest {
        sigma: -1.0,
        ..request(vec![surge()])
    };
    let e = events(&mut c, req(bad_sigma, PLANNER)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("sigma:"), "{}", e.message());
    let bad_freeze = proto::RescheduleRequest {
        freeze_weeks: 17,
        ..request(vec![surge()])
    };
    let e = events(&mut c, req(bad_freeze, PLANNER)).await.unwrap_err();
    assert!(e.message().starts_with("freeze_weeks:"), "{}", e.message());
    // A shock without its kind and another's unknown exam, in one answer.
    let two = request(vec![
        proto::Shock { kind: None },
        demand_shock("NOPE", 4, 8, 1.6),
    ]);
    let e = events(&mut c, req(two, PLANNER)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(
        violation_fields(&e),
        ["shocks[0].kind", "shocks[1].demand.exam"]
    );
    // Every bad field in one answer: before the plan is read ...
    let long_name = "n".repeat(examcap_solver::validate::MAX_NAME_CHARS + 1);
    let many = proto::RescheduleRequest {
        sigma: -1.0,
        replan_time_limit_seconds: f64::NAN,
        name: long_name.clone(),
        ..request(vec![])
    };
    let e = events(&mut c, req(many, PLANNER)).await.unwrap_err();
    assert_eq!(
        violation_fields(&e),
        ["shocks", "sigma", "replan_time_limit_seconds", "name"]
    );
    // ... and after: a freeze past the horizon beside a shock's exam.
    let late = proto::RescheduleRequest {
        freeze_weeks: u32::MAX,
        ..request(vec![demand_shock("NOPE", 4, 8, 1.6)])
    };
    let e = events(&mut c, req(late, PLANNER)).await.unwrap_err();
    assert_eq!(
        violation_fields(&e),
        ["freeze_weeks", "shocks[0].demand.exam"]
    );
    // The request's own fields wait for the shocks, which need the plan's
    // scenario: they used to be named alone, the shocks only on the next try.
    let own = proto::RescheduleRequest {
        sigma: f64::INFINITY,
        name: long_name,
        ..request(vec![demand_shock("NOPE", 4, 8, 1.6)])
    };
    let e = events(&mut c, req(own, PLANNER)).await.unwrap_err();
    assert_eq!(
        violation_fields(&e),
        ["sigma", "name", "shocks[0].demand.exam"]
    );

    // Closing the busiest location of week 1 breaks the freeze of weeks 0–1.
    let mut load: std::collections::BTreeMap<&str, u64> = Default::default();
    for a in before.allocation.iter().filter(|a| a.week == 1) {
        *load.entry(a.location.as_str()).or_default() += a.candidates;
    }
    let (busiest, _) = load.iter().max_by_key(|(_, n)| **n).expect("week 1 used");
    let close = proto::Shock {
        kind: Some(proto::shock::Kind::Capacity(proto::CapacityShock {
            target: Some(proto::capacity_shock::Target::Location(busiest.to_string())),
            from_week: 1,
            to_week: 1,
            factor: 0.0,
        })),
    };
    let e = events(&mut c, req(request(vec![close]), PLANNER))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{}", e.message());
    assert!(
        e.message().contains("frozen week 1") && e.message().contains(busiest),
        "{}",
        e.message()
    );
    // Nothing was published by any of it, and no refused call left its
    // shocked scenario behind (only the published plan's).
    assert_eq!(published(&srv).await.fingerprint(), before.fingerprint());
    let scenarios = stored_scenarios(&srv).await;
    assert_eq!(scenarios.len(), 1, "{scenarios:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reschedules_against_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    let before = publish_national(&srv).await;
    let url = format!("http://{}", srv.addr);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_examcap"))
            .args([
                "reschedule",
                "--server",
                &url,
                "--token",
                DRILL,
                "--surge",
                "SPREKEN_B1:1.6:4:8",
                "--freeze",
                "2",
                "--sigma",
                "0.1",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for part in [
        "Repair (first answer",
        "Optimal re-plan",
        "(not published)",
        "Re-plan against the published plan",
        "RESCHEDULE_STATUS_OPTIMAL",
    ] {
        assert!(stdout.contains(part), "no {part:?} in:\n{stdout}");
    }
    assert_eq!(published(&srv).await.fingerprint(), before.fingerprint());
}

/// The CLI names what the user typed, not the request's fields: the
/// service's `freeze_weeks` and `shocks[1].demand.exam` are `--freeze` and
/// the second `--surge`, worded as the offline form words them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_names_its_flags_when_the_server_refuses_them() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    publish_national(&srv).await;
    let url = format!("http://{}", srv.addr);
    let run = move |args: Vec<&'static str>| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_examcap"))
                .args(["reschedule", "--server", &url, "--token", DRILL])
                .args(args)
                .output()
                .unwrap()
        })
    };
    let o = run(vec!["--surge", "SPREKEN_B1:1.6:4:8", "--freeze", "60"])
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--freeze: must be <= the horizon (16 weeks), got 60"),
        "{err}"
    );
    assert!(!err.contains("freeze_weeks"), "{err}");
    let o = run(vec![
        "--surge",
        "SPREKEN_B1:1.6:4:8",
        "--surge",
        "NOPE:1.6:4:8",
    ])
    .await
    .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--surge #2: unknown exam \"NOPE\""), "{err}");
    assert!(!err.contains("shocks["), "{err}");
}

/// A caller that goes away while its re-plan waits for a solve slot gives
/// its place in the queue up at once (as a Solve's caller does), not when
/// the slot frees and the re-plan starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_goes_away_while_the_replan_is_queued_gives_its_place_up() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(common::one_slot_config(dir.path(), 1)).await;
    publish_national(&srv).await;
    // A three-year solve holds the only slot, its stream open.
    let big = national(&GenerateOptions {
        weeks: 156,
        ..GenerateOptions::default()
    });
    let big_id = srv
        .scenarios()
        .await
        .put_scenario(req(
            proto::PutScenarioRequest {
                scenario_json: serde_json::to_string(&big).unwrap(),
                scenario: None,
            },
            PLANNER,
        ))
        .await
        .unwrap()
        .into_inner()
        .scenario_id;
    let mut p = srv.plans().await;
    let mut running = p
        .solve(solve_req(&big_id, PLANNER))
        .await
        .unwrap()
        .into_inner();
    running.message().await.unwrap().unwrap();
    // The reschedule takes the one queue place: its repair comes, its
    // re-plan waits for the slot; then its caller goes away.
    let mut c = srv.reschedules().await;
    let mut stream = c
        .reschedule(req(request(vec![surge()]), DRILL))
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap().event;
    assert!(matches!(first, Some(Event::Repair(_))), "{first:?}");
    drop(stream);
    // Its place is free again while the big solve still runs.
    let admitted = admitted_solve(&mut p, &big_id, Duration::from_secs(5))
        .await
        .expect("the place of the caller that went away is still taken");
    drop((admitted, running));
    srv.stop().await;
}

/// A drill's plan is a what-if: Publish refuses it (registration would
/// sell seats against it), and a re-plan started from it is a what-if too,
/// stored as a drill's and refused by Publish in turn. A re-plan of the
/// published plan with the same shocks is the one to publish. (A reviewer
/// published an "Amsterdam closed" drill, and a re-plan of it lost its
/// drill marking.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drills_plan_and_its_replans_cannot_be_published() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    let published = publish_scenario(srv.channel().await, &common::tiny()).await;
    let base_id = stored_scenarios(&srv).await[0].scenario_id.clone();
    let shock = demand_shock("SPK", 1, 2, 1.5);
    let drill = srv
        .drills()
        .await
        .run_drill(req(
            proto::RunDrillRequest {
                base_scenario_id: base_id,
                shocks: vec![shock.clone()],
                name: String::new(),
            },
            DRILL,
        ))
        .await
        .unwrap()
        .into_inner();
    let drill_plan = drill.drill.unwrap().plan_id;
    let mut plans = srv.plans().await;
    let publish = |id: &str| {
        req(
            proto::PublishRequest {
                plan_id: id.to_string(),
            },
            PLANNER,
        )
    };
    let refused = plans.publish(publish(&drill_plan)).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("is a drill's what-if and cannot be published"),
        "{}",
        refused.message()
    );
    assert_eq!(live_plan(&srv).await, published.plan_id);

    let mut c = srv.reschedules().await;
    let replan_of = |plan_id: &str| {
        req(
            proto::RescheduleRequest {
                plan_id: plan_id.to_string(),
                shocks: vec![shock.clone()],
                ..Default::default()
            },
            PLANNER,
        )
    };
    let evs = events(&mut c, replan_of(&drill_plan)).await.unwrap();
    let end = ends(&evs);
    assert_eq!(end.status(), RescheduleStatus::Optimal);
    assert!(
        end.message.contains("stored as a what-if"),
        "{}",
        end.message
    );
    let what_if = replan_summary(&evs);
    assert!(what_if.drill);
    let err = plans.publish(publish(&what_if.plan_id)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let scenario = stored_scenarios(&srv)
        .await
        .into_iter()
        .find(|s| s.scenario_id == what_if.scenario_id)
        .unwrap();
    assert!(scenario.drill && !scenario.reschedule, "{scenario:?}");

    // A Solve of the drill's scenario with other options than the drill's
    // own makes another plan, a drill's too: Publish refuses it, and a
    // re-plan of it is a what-if (a reviewer published one through such a
    // re-plan, while the Solve's plan was marked as no drill's).
    let mut stream = plans
        .solve(req(
            proto::SolveRequest {
                scenario_id: drill.drill_scenario_id.clone(),
                recommendations: 1,
                ..Default::default()
            },
            PLANNER,
        ))
        .await
        .unwrap()
        .into_inner();
    let mut solved = None;
    while let Some(ev) = stream.message().await.unwrap() {
        if let Some(proto::solve_event::Event::Done(s)) = ev.event {
            solved = Some(s);
        }
    }
    let solved = solved.unwrap();
    assert!(solved.plan_id != drill_plan && solved.drill);
    let err = plans.publish(publish(&solved.plan_id)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let evs = events(&mut c, replan_of(&solved.plan_id)).await.unwrap();
    let again = replan_summary(&evs);
    assert!(again.drill);
    let err = plans.publish(publish(&again.plan_id)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert_eq!(live_plan(&srv).await, published.plan_id);

    // From the published plan, the same shocks make a plan to publish.
    let evs = events(&mut c, replan_of("")).await.unwrap();
    let real = replan_summary(&evs);
    assert!(!real.drill);
    plans.publish(publish(&real.plan_id)).await.unwrap();
    assert_eq!(live_plan(&srv).await, real.plan_id);
    srv.stop().await;
}

/// The id of the published plan.
async fn live_plan(srv: &Running) -> String {
    srv.plans()
        .await
        .get_published(req(proto::GetPublishedRequest {}, PLANNER))
        .await
        .unwrap()
        .into_inner()
        .summary
        .unwrap()
        .plan_id
}

/// The summary of a stream's re-plan.
fn replan_summary(events: &[Event]) -> proto::PlanSummary {
    events
        .iter()
        .find_map(|e| match e {
            Event::Replan(r) => r.plan.clone(),
            _ => None,
        })
        .expect("a re-plan")
}

/// `examcap drill` runs a drill as ops would, from the command line: the
/// shocks DESIGN names (a demand change, a location closure, a rater
/// shortage) as flags, applied in flag order (surges, deltas, locations,
/// raters), against the published plan's scenario by default. The drill's
/// scenario is the one the same shocks make locally; a bad shock is named
/// by its flag (exit 2); nothing is published. `reschedule` takes the same
/// flags. (There was no drill command, and `reschedule` took `--surge` only.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_drills_and_reschedules_with_every_kind_of_shock() {
    use examcap::drill::{CapacityTarget, DemandChange, ShockSpec};
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    let before = publish_national(&srv).await;
    let url = format!("http://{}", srv.addr);
    let run = move |args: Vec<&'static str>| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_examcap"))
                .args([args[0], "--server", &url, "--token", DRILL])
                .args(&args[1..])
                .output()
                .unwrap()
        })
    };
    let sc = national(&GenerateOptions {
        weeks: 16,
        ..GenerateOptions::default()
    });
    let (location, pool) = (sc.locations[0].id.clone(), sc.rating_pools[0].id.clone());
    let region = sc.regions[0].id.clone();
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let o = run(vec![
        "drill",
        "--raters",
        leak(format!("{pool}:0.8:3:5")),
        "--location",
        leak(format!("{location}:0:4:4")),
        "--delta",
        leak(format!("{region}:SPREKEN_B1:25:2:6")),
    ])
    .await
    .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{stderr}");
    let shocked = examcap::drill::apply(
        &sc,
        &[
            ShockSpec::Demand {
                region: Some(region.clone()),
                exam: Some("SPREKEN_B1".into()),
                from_week: 2,
                to_week: 6,
                change: DemandChange::Delta(25.0),
            },
            ShockSpec::Capacity {
                target: CapacityTarget::Location(location.clone()),
                from_week: 4,
                to_week: 4,
                factor: 0.0,
            },
            ShockSpec::Capacity {
                target: CapacityTarget::RatingPool(pool.clone()),
                from_week: 3,
                to_week: 5,
                factor: 0.8,
            },
        ],
        &examcap_solver::validate::derived_name(&sc.name, "+drill"),
    )
    .unwrap();
    let headline = format!("(scenario {})", shocked.content_hash());
    for part in [
        headline.as_str(),
        "LP:",
        "integral plan:",
        "never published",
    ] {
        assert!(stdout.contains(part), "no {part:?} in:\n{stdout}");
    }
    assert_eq!(published(&srv).await.fingerprint(), before.fingerprint());

    let o = run(vec![
        "drill",
        "--surge",
        "SPREKEN_B1:1.2:1:2",
        "--location",
        "AMS_NOWHERE:0.5:1:2",
    ])
    .await
    .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--location #1: unknown location \"AMS_NOWHERE\""),
        "{err}"
    );

    let o = run(vec![
        "reschedule",
        "--location",
        leak(format!("{location}:0:4:5")),
        "--freeze",
        "2",
    ])
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("RESCHEDULE_STATUS_OPTIMAL"), "{stdout}");
    assert_eq!(published(&srv).await.fingerprint(), before.fingerprint());
}

/// With nothing published and no `--base`, `examcap drill` says which flag
/// to give (the service's message names a plan id, which drill does not
/// take).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_with_nothing_published_asks_for_its_base() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    let url = format!("http://{}", srv.addr);
    let o = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_examcap"))
            .args(["drill", "--server", &url, "--token", DRILL])
            .args(["--surge", "SPK:1.2:0:1"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no plan is published yet: give the scenario to shock with --base"),
        "{err}"
    );
    srv.stop().await;
}

/// A re-plan of the published plan whose shocked scenario has, name
/// included, the content of an earlier drill's is stored under the
/// drill's scenario (scenarios are stored once, by content): Publish
/// refuses it and says to re-plan under another name, which publishes
/// (the message sent the planner to do what they had just done).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replan_sharing_a_drills_scenario_is_told_to_take_another_name() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    publish_scenario(srv.channel().await, &common::tiny()).await;
    let base_id = stored_scenarios(&srv).await[0].scenario_id.clone();
    let shock = demand_shock("SPK", 1, 2, 1.5);
    srv.drills()
        .await
        .run_drill(req(
            proto::RunDrillRequest {
                base_scenario_id: base_id,
                shocks: vec![shock.clone()],
                name: "surge-x".into(),
            },
            DRILL,
        ))
        .await
        .unwrap();
    let mut c = srv.reschedules().await;
    let mut plans = srv.plans().await;
    let replan = |name: &str| {
        req(
            proto::RescheduleRequest {
                shocks: vec![shock.clone()],
                name: name.into(),
                ..Default::default()
            },
            PLANNER,
        )
    };
    let publish = |id: String| req(proto::PublishRequest { plan_id: id }, PLANNER);
    let same = replan_summary(&events(&mut c, replan("surge-x")).await.unwrap());
    assert!(!same.drill);
    let e = plans.publish(publish(same.plan_id)).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("re-plan with another name"), "{e:?}");
    let other = replan_summary(&events(&mut c, replan("surge-y")).await.unwrap());
    plans.publish(publish(other.plan_id.clone())).await.unwrap();
    assert_eq!(live_plan(&srv).await, other.plan_id);
    srv.stop().await;
}
