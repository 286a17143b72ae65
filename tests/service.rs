//! The gRPC service end to end: a real server on 127.0.0.1:0 and tonic
//! clients generated from the same protos. Only the tiny scenario is solved
//! to optimality; the national one is used where a solve must be slow.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{
    admitted_solve, channel, code, config, demand_shock, req, solve_req, start, tiny,
    violation_fields, DRILL, PLANNER, REGISTRATION,
};
use examcap::config::Config;
use examcap::drill::{CapacityTarget, DemandChange, ShockSpec};
use examcap::proto::audit_service_client::AuditServiceClient;
use examcap::proto::plan_service_client::PlanServiceClient;
use examcap::proto::scenario_service_client::ScenarioServiceClient;
use examcap::proto::{self, solve_event::Event};
use examcap::store::{PlanRecord, ScenarioRecord, SledStore, Store};
use examcap_solver::generate::{national, GenerateOptions};
use examcap_solver::plan::PlanStatus;
use examcap_solver::{parse_scenario, plan_scenario, PlanOptions};
use serde_json::{json, Value};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

fn national_json() -> String {
    serde_json::to_string(&national(&GenerateOptions::default())).unwrap()
}

async fn put(s: &mut ScenarioServiceClient<Channel>, text: String) -> proto::PutScenarioResponse {
    s.put_scenario(req(
        proto::PutScenarioRequest {
            scenario_json: text,
            scenario: None,
        },
        PLANNER,
    ))
    .await
    .unwrap()
    .into_inner()
}

/// Runs a solve to its end: the progress events and the final summary (or status).
async fn solve(
    p: &mut PlanServiceClient<Channel>,
    r: Request<proto::SolveRequest>,
) -> Result<(Vec<proto::Progress>, proto::PlanSummary), Status> {
    let mut stream = p.solve(r).await?.into_inner();
    let mut progress = Vec::new();
    let mut done = None;
    while let Some(ev) = stream.message().await? {
        match ev.event {
            Some(Event::Progress(pr)) => {
                assert!(done.is_none(), "progress after the final event");
                progress.push(pr)
            }
            Some(Event::Done(s)) => done = Some(s),
            None => panic!("empty event"),
        }
    }
    Ok((progress, done.expect("a final event")))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// A limit under the recommendations' reserve (half a second) leaves the
/// time to stage 2, and the summary says the list was cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_limit_cuts_the_recommendations_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    let (mut s, mut p) = (srv.scenarios().await, srv.plans().await);
    let put = put(&mut s, tiny().to_string()).await;
    let (_, full) = solve(&mut p, solve_req(&put.scenario_id, PLANNER))
        .await
        .unwrap();
    assert!(!full.recommendations.is_empty() && !full.recommendations_cut);
    let mut short = solve_req(&put.scenario_id, PLANNER);
    short.get_mut().time_limit_seconds = 0.4;
    let (_, cut) = solve(&mut p, short).await.unwrap();
    assert_eq!(cut.status, proto::PlanStatus::Optimal as i32);
    assert!(cut.recommendations_cut && cut.recommendations.is_empty());
    assert!(close(cut.stage2_cost, full.stage2_cost));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_solve_publish_get() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    let (mut s, mut p) = (srv.scenarios().await, srv.plans().await);

    let put = put(&mut s, tiny().to_string()).await;
    assert!(put.created);
    let (progress, done) = solve(&mut p, solve_req(&put.scenario_id, PLANNER))
        .await
        .unwrap();
    assert!(!progress.is_empty());
    for step in [
        "validate", "build", "stage1", "stage2", "rounding", "waits", "duals",
    ] {
        assert!(progress.iter().any(|e| e.step == step), "no {step} event");
    }

    let sc = parse_scenario(tiny().to_string().as_bytes()).unwrap();
    assert_eq!(put.scenario_id, sc.content_hash());
    let local = plan_scenario(&sc, &PlanOptions::default(), &|_| {}).unwrap();
    assert!(close(done.stage1_violation, local.stage1_violation));
    assert!(close(done.stage2_cost, local.stage2_cost));
    assert!(close(done.rounded_cost, local.rounded.cost));
    assert_eq!(done.plan_id, local.fingerprint());
    assert_eq!(done.status, proto::PlanStatus::Optimal as i32);
    assert_eq!(done.waits.len(), 1);
    assert_eq!(done.waits[0].exam, "SPK");

    let pubd = p
        .publish(req(
            proto::PublishRequest {
                plan_id: done.plan_id.clone(),
            },
            PLANNER,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pubd.previous_plan_id, "");
    let again = p
        .publish(req(
            proto::PublishRequest {
                plan_id: done.plan_id.clone(),
            },
            PLANNER,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.previous_plan_id, done.plan_id);

    // Registration systems read the published plan.
    let published = p
        .get_published(req(proto::GetPublishedRequest {}, REGISTRATION))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(published.summary.as_ref().unwrap().plan_id, done.plan_id);
    let full: Value = serde_json::from_str(&published.plan_json).unwrap();
    assert_eq!(full["format"], "examcap/plan@1");

    let got = p
        .get_plan(req(
            proto::GetPlanRequest {
                plan_id: done.plan_id.clone(),
                from_week: Some(1),
                to_week: Some(1),
                exam: "SPK".into(),
                location: "AMS".into(),
            },
            REGISTRATION,
        ))
        .await
        .unwrap()
        .into_inner();
    let filtered: Value = serde_json::from_str(&got.plan_json).unwrap();
    let rows = filtered["allocation"].as_array().unwrap();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r["week"] == 1));
    assert!(rows.len() < full["allocation"].as_array().unwrap().len());
    // A location that is not in the scenario is named, not an empty plan.
    let e = p
        .get_plan(req(
            proto::GetPlanRequest {
                plan_id: done.plan_id.clone(),
                location: "AMSS".into(),
                ..Default::default()
            },
            REGISTRATION,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let br = e.get_details_bad_request().expect("BadRequest details");
    assert_eq!(br.field_violations[0].field, "location");
    // Every bad field in one answer, so a caller mends them at once.
    let fields = |e: tonic::Status| -> Vec<String> {
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        violation_fields(&e)
    };
    let e = p
        .get_plan(req(
            proto::GetPlanRequest {
                plan_id: done.plan_id.clone(),
                from_week: Some(3),
                to_week: Some(2),
                exam: "SPKK".into(),
                location: "AMSS".into(),
            },
            PLANNER,
        ))
        .await
        .unwrap_err();
    assert_eq!(fields(e), ["to_week", "exam", "location"]);
    let e = p
        .get_plan(req(
            proto::GetPlanRequest {
                from_week: Some(3),
                to_week: Some(2),
                exam: "SPKK".into(),
                ..Default::default()
            },
            PLANNER,
        ))
        .await
        .unwrap_err();
    assert_eq!(fields(e), ["plan_id", "to_week"]);
    // An unknown plan with a bad week range: the range, not NOT_FOUND.
    let e = p
        .get_plan(req(
            proto::GetPlanRequest {
                plan_id: "nope".into(),
                from_week: Some(3),
                to_week: Some(2),
                ..Default::default()
            },
            PLANNER,
        ))
        .await
        .unwrap_err();
    assert_eq!(fields(e), ["to_week"]);

    let list = p
        .list_plans(req(proto::ListPlansRequest::default(), PLANNER))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.plans.len(), 1);
    assert!(list.plans[0].published);
    let of_scenario = |scenario_id: &str| {
        req(
            proto::ListPlansRequest {
                scenario_id: scenario_id.into(),
                ..Default::default()
            },
            PLANNER,
        )
    };
    let mine = p
        .list_plans(of_scenario(&put.scenario_id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mine.plans.len(), 1);
    let e = p
        .list_plans(of_scenario("no-such-scenario"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let scen = s
        .get_scenario(req(
            proto::GetScenarioRequest {
                scenario_id: put.scenario_id.clone(),
            },
            DRILL,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        parse_scenario(scen.scenario_json.as_bytes()).unwrap(),
        sc,
        "GetScenario returns the stored document"
    );
    srv.stop().await;

    // Every write was audited with the caller's name.
    let store = SledStore::open(dir.path()).unwrap();
    let rpcs: Vec<(String, String)> = store
        .audit_log()
        .unwrap()
        .into_iter()
        .map(|e| (e.who, e.rpc))
        .collect();
    assert!(rpcs.contains(&("alice".into(), "PutScenario".into())));
    assert!(rpcs.contains(&("alice".into(), "Solve".into())));
    assert!(rpcs.contains(&("alice".into(), "Publish".into())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_content_twice_gives_the_same_id() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    let mut s = srv.scenarios().await;
    let first = put(&mut s, tiny().to_string()).await;
    // Same content, other whitespace.
    let second = put(&mut s, serde_json::to_string_pretty(&tiny()).unwrap()).await;
    assert!(first.created);
    assert!(!second.created);
    assert_eq!(first.scenario_id, second.scenario_id);
    let list = s
        .list_scenarios(req(proto::ListScenariosRequest::default(), PLANNER))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.scenarios.len(), 1);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_scenario_names_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    let mut s = srv.scenarios().await;
    let mut bad = tiny();
    bad["demand"][0]["exam"] = json!("NOPE");
    bad["demand"][0]["weekly"][1] = json!(-2);
    let e = s
        .put_scenario(req(
            proto::PutScenarioRequest {
                scenario_json: bad.to_string(),
                scenario: None,
            },
            PLANNER,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let br = e.get_details_bad_request().expect("BadRequest details");
    let fields: Vec<&str> = br
        .field_violations
        .iter()
        .map(|v| v.field.as_str())
        .collect();
    assert!(fields.contains(&"demand[0].exam"), "{fields:?}");
    assert!(fields.contains(&"demand[0].weekly[1]"), "{fields:?}");

    // Solve names a missing id and every bad option at once.
    let mut p = srv.plans().await;
    let e = p
        .solve(req(
            proto::SolveRequest {
                scenario_id: String::new(),
                session_minutes: -1.0,
                recommendations: 999,
                time_limit_seconds: -1.0,
            },
            PLANNER,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(
        violation_fields(&e),
        [
            "scenario_id",
            "session_minutes",
            "recommendations",
            "time_limit_seconds"
        ]
    );

    let e = s
        .put_scenario(req(
            proto::PutScenarioRequest {
                scenario_json: "{not json".into(),
                scenario: None,
            },
            PLANNER,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    // Nothing was stored.
    let list = s
        .list_scenarios(req(proto::ListScenariosRequest::default(), PLANNER))
        .await
        .unwrap()
        .into_inner();
    assert!(list.scenarios.is_empty());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_are_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    let (mut s, mut p) = (srv.scenarios().await, srv.plans().await);
    assert_eq!(
        s.get_scenario(req(
            proto::GetScenarioRequest {
                scenario_id: "nope".into()
            },
            PLANNER
        ))
        .await
        .unwrap_err()
        .code(),
        Code::NotFound
    );
    assert_eq!(
        code(
            p.get_plan(req(
                proto::GetPlanRequest {
                    plan_id: "nope".into(),
                    ..Default::default()
                },
                PLANNER
            ))
            .await
        ),
        Code::NotFound
    );
    assert_eq!(
        code(
            p.publish(req(
                proto::PublishRequest {
                    plan_id: "nope".into()
                },
                PLANNER
            ))
            .await
        ),
        Code::NotFound
    );
    let e = p
        .get_published(req(proto::GetPublishedRequest {}, PLANNER))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("no plan is published"), "{e:?}");
    assert_eq!(
        solve(&mut p, solve_req("nope", PLANNER))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    // An empty id is a missing field, not an unknown "".
    let empty = |e: tonic::Status, field: &str| {
        assert_eq!(e.code(), Code::InvalidArgument, "{field}: {e:?}");
        let br = e.get_details_bad_request().expect("BadRequest details");
        assert_eq!(br.field_violations[0].field, field);
    };
    empty(
        s.get_scenario(req(proto::GetScenarioRequest::default(), PLANNER))
            .await
            .unwrap_err(),
        "scenario_id",
    );
    empty(
        p.get_plan(req(proto::GetPlanRequest::default(), PLANNER))
            .await
            .unwrap_err(),
        "plan_id",
    );
    empty(
        p.publish(req(proto::PublishRequest::default(), PLANNER))
            .await
            .unwrap_err(),
        "plan_id",
    );
    empty(
        solve(&mut p, solve_req("", PLANNER)).await.unwrap_err(),
        "scenario_id",
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_a_plan_that_is_not_optimal_fails() {
    let dir = tempfile::tempdir().unwrap();
    // A plan whose stage 2 ran out of time, stored before the server starts.
    let sc = parse_scenario(tiny().to_string().as_bytes()).unwrap();
    let solved = plan_scenario(&sc, &PlanOptions::default(), &|_| {}).unwrap();
    let mut plan = solved.clone();
    plan.status = PlanStatus::Stage2TimeLimit;
    let id = plan.fingerprint();
    // And an optimal one with a cell past the stock's u32 counts (a valid
    // scenario can plan billions in a cell: seat_minutes 0, huge demand).
    let mut huge = solved;
    huge.allocation[0].candidates = 5_000_000_000;
    let huge_id = huge.fingerprint();
    {
        let store = SledStore::open(dir.path()).unwrap();
        store
            .put_scenario(
                &ScenarioRecord {
                    id: sc.content_hash(),
                    name: sc.name.clone(),
                    start_week: sc.start_week.clone(),
                    horizon_weeks: sc.horizon_weeks,
                    created_unix: 0,
                    drill: None,
                    scenario_json: serde_json::to_string(&sc).unwrap(),
                },
                &[],
            )
            .unwrap();
        store
            .put_plan(
                &PlanRecord {
                    id: id.clone(),
                    scenario_id: sc.content_hash(),
                    created_unix: 0,
                    drill: false,
                    plan,
                },
                &[],
            )
            .unwrap();
        store
            .put_plan(
                &PlanRecord {
                    id: huge_id.clone(),
                    scenario_id: sc.content_hash(),
                    created_unix: 0,
                    drill: false,
                    plan: huge,
                },
                &[],
            )
            .unwrap();
    }
    let srv = start(config(dir.path())).await;
    let mut p = srv.plans().await;
    let e = p
        .publish(req(proto::PublishRequest { plan_id: id }, PLANNER))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    let e = p
        .publish(req(proto::PublishRequest { plan_id: huge_id }, PLANNER))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(
        e.message()
            .contains("5000000000 candidates, more than the registration stock counts"),
        "{e:?}"
    );
    assert_eq!(
        p.get_published(req(proto::GetPublishedRequest {}, PLANNER))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_roles() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    let (mut s, mut p) = (srv.scenarios().await, srv.plans().await);
    let list = || proto::ListScenariosRequest::default();
    let e = s.list_scenarios(Request::new(list())).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let e = s
        .list_scenarios(req(list(), "wrong-token"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let e = s
        .put_scenario(req(
            proto::PutScenarioRequest {
                scenario_json: tiny().to_string(),
                scenario: None,
            },
            REGISTRATION,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = s
        .list_scenarios(req(list(), REGISTRATION))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    s.list_scenarios(req(list(), DRILL)).await.unwrap();

    let id = put(&mut s, tiny().to_string()).await.scenario_id;
    let e = solve(&mut p, solve_req(&id, DRILL)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let (_, done) = solve(&mut p, solve_req(&id, PLANNER)).await.unwrap();
    // Registration may read a plan only once it is published.
    let get = |t| {
        req(
            proto::GetPlanRequest {
                plan_id: done.plan_id.clone(),
                ..Default::default()
            },
            t,
        )
    };
    let e = p.get_plan(get(REGISTRATION)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    p.get_plan(get(DRILL)).await.unwrap();
    let e = p
        .publish(req(
            proto::PublishRequest {
                plan_id: done.plan_id.clone(),
            },
            DRILL,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tokens_refuses_to_start_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.tokens.clear();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let r = examcap::server::run(listener, c.clone(), async {}).await;
    assert!(r.is_err());

    c.allow_unauthenticated = true;
    let srv = start(c).await;
    let mut s = srv.scenarios().await;
    s.list_scenarios(Request::new(proto::ListScenariosRequest::default()))
        .await
        .unwrap();
    // A token presented must still be a configured one, even then.
    let e = s
        .list_scenarios(req(
            proto::ListScenariosRequest::default(),
            "not-a-configured-token",
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_scenarios_plans_and_the_published_plan() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    let (mut s, mut p) = (srv.scenarios().await, srv.plans().await);
    let id = put(&mut s, tiny().to_string()).await.scenario_id;
    let (_, done) = solve(&mut p, solve_req(&id, PLANNER)).await.unwrap();
    p.publish(req(
        proto::PublishRequest {
            plan_id: done.plan_id.clone(),
        },
        PLANNER,
    ))
    .await
    .unwrap();
    drop((s, p));
    srv.stop().await;

    let srv = start(config(dir.path())).await;
    let (mut s, mut p) = (srv.scenarios().await, srv.plans().await);
    let got = s
        .get_scenario(req(
            proto::GetScenarioRequest {
                scenario_id: id.clone(),
            },
            PLANNER,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.scenario.unwrap().scenario_id, id);
    let plans = all_plans(&mut p).await;
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].plan_id, done.plan_id);
    let published = p
        .get_published(req(proto::GetPublishedRequest {}, REGISTRATION))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(published.summary.unwrap().plan_id, done.plan_id);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_deadline_is_deadline_exceeded_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    let (mut s, mut p) = (srv.scenarios().await, srv.plans().await);
    let id = put(&mut s, national_json()).await.scenario_id;
    let mut r = solve_req(&id, PLANNER);
    r.set_timeout(Duration::from_millis(50));
    let e = solve(&mut p, r).await.unwrap_err();
    assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");
    // The server still answers, and still solves.
    let tiny_id = put(&mut s, tiny().to_string()).await.scenario_id;
    solve(&mut p, solve_req(&tiny_id, PLANNER)).await.unwrap();
    srv.stop().await;
}

/// Retries a solve of `id` while the server answers RESOURCE_EXHAUSTED;
/// true once one is admitted within `patience` and ends with its plan.
async fn solve_when_a_slot_frees(
    p: &mut PlanServiceClient<Channel>,
    id: &str,
    patience: Duration,
) -> bool {
    let Some(mut stream) = admitted_solve(p, id, patience).await else {
        return false;
    };
    while let Some(ev) = stream.message().await.unwrap() {
        if matches!(ev.event, Some(Event::Done(_))) {
            return true;
        }
    }
    panic!("the admitted solve ended without its plan")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_solve_queue_is_resource_exhausted() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(common::one_slot_config(dir.path(), 0)).await;
    let (mut s, mut p) = (srv.scenarios().await, srv.plans().await);
    let national = put(&mut s, national_json()).await.scenario_id;
    let tiny_id = put(&mut s, tiny().to_string()).await.scenario_id;
    // The slow solve holds the only slot (a time limit keeps the test short).
    let mut slow = solve_req(&national, PLANNER);
    slow.get_mut().time_limit_seconds = 1.0;
    let first = p.solve(slow).await.unwrap().into_inner();
    let e = solve(&mut p, solve_req(&tiny_id, PLANNER))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    // Once it is over, the slot is free again.
    let mut first = first;
    while let Ok(Some(_)) = first.message().await {}
    assert!(
        solve_when_a_slot_frees(&mut p, &tiny_id, Duration::from_secs(5)).await,
        "the slot was never released"
    );
    srv.stop().await;
}

/// A load balancer's `Health/Watch` stream never ends by itself. On
/// shutdown it hears NOT_SERVING at once, and the server stops after its
/// `shutdown_grace_seconds` even though the stream is still open (it
/// used to wait for the client to hang up, past any SIGKILL).
/// A `Health/Watch` of the overall status (""), past its first message,
/// which must be SERVING: what a load balancer holds open.
async fn overall_watch(
    ch: tonic::transport::Channel,
) -> tonic::Streaming<tonic_health::pb::HealthCheckResponse> {
    use tonic_health::pb::health_check_response::ServingStatus;
    let mut watch = tonic_health::pb::health_client::HealthClient::new(ch)
        .watch(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    watch
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_health_watch_does_not_hold_the_shutdown() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let dir = tempfile::tempdir().unwrap();
    let srv = start(Config {
        shutdown_grace_seconds: 1,
        ..config(dir.path())
    })
    .await;
    let mut watch = overall_watch(srv.channel().await).await;
    let stopped = tokio::spawn(srv.stop());
    let next = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("a status change, not silence")
        .unwrap()
        .unwrap();
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    // The watch is still open; the server stops anyway, after the grace.
    tokio::time::timeout(Duration::from_secs(30), stopped)
        .await
        .expect("the server stopped after its grace period")
        .unwrap();
    drop(watch);
}

/// A second signal while a call holds the drain (a health Watch) stops the
/// server at once instead of after the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_stop_ends_the_drain_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (force, forced) = tokio::sync::oneshot::channel::<()>();
    let config = Config {
        shutdown_grace_seconds: 600,
        ..config(dir.path())
    };
    let server = tokio::spawn(examcap::server::run_until(
        listener,
        config,
        async {
            let _ = stopped.await;
        },
        async {
            let _ = forced.await;
        },
    ));
    let mut watch = overall_watch(channel(&format!("http://{addr}")).await).await;
    stop.send(()).unwrap();
    // Draining: the watch sees NOT_SERVING, and holds the server up.
    watch.message().await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!server.is_finished(), "the open watch holds the drain");
    force.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the second stop ends the drain well before the 600 s grace")
        .unwrap()
        .unwrap();
    drop(watch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    let mut h = HealthClient::new(srv.channel().await);
    for service in [
        "examcap.v1.ScenarioService",
        "examcap.v1.PlanService",
        "examcap.v1.DrillService",
    ] {
        let r = h
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status, ServingStatus::Serving as i32, "{service}");
    }

    let mut refl = ServerReflectionClient::new(srv.channel().await);
    let out = refl
        .server_reflection_info(tokio_stream::iter([ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        }]))
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = out.message_response else {
        panic!("not a service list: {out:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for n in [
        "examcap.v1.ScenarioService",
        "examcap.v1.PlanService",
        "examcap.v1.DrillService",
        "grpc.health.v1.Health",
    ] {
        assert!(names.iter().any(|x| x == n), "{n} not in {names:?}");
    }

    // v1alpha too, for clients that only speak it.
    use tonic_reflection::pb::v1alpha as alpha;
    let out = alpha::server_reflection_client::ServerReflectionClient::new(srv.channel().await)
        .server_reflection_info(tokio_stream::iter([alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
            ),
        }]))
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .unwrap();
    let Some(alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        out.message_response
    else {
        panic!("not a service list: {out:?}");
    };
    assert!(
        list.service
            .iter()
            .any(|s| s.name == "examcap.v1.PlanService"),
        "{list:?}"
    );
    srv.stop().await;
}

/// Shocks that change nothing give back the base scenario and its plan:
/// the answer says what the store holds (not a drill), as the lists do.
#[tokio::test]
async fn a_drill_that_changes_nothing_answers_with_the_stored_base() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    let (mut s, mut p, mut d) = (srv.scenarios().await, srv.plans().await, srv.drills().await);
    let base_id = put(&mut s, tiny().to_string()).await.scenario_id;
    let (_, base) = solve(&mut p, solve_req(&base_id, PLANNER)).await.unwrap();
    let out = d
        .run_drill(req(
            proto::RunDrillRequest {
                base_scenario_id: base_id.clone(),
                shocks: vec![demand_shock("SPK", 1, 2, 1.0)],
                name: "tiny".into(),
            },
            DRILL,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.drill_scenario_id, base_id);
    let drill = out.drill.unwrap();
    assert_eq!(drill.plan_id, base.plan_id);
    let listed = p
        .list_plans(req(proto::ListPlansRequest::default(), PLANNER))
        .await
        .unwrap()
        .into_inner()
        .plans;
    assert_eq!(listed.len(), 1);
    assert!(!listed[0].drill);
    assert_eq!(drill.drill, listed[0].drill);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_is_compared_with_the_base_and_never_published() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    let (mut s, mut p, mut d) = (srv.scenarios().await, srv.plans().await, srv.drills().await);
    let base_id = put(&mut s, tiny().to_string()).await.scenario_id;
    let (_, base) = solve(&mut p, solve_req(&base_id, PLANNER)).await.unwrap();
    p.publish(req(
        proto::PublishRequest {
            plan_id: base.plan_id.clone(),
        },
        PLANNER,
    ))
    .await
    .unwrap();

    let shocks = vec![
        demand_shock("SPK", 1, 2, 1.5),
        proto::Shock {
            kind: Some(proto::shock::Kind::Capacity(proto::CapacityShock {
                target: Some(proto::capacity_shock::Target::Location("AMS".into())),
                from_week: 2,
                to_week: 2,
                factor: 0.5,
            })),
        },
    ];
    let out = d
        .run_drill(req(
            proto::RunDrillRequest {
                base_scenario_id: base_id.clone(),
                shocks: shocks.clone(),
                name: String::new(),
            },
            DRILL,
        ))
        .await
        .unwrap()
        .into_inner();

    // The same transform and solve, done locally.
    let sc = parse_scenario(tiny().to_string().as_bytes()).unwrap();
    let shocked = examcap::drill::apply(
        &sc,
        &[
            ShockSpec::Demand {
                region: None,
                exam: Some("SPK".into()),
                from_week: 1,
                to_week: 2,
                change: DemandChange::Multiplier(1.5),
            },
            ShockSpec::Capacity {
                target: CapacityTarget::Location("AMS".into()),
                from_week: 2,
                to_week: 2,
                factor: 0.5,
            },
        ],
        "tiny+drill",
    )
    .unwrap();
    let local = plan_scenario(&shocked, &PlanOptions::default(), &|_| {}).unwrap();
    assert_eq!(out.drill_scenario_id, shocked.content_hash());
    let drill = out.drill.unwrap();
    assert!(drill.drill);
    assert!(close(drill.stage1_violation, local.stage1_violation));
    assert!(close(drill.stage2_cost, local.stage2_cost));
    assert_eq!(out.base.unwrap().plan_id, base.plan_id);
    let cmp = out.comparison.unwrap();
    assert!(close(
        cmp.delta_violation,
        local.stage1_violation - base.stage1_violation
    ));
    assert!(close(cmp.delta_cost, local.stage2_cost - base.stage2_cost));
    assert!(close(
        cmp.delta_rounded_violation,
        local.rounded.violation - base.rounded_violation
    ));
    assert!(close(
        cmp.delta_rounded_cost,
        local.rounded.cost - base.rounded_cost
    ));
    // More demand and less capacity: extra sessions are bought, so C rises.
    assert!(cmp.delta_cost > 0.0, "{cmp:?}");
    assert!(
        cmp.extra_after.as_ref().unwrap().seat_minutes
            > cmp.extra_before.as_ref().unwrap().seat_minutes,
        "{cmp:?}"
    );
    assert_eq!(cmp.waits.len(), 1);
    assert!(cmp.waits[0].before.is_some() && cmp.waits[0].after.is_some());
    assert!(cmp.extra_before.is_some() && cmp.extra_after.is_some());

    // Stored and marked as a drill; the published plan did not move.
    let stored = s
        .get_scenario(req(
            proto::GetScenarioRequest {
                scenario_id: out.drill_scenario_id.clone(),
            },
            DRILL,
        ))
        .await
        .unwrap()
        .into_inner()
        .scenario
        .unwrap();
    assert!(stored.drill && !stored.reschedule);
    assert_eq!(stored.base_scenario_id, base_id);
    let published = p
        .get_published(req(proto::GetPublishedRequest {}, PLANNER))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(published.summary.unwrap().plan_id, base.plan_id);
    let plans = all_plans(&mut p).await;
    assert!(plans
        .iter()
        .any(|p| p.plan_id == drill.plan_id && p.drill && !p.published));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_solves_the_base_when_it_has_no_plan_and_checks_its_shocks() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    let (mut s, mut d) = (srv.scenarios().await, srv.drills().await);
    let base_id = put(&mut s, tiny().to_string()).await.scenario_id;
    let run = |shocks: Vec<proto::Shock>, base: &str, token: &str| {
        req(
            proto::RunDrillRequest {
                base_scenario_id: base.into(),
                shocks,
                name: "what-if".into(),
            },
            token,
        )
    };
    let out = d
        .run_drill(run(vec![demand_shock("", 0, 0, 2.0)], &base_id, PLANNER))
        .await
        .unwrap()
        .into_inner();
    let sc = parse_scenario(tiny().to_string().as_bytes()).unwrap();
    let local = plan_scenario(&sc, &PlanOptions::default(), &|_| {}).unwrap();
    assert_eq!(out.base.unwrap().plan_id, local.fingerprint());

    let e = d
        .run_drill(run(vec![demand_shock("NOPE", 0, 0, 2.0)], &base_id, DRILL))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let fields = violation_fields(&e);
    assert_eq!(fields, ["shocks[0].demand.exam"]);
    // No shocks and no base: both named in one answer.
    let e = d.run_drill(run(vec![], "", DRILL)).await.unwrap_err();
    assert_eq!(violation_fields(&e), ["shocks", "base_scenario_id"]);
    // A name too long for a scenario, with either kind of bad shock (it was
    // named only once the shocks were right).
    let long = |shocks, base: &str| {
        req(
            proto::RunDrillRequest {
                base_scenario_id: base.into(),
                shocks,
                name: "n".repeat(examcap_solver::validate::MAX_NAME_CHARS + 1),
            },
            DRILL,
        )
    };
    let e = d.run_drill(long(vec![], "")).await.unwrap_err();
    assert_eq!(violation_fields(&e), ["shocks", "base_scenario_id", "name"]);
    let e = d
        .run_drill(long(vec![demand_shock("NOPE", 0, 0, 2.0)], &base_id))
        .await
        .unwrap_err();
    assert_eq!(violation_fields(&e), ["name", "shocks[0].demand.exam"]);
    let e = d
        .run_drill(run(vec![demand_shock("", 0, 0, 2.0)], "nope", DRILL))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = d
        .run_drill(run(
            vec![demand_shock("", 0, 0, 2.0)],
            &base_id,
            REGISTRATION,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = d.run_drill(run(vec![], &base_id, DRILL)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    // Every bad field of every shock comes in one answer, a shock with no
    // kind among them (it used to be named alone, the others' fields only
    // on the next try), in the shocks' order.
    let bad = vec![
        demand_shock("NOPE", 2, 1, -1.0),
        proto::Shock { kind: None },
        demand_shock("SPK", 0, 0, 2.0),
    ];
    let e = d
        .run_drill(run(bad.clone(), &base_id, DRILL))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(
        violation_fields(&e),
        [
            "shocks[0].demand.to_week",
            "shocks[0].demand.multiplier",
            "shocks[0].demand.exam",
            "shocks[1].kind"
        ]
    );
    // With no base, the shocks' fields that need no scenario are named
    // beside it (only the base was).
    let e = d.run_drill(run(bad, "", DRILL)).await.unwrap_err();
    assert_eq!(
        violation_fields(&e),
        [
            "shocks[0].demand.to_week",
            "shocks[0].demand.multiplier",
            "shocks[1].kind",
            "base_scenario_id"
        ]
    );
    // At most MAX_SHOCKS: a million were taken before, and held a solve
    // slot for seconds before the solve began.
    let many = |n| vec![demand_shock("", 0, 0, 1.0); n];
    let e = d
        .run_drill(run(many(examcap::api::MAX_SHOCKS + 1), &base_id, DRILL))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let fields = violation_fields(&e);
    assert_eq!(fields, ["shocks"]);
    d.run_drill(run(many(examcap::api::MAX_SHOCKS), &base_id, DRILL))
        .await
        .expect("the cap itself is allowed");
    srv.stop().await;
}

/// https:// against a plaintext server names the likely mistake, not
/// rustls' "corrupt message of type InvalidContentType" alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_against_a_plaintext_server_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    let url = format!("https://127.0.0.1:{}", srv.addr.port());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_examcap"))
            .args(["backlog", "export", "--server", &url, "--token", PLANNER])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("does not answer TLS") && err.contains("use http://"),
        "{err}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_configured_certificate() {
    use tonic::transport::{Certificate, ClientTlsConfig};
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.tls = Some(examcap::config::TlsConfig {
        cert: fixtures.join("server.pem"),
        key: fixtures.join("server.key"),
    });
    let srv = start(c).await;
    let ca = std::fs::read(fixtures.join("ca.pem")).unwrap();
    let channel = Channel::from_shared(format!("https://{}", srv.addr))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(ca))
                .domain_name("localhost"),
        )
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut s = ScenarioServiceClient::new(channel);
    let id = put(&mut s, tiny().to_string()).await.scenario_id;
    assert!(!id.is_empty());
    // A plaintext client gets nowhere.
    let plain = Channel::from_shared(format!("http://{}", srv.addr))
        .unwrap()
        .connect()
        .await;
    if let Ok(ch) = plain {
        let r = ScenarioServiceClient::new(ch)
            .list_scenarios(req(proto::ListScenariosRequest::default(), PLANNER))
            .await;
        assert!(r.is_err(), "plaintext call succeeded against TLS");
    }
    // The CLI clients speak TLS too: they trust the system's CAs, or those
    // of SSL_CERT_FILE (here the test CA); a certificate they do not trust
    // is named as the reason, not just "cannot connect".
    let url = format!("https://localhost:{}", srv.addr.port());
    let cli_at = |url: &str, ca: Option<&Path>| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_examcap"));
        c.args(["backlog", "export", "--server", url, "--token", PLANNER])
            .env_remove("SSL_CERT_DIR")
            .env_remove("EXAMCAP_TOKEN");
        match ca {
            Some(f) => c.env("SSL_CERT_FILE", f),
            None => c.env_remove("SSL_CERT_FILE"),
        };
        c.output().unwrap()
    };
    let cli = |ca: Option<&Path>| cli_at(&url, ca);
    let trusted = tokio::task::block_in_place(|| cli(Some(&fixtures.join("ca.pem"))));
    let stderr = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(trusted.status.success(), "{}", stderr(&trusted));
    assert_eq!(String::from_utf8_lossy(&trusted.stdout).trim(), "[]");
    // A failed connection exits 1 with a message holding every word.
    let fails_naming = |o: &std::process::Output, words: &[&str]| {
        let e = stderr(o);
        assert_eq!(o.status.code(), Some(1), "{e}");
        assert!(words.iter().all(|w| e.contains(w)), "{e}");
    };
    let untrusted = tokio::task::block_in_place(|| cli(None));
    fails_naming(&untrusted, &["cannot connect: ", "certificate"]);
    // http:// against it names the likely mistake, not the transport's
    // "h2 protocol error" or "operation was canceled" at the first call.
    // A CA file that cannot be read, or holds no certificate (a directory,
    // the server's key), is named, not "UnknownIssuer".
    for (file, says) in [
        (fixtures.join("no-such-ca.pem"), "cannot read"),
        (fixtures.clone(), "cannot read"),
        (fixtures.join("server.key"), "no PEM certificate"),
    ] {
        let typo = tokio::task::block_in_place(|| cli(Some(&file)));
        assert_eq!(typo.status.code(), Some(2), "{}", stderr(&typo));
        assert!(
            stderr(&typo).contains("SSL_CERT_FILE=") && stderr(&typo).contains(says),
            "{}",
            stderr(&typo)
        );
    }
    let plain_url = format!("http://localhost:{}", srv.addr.port());
    let plain = tokio::task::block_in_place(|| cli_at(&plain_url, None));
    fails_naming(
        &plain,
        &["does not answer plaintext HTTP/2", "use https://"],
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_past_its_deadline_is_deadline_exceeded() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    let (mut s, mut d) = (srv.scenarios().await, srv.drills().await);
    let id = put(&mut s, national_json()).await.scenario_id;
    let drill = |timeout| {
        let mut r = req(
            proto::RunDrillRequest {
                base_scenario_id: id.clone(),
                shocks: vec![demand_shock("SPREKEN_B1", 10, 16, 1.6)],
                name: String::new(),
            },
            DRILL,
        );
        r.set_timeout(Duration::from_millis(timeout));
        r
    };
    // Cut while solving the base plan.
    let e = d.run_drill(drill(200)).await.unwrap_err();
    assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");
    // With the base solved (2–3 s on 2 cores), cut while solving the drill.
    let mut p = srv.plans().await;
    solve(&mut p, solve_req(&id, PLANNER)).await.unwrap();
    let e = d.run_drill(drill(300)).await.unwrap_err();
    assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");
    // The service still answers, and the cut drills left no scenario
    // without a plan behind: only the base is listed.
    let listed = s
        .list_scenarios(req(proto::ListScenariosRequest::default(), DRILL))
        .await
        .unwrap()
        .into_inner()
        .scenarios;
    assert_eq!(listed.len(), 1, "{listed:?}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_over_the_configured_size_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.max_message_bytes = 2048;
    let srv = start(c).await;
    let (mut s, mut p) = (srv.scenarios().await, srv.plans().await);
    // gRPC's code for a message over the limit (C core, Java and Go say
    // it; tonic's own OUT_OF_RANGE is rewritten), naming the setting.
    let over = |e: Status| {
        assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
        assert!(e.message().contains("max_message_bytes"), "{e:?}");
    };
    let e = s
        .put_scenario(req(
            proto::PutScenarioRequest {
                scenario_json: national_json(),
                scenario: None,
            },
            PLANNER,
        ))
        .await
        .unwrap_err();
    over(e);
    // Small ones still pass; a response over the limit is refused the same way.
    let id = put(&mut s, tiny().to_string()).await.scenario_id;
    let (_, done) = solve(&mut p, solve_req(&id, PLANNER)).await.unwrap();
    let e = p
        .get_plan(req(
            proto::GetPlanRequest {
                plan_id: done.plan_id,
                ..Default::default()
            },
            PLANNER,
        ))
        .await
        .unwrap_err();
    over(e);
    // Every service takes the setting: registration kept tonic's 4 MiB.
    let mut r =
        proto::registration_service_client::RegistrationServiceClient::new(srv.channel().await);
    let quote = proto::QuoteRequest {
        region: "R".repeat(4096),
        ..Default::default()
    };
    over(r.quote(req(quote, REGISTRATION)).await.unwrap_err());
    srv.stop().await;
}

/// The tiny scenario as a structured message.
fn tiny_proto() -> proto::Scenario {
    proto::Scenario {
        format: "examcap/scenario@1".into(),
        name: "tiny".into(),
        start_week: "2026-W14".into(),
        horizon_weeks: 3,
        exams: vec![proto::Exam {
            id: "SPK".into(),
            name: "Spreken B1".into(),
            resource: "speaking_booth".into(),
            seat_minutes: 45.0,
            target_wait_weeks: 1,
            ..Default::default()
        }],
        locations: vec![proto::Location {
            id: "AMS".into(),
            name: "Amsterdam".into(),
            resources: vec![proto::Resource {
                kind: "speaking_booth".into(),
                weekly_minutes: 450.0,
                extra_weekly_minutes: 90.0,
                extra_cost_per_minute: 0.9,
            }],
            unavailable: vec![],
        }],
        regions: vec![proto::Region {
            id: "AMSTERDAM".into(),
            name: "Groot-Amsterdam".into(),
            options: vec![proto::RegionOption {
                location: "AMS".into(),
                travel_cost: 0.5,
            }],
        }],
        demand: vec![proto::Demand {
            region: "AMSTERDAM".into(),
            exam: "SPK".into(),
            weekly: vec![8.0, 12.0, 10.0],
        }],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_structured_scenario_is_the_same_as_its_json() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    let mut s = srv.scenarios().await;
    let from_json = put(&mut s, tiny().to_string()).await;
    let from_proto = s
        .put_scenario(req(
            proto::PutScenarioRequest {
                scenario_json: String::new(),
                scenario: Some(tiny_proto()),
            },
            PLANNER,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(from_proto.scenario_id, from_json.scenario_id);
    assert!(!from_proto.created);
    // `weights {}` is `"weights": {}`: the waiting weight's default, 1, in
    // both (the structured form read 0, a different scenario and plan).
    let mut json_weights = tiny();
    json_weights["weights"] = serde_json::json!({});
    let mut proto_weights = tiny_proto();
    proto_weights.weights = Some(proto::Weights::default());
    let from_proto = s
        .put_scenario(req(
            proto::PutScenarioRequest {
                scenario_json: String::new(),
                scenario: Some(proto_weights),
            },
            PLANNER,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(from_proto.scenario_id, from_json.scenario_id);
    assert_eq!(
        put(&mut s, json_weights.to_string()).await.scenario_id,
        from_json.scenario_id
    );

    let mut bad = tiny_proto();
    bad.demand[0].exam = "NOPE".into();
    bad.demand[0].weekly[2] = f64::NAN;
    // Names are bounded in the structured form as in JSON: a 1 MB name
    // used to be stored and then outgrow every list that carried it.
    bad.name = "n".repeat(1 << 20);
    let e = s
        .put_scenario(req(
            proto::PutScenarioRequest {
                scenario_json: String::new(),
                scenario: Some(bad),
            },
            PLANNER,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let fields = violation_fields(&e);
    assert!(fields.contains(&"demand[0].exam".to_string()), "{fields:?}");
    assert!(
        fields.contains(&"demand[0].weekly[2]".to_string()),
        "{fields:?}"
    );
    assert!(fields.contains(&"name".to_string()), "{fields:?}");

    for r in [
        proto::PutScenarioRequest::default(),
        proto::PutScenarioRequest {
            scenario_json: tiny().to_string(),
            scenario: Some(tiny_proto()),
        },
    ] {
        let e = s.put_scenario(req(r, PLANNER)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_mid_solve_cancels_it() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(common::one_slot_config(dir.path(), 0)).await;
    let mut s = srv.scenarios().await;
    let id = put(&mut s, national_json()).await.scenario_id;
    let tiny_id = put(&mut s, tiny().to_string()).await.scenario_id;
    {
        let mut p = srv.plans().await;
        let mut stream = p.solve(solve_req(&id, PLANNER)).await.unwrap().into_inner();
        let first = stream.message().await.unwrap().unwrap();
        assert!(matches!(first.event, Some(Event::Progress(_))));
        // Stream, client and channel dropped here, mid-solve.
    }
    // The only solve slot comes back once the abandoned solve stops.
    let mut p = srv.plans().await;
    assert!(
        solve_when_a_slot_frees(&mut p, &tiny_id, Duration::from_secs(15)).await,
        "the abandoned solve never released its slot"
    );
    // It was cancelled, not finished: no plan of the national scenario.
    let plans = all_plans(&mut p).await;
    assert!(
        !plans.iter().any(|x| x.scenario_id == id),
        "the abandoned solve ran to the end and stored its plan"
    );
    assert!(plans.iter().any(|x| x.scenario_id == tiny_id));
    srv.stop().await;
}

/// A caller that goes away while its solve waits in the queue gives its
/// place up at once, not when a slot frees and the solve starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_goes_away_while_queued_gives_its_place_up() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(common::one_slot_config(dir.path(), 1)).await;
    let (mut s, mut p) = (srv.scenarios().await, srv.plans().await);
    let three_years = national(&GenerateOptions {
        weeks: 156,
        ..GenerateOptions::default()
    });
    let big = put(&mut s, serde_json::to_string(&three_years).unwrap())
        .await
        .scenario_id;
    let tiny_id = put(&mut s, tiny().to_string()).await.scenario_id;
    // The big solve holds the only slot, its stream open.
    let mut running = p
        .solve(solve_req(&big, PLANNER))
        .await
        .unwrap()
        .into_inner();
    running.message().await.unwrap().unwrap();
    // A second caller takes the one queue place, then goes away.
    let queued = p.solve(solve_req(&tiny_id, PLANNER)).await.unwrap();
    drop(queued);
    // Its place is free again while the big solve still runs.
    let admitted = admitted_solve(&mut p, &tiny_id, Duration::from_secs(5))
        .await
        .expect("the place of the caller that went away is still taken");
    let plans = all_plans(&mut p).await;
    assert!(
        !plans.iter().any(|x| x.scenario_id == big),
        "the big solve ended before the test could tell"
    );
    drop((admitted, running));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_deadline_is_deadline_exceeded_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    let (mut s, mut p, mut d) = (srv.scenarios().await, srv.plans().await, srv.drills().await);
    let id = put(&mut s, tiny().to_string()).await.scenario_id;
    let mut r = solve_req(&id, PLANNER);
    r.metadata_mut()
        .insert("grpc-timeout", "0n".parse().unwrap());
    let e = solve(&mut p, r).await.unwrap_err();
    assert!(
        matches!(e.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{e:?}"
    );
    let mut r = req(
        proto::RunDrillRequest {
            base_scenario_id: id.clone(),
            shocks: vec![demand_shock("", 0, 0, 2.0)],
            name: String::new(),
        },
        DRILL,
    );
    r.metadata_mut()
        .insert("grpc-timeout", "0n".parse().unwrap());
    let e = d.run_drill(r).await.unwrap_err();
    assert!(
        matches!(e.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{e:?}"
    );
    solve(&mut p, solve_req(&id, PLANNER)).await.unwrap();
    srv.stop().await;
}

/// Accepted connections have TCP_NODELAY: a small reply is not held back
/// waiting for the ACK of the previous one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_connections_have_nodelay() {
    use tokio_stream::StreamExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut incoming = examcap::server::incoming(listener);
    let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
    let accepted = tokio::time::timeout(Duration::from_secs(5), incoming.next())
        .await
        .expect("a connection within 5 s")
        .expect("the listener is open")
        .unwrap();
    assert!(accepted.nodelay().unwrap());
}

/// Every stored plan, as the planner lists them.
async fn all_plans(p: &mut PlanServiceClient<Channel>) -> Vec<proto::PlanInfo> {
    p.list_plans(req(proto::ListPlansRequest::default(), PLANNER))
        .await
        .unwrap()
        .into_inner()
        .plans
}

/// A drill of `base` as ops: SPK demand ×1.5 in weeks 1–2.
async fn spk_drill(srv: &common::Running, base: String) -> proto::RunDrillResponse {
    srv.drills()
        .await
        .run_drill(req(
            proto::RunDrillRequest {
                base_scenario_id: base,
                shocks: vec![demand_shock("SPK", 1, 2, 1.5)],
                name: String::new(),
            },
            DRILL,
        ))
        .await
        .unwrap()
        .into_inner()
}

/// `examcap audit --data-dir` reads what the service wrote, with the server
/// stopped: one row per write, the token's name, role and RPC (a reviewer
/// found the README's audit log had no way to be read). With the server
/// running, the store is in use and the command says so, and
/// `AuditService.ListAuditEntries` lists the same entries to a planner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_is_read_over_grpc_and_from_a_stopped_servers_store() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    let published = common::publish_scenario(srv.channel().await, &tiny()).await;
    // A drill writes its shocked scenario and its plan: both audited.
    let scenario_id = {
        let list = srv
            .scenarios()
            .await
            .list_scenarios(req(proto::ListScenariosRequest::default(), PLANNER))
            .await
            .unwrap()
            .into_inner();
        list.scenarios[0].scenario_id.clone()
    };
    let drill = spk_drill(&srv, scenario_id).await;
    // A drill of a scenario without a plan also solves and stores the
    // base plan it compares with: three writes, three entries.
    let mut unsolved = tiny();
    unsolved["name"] = serde_json::json!("tiny, never solved");
    let unsolved_id = put(&mut srv.scenarios().await, unsolved.to_string())
        .await
        .scenario_id;
    let drill2 = spk_drill(&srv, unsolved_id).await;
    let data_dir = dir.path().to_str().unwrap().to_string();
    let audit = move |json: bool| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_examcap"));
        c.args(["audit", "--data-dir", &data_dir]);
        if json {
            c.arg("--json");
        }
        c.output().unwrap()
    };
    let busy = tokio::task::spawn_blocking({
        let audit = audit.clone();
        move || audit(false)
    })
    .await
    .unwrap();
    assert_eq!(busy.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("in use by another process"),
        "{busy:?}"
    );
    // The running server reads the same log over gRPC, a page at a time.
    let online = {
        let mut audit = AuditServiceClient::new(srv.channel().await);
        let mut entries = Vec::new();
        let mut token = String::new();
        let mut pages = 0;
        loop {
            let page = audit
                .list_audit_entries(req(
                    proto::ListAuditEntriesRequest {
                        page_size: 2,
                        page_token: token,
                    },
                    PLANNER,
                ))
                .await
                .unwrap()
                .into_inner();
            assert!(page.entries.len() <= 2);
            entries.extend(page.entries);
            pages += 1;
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        assert_eq!(pages, 5, "9 entries, 2 a page");
        for (who, bad_token, want) in [
            (DRILL, "", Code::PermissionDenied),
            (REGISTRATION, "", Code::PermissionDenied),
            (PLANNER, "after.r0000000000000001", Code::InvalidArgument),
            (PLANNER, "audit.01", Code::InvalidArgument),
        ] {
            let e = audit
                .list_audit_entries(req(
                    proto::ListAuditEntriesRequest {
                        page_size: 0,
                        page_token: bad_token.into(),
                    },
                    who,
                ))
                .await
                .unwrap_err();
            assert_eq!(e.code(), want, "{who} {bad_token:?}: {e:?}");
            if want == Code::InvalidArgument {
                assert_eq!(violation_fields(&e), ["page_token"]);
            }
        }
        entries
    };
    // `examcap audit --server` prints them; a drill token is refused (exit 2).
    let url = format!("http://{}", srv.addr);
    let cli = |token: &str| {
        let (url, token) = (url.clone(), token.to_string());
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_examcap"))
                .args(["audit", "--server", &url, "--token", &token, "--json"])
                .env_remove("EXAMCAP_TOKEN")
                .output()
                .unwrap()
        })
    };
    let from_server = cli(PLANNER).await.unwrap();
    assert_eq!(from_server.status.code(), Some(0), "{from_server:?}");
    let refused = cli(DRILL).await.unwrap();
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("PermissionDenied"),
        "{refused:?}"
    );
    srv.stop().await;

    let out = audit(true);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let log: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let rows: Vec<(&str, &str, &str)> = log
        .iter()
        .map(|e| {
            (
                e["who"].as_str().unwrap(),
                e["role"].as_str().unwrap(),
                e["rpc"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("alice", "planner", "PutScenario"),
            ("alice", "planner", "Solve"),
            ("alice", "planner", "Publish"),
            ("ops", "drill", "RunDrill"),
            ("ops", "drill", "RunDrill"),
            ("alice", "planner", "PutScenario"),
            ("ops", "drill", "RunDrill"),
            ("ops", "drill", "RunDrill"),
            ("ops", "drill", "RunDrill"),
        ]
    );
    let targets: Vec<&str> = log[6..]
        .iter()
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        [
            drill2.base.as_ref().unwrap().plan_id.as_str(),
            drill2.drill_scenario_id.as_str(),
            drill2.drill.as_ref().unwrap().plan_id.as_str(),
        ]
    );
    assert_eq!(log[2]["target"], published.plan_id.as_str());
    assert_eq!(log[3]["target"], drill.drill_scenario_id.as_str());
    assert_eq!(
        log[4]["target"],
        drill.drill.as_ref().unwrap().plan_id.as_str()
    );
    let text = String::from_utf8_lossy(&audit(false).stdout).into_owned();
    assert!(
        text.contains("time (UTC)") && text.contains("Publish"),
        "{text}"
    );
    // What the service listed is the stopped store's log, entry by entry.
    let offline: Vec<proto::AuditEntry> = log
        .iter()
        .map(|e| proto::AuditEntry {
            who: e["who"].as_str().unwrap().into(),
            role: e["role"].as_str().unwrap().into(),
            rpc: e["rpc"].as_str().unwrap().into(),
            target: e["target"].as_str().unwrap().into(),
            unix_time: e["unix_time"].as_i64().unwrap(),
        })
        .collect();
    assert_eq!(online, offline);
    assert_eq!(from_server.stdout, out.stdout);
}

/// With less free disk than `disk_reserve_mb`, a write is refused before
/// the store is touched: RESOURCE_EXHAUSTED saying nothing was written, and
/// nothing is (a restart with the reserve met finds no scenario).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_below_the_disk_reserve_are_refused_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        disk_reserve_mb: u64::MAX >> 20,
        ..config(dir.path())
    };
    let srv = start(cfg).await;
    let e = srv
        .scenarios()
        .await
        .put_scenario(req(
            proto::PutScenarioRequest {
                scenario_json: tiny().to_string(),
                scenario: None,
            },
            PLANNER,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("nothing was written"), "{e:?}");
    srv.stop().await;
    let store = SledStore::open(dir.path()).unwrap();
    assert!(store.list_scenarios().unwrap().is_empty());
    assert!(store.audit_log().unwrap().is_empty());
}

/// ListScenarios and ListPlans page as ListAuditEntries does: every drill
/// and re-plan stores a scenario and a plan, and the whole list outgrew
/// the message limit (then every call was RESOURCE_EXHAUSTED; a reviewer
/// reached it with a small limit). Pages walk the whole list in order, a
/// head stored between pages shows up once, and a token not from a
/// previous page is INVALID_ARGUMENT naming `page_token`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios_and_plans_are_listed_in_pages() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path())).await;
    let (mut s, mut p) = (srv.scenarios().await, srv.plans().await);
    let named = |i: usize| {
        let mut v = tiny();
        v["name"] = format!("tiny-{i}").into();
        v.to_string()
    };
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(put(&mut s, named(i)).await.scenario_id);
    }
    for id in &ids[..3] {
        solve(&mut p, solve_req(id, PLANNER)).await.unwrap();
    }
    let list = |page_size: u32, page_token: String| proto::ListScenariosRequest {
        page_size,
        page_token,
    };
    let whole = s
        .list_scenarios(req(list(0, String::new()), PLANNER))
        .await
        .unwrap()
        .into_inner();
    assert!(whole.next_page_token.is_empty());
    let whole: Vec<String> = whole.scenarios.into_iter().map(|x| x.scenario_id).collect();
    assert_eq!(whole, ids);

    let (mut seen, mut sizes, mut token) = (Vec::new(), Vec::new(), String::new());
    loop {
        let page = s
            .list_scenarios(req(list(2, token), PLANNER))
            .await
            .unwrap()
            .into_inner();
        sizes.push(page.scenarios.len());
        seen.extend(page.scenarios.into_iter().map(|x| x.scenario_id));
        if seen.len() == 2 {
            // Stored between two pages: listed once, at the end.
            ids.push(put(&mut s, named(5)).await.scenario_id);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(sizes, [2, 2, 2]);
    assert_eq!(seen, ids);

    let plans = |scenario_id: &str, page_token: String| proto::ListPlansRequest {
        scenario_id: scenario_id.to_string(),
        page_size: 1,
        page_token,
    };
    let (mut listed, mut token) = (Vec::new(), String::new());
    loop {
        let page = p
            .list_plans(req(plans("", token), PLANNER))
            .await
            .unwrap()
            .into_inner();
        assert!(page.plans.len() <= 1);
        listed.extend(page.plans.into_iter().map(|x| x.scenario_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(listed, ids[..3]);
    let one = p
        .list_plans(req(plans(&ids[1], String::new()), PLANNER))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.plans.len(), 1);
    assert!(one.next_page_token.is_empty());

    for bad in [
        "bogus",
        "scenarios.1",
        "scenarios.x.0.ab",
        "plans.0.0.ab",
        "audit.3",
    ] {
        let e = s
            .list_scenarios(req(list(2, bad.into()), PLANNER))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{bad}: {e:?}");
        assert_eq!(violation_fields(&e), ["page_token"], "{bad}");
    }
    let e = p
        .list_plans(req(plans("", "scenarios.0.0.ab".into()), PLANNER))
        .await
        .unwrap_err();
    assert_eq!(violation_fields(&e), ["page_token"]);
    // Shaped as a token, but naming no listed head: a forged one, or one
    // from the list of another scenario (which would skip this one's).
    let first = p
        .list_plans(req(plans("", String::new()), PLANNER))
        .await
        .unwrap()
        .into_inner();
    let token = first.next_page_token;
    assert!(token.starts_with("plans."), "{token}");
    for bad in [format!("{token}0"), token.replace("plans.", "plans.-")] {
        let e = p
            .list_plans(req(plans("", bad.clone()), PLANNER))
            .await
            .unwrap_err();
        assert_eq!(violation_fields(&e), ["page_token"], "{bad}");
    }
    let e = p
        .list_plans(req(plans(&ids[1], token), PLANNER))
        .await
        .unwrap_err();
    assert_eq!(violation_fields(&e), ["page_token"]);
    srv.stop().await;
}
