//! Helpers shared by the integration suites: a real server on 127.0.0.1:0,
//! bearer-token requests, and putting, solving and publishing a scenario.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;

use examcap::api::shock_proto;
use examcap::auth::{Role, Token};
use examcap::config::Config;
use examcap::drill::{DemandChange, ShockSpec};
use examcap::proto::drill_service_client::DrillServiceClient;
use examcap::proto::plan_service_client::PlanServiceClient;
use examcap::proto::reschedule_service_client::RescheduleServiceClient;
use examcap::proto::scenario_service_client::ScenarioServiceClient;
use examcap::proto::{self, solve_event::Event};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

pub const PLANNER: &str = "planner-secret-1";
pub const REGISTRATION: &str = "registration-secret-1";
pub const DRILL: &str = "drill-secret-1";

/// 1 exam, 1 location, 1 region, 3 weeks: capacity 10 a week plus 2 extra,
/// demand 8, 12, 10 with a 1-week target.
pub fn tiny() -> Value {
    serde_json::from_str(include_str!("../fixtures/tiny.json")).expect("fixture is JSON")
}

/// Where the registration clock of [`config`] is pinned: before the first
/// week of every scenario the suites publish (the earliest starts in
/// 2026-W14), so no cell has closed for booking whatever today's date.
pub const BOOKING_DATE: &str = "2026-01-01";

/// A configuration with one token per role on `dir`, the registration
/// clock pinned to [`BOOKING_DATE`].
pub fn config(dir: &Path) -> Config {
    Config {
        data_dir: dir.to_owned(),
        today: Some(BOOKING_DATE.parse().expect("BOOKING_DATE is a date")),
        tokens: vec![
            token("alice", Role::Planner, PLANNER),
            token("regsys", Role::Registration, REGISTRATION),
            token("ops", Role::Drill, DRILL),
        ],
        ..Config::default()
    }
}

/// [`config`] with one solve slot and `queue` places to wait in, for the
/// tests of a full or abandoned queue.
pub fn one_slot_config(dir: &Path, queue: usize) -> Config {
    Config {
        max_concurrent_solves: 1,
        solve_queue: queue,
        ..config(dir)
    }
}

pub fn token(name: &str, role: Role, token: &str) -> Token {
    Token {
        name: name.into(),
        role,
        token: token.into(),
    }
}

/// A server running in this process.
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), examcap::server::ServerError>>,
}

impl Running {
    /// Stops the server and waits until it has drained.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.await.unwrap().unwrap();
    }

    pub async fn channel(&self) -> Channel {
        channel(&format!("http://{}", self.addr)).await
    }

    pub async fn scenarios(&self) -> ScenarioServiceClient<Channel> {
        ScenarioServiceClient::new(self.channel().await)
    }

    pub async fn drills(&self) -> DrillServiceClient<Channel> {
        DrillServiceClient::new(self.channel().await)
    }

    pub async fn plans(&self) -> PlanServiceClient<Channel> {
        PlanServiceClient::new(self.channel().await).max_decoding_message_size(64 << 20)
    }

    pub async fn reschedules(&self) -> RescheduleServiceClient<Channel> {
        RescheduleServiceClient::new(self.channel().await).max_decoding_message_size(64 << 20)
    }
}

pub async fn channel(url: &str) -> Channel {
    Channel::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// Starts `examcap::server::run` on 127.0.0.1:0.
pub async fn start(config: Config) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(examcap::server::run(listener, config, async {
        let _ = rx.await;
    }));
    Running {
        addr,
        stop: Some(tx),
        task,
    }
}

/// A Solve of `scenario_id` with default options, as `token`.
pub fn solve_req(scenario_id: &str, token: &str) -> Request<proto::SolveRequest> {
    req(
        proto::SolveRequest {
            scenario_id: scenario_id.into(),
            ..Default::default()
        },
        token,
    )
}

/// The event stream of a planner's Solve of `scenario_id` once the queue
/// admits it: a full queue (RESOURCE_EXHAUSTED) is asked again until
/// `patience` runs out (then `None`); any other refusal fails the test.
pub async fn admitted_solve(
    p: &mut PlanServiceClient<Channel>,
    scenario_id: &str,
    patience: std::time::Duration,
) -> Option<tonic::Streaming<proto::SolveEvent>> {
    let until = tokio::time::Instant::now() + patience;
    loop {
        match p.solve(solve_req(scenario_id, PLANNER)).await {
            Ok(r) => return Some(r.into_inner()),
            Err(e) if e.code() == Code::ResourceExhausted => {
                if tokio::time::Instant::now() >= until {
                    return None;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            Err(e) => panic!("{e:?}"),
        }
    }
}

/// `msg` with `authorization: Bearer <token>`.
pub fn req<T>(msg: T, token: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

/// The code of a call that must fail.
pub fn code<T>(r: Result<tonic::Response<T>, Status>) -> Code {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.code(),
    }
}

/// Puts `scenario` and solves it to the end (as the planner); returns the
/// plan id.
pub async fn solve_scenario(ch: Channel, scenario: &Value) -> String {
    let put = ScenarioServiceClient::new(ch.clone())
        .put_scenario(req(
            proto::PutScenarioRequest {
                scenario_json: scenario.to_string(),
                scenario: None,
            },
            PLANNER,
        ))
        .await
        .unwrap()
        .into_inner();
    let mut stream = PlanServiceClient::new(ch)
        .solve(solve_req(&put.scenario_id, PLANNER))
        .await
        .unwrap()
        .into_inner();
    let mut plan_id = None;
    while let Some(ev) = stream.message().await.unwrap() {
        if let Some(Event::Done(s)) = ev.event {
            plan_id = Some(s.plan_id);
        }
    }
    plan_id.expect("the solve ends with a plan")
}

/// Puts `scenario`, solves it to the end and publishes the plan (as the
/// planner); returns the PublishResponse.
pub async fn publish_scenario(ch: Channel, scenario: &Value) -> proto::PublishResponse {
    let plan_id = solve_scenario(ch.clone(), scenario).await;
    PlanServiceClient::new(ch)
        .publish(req(proto::PublishRequest { plan_id }, PLANNER))
        .await
        .unwrap()
        .into_inner()
}

/// A RegistrationService client.
pub type Registration =
    examcap::proto::registration_service_client::RegistrationServiceClient<Channel>;

/// A reservation request of the tiny scenario's region and exam.
pub fn reserve_req(key: &str, cand: &str) -> proto::ReserveRequest {
    proto::ReserveRequest {
        idempotency_key: key.into(),
        candidate_ref: cand.into(),
        region: "AMSTERDAM".into(),
        exam: "SPK".into(),
        ..Default::default()
    }
}

/// GetStock of exam SPK over the whole horizon.
pub async fn stock_response(c: &mut Registration) -> proto::GetStockResponse {
    c.get_stock(req(
        proto::GetStockRequest {
            exam: "SPK".into(),
            ..Default::default()
        },
        REGISTRATION,
    ))
    .await
    .unwrap()
    .into_inner()
}

/// The cells of [`stock_response`].
pub async fn stock(c: &mut Registration) -> Vec<proto::StockCell> {
    stock_response(c).await.cells
}

/// Every reservation, following the page tokens.
pub async fn list_all(
    c: &mut Registration,
    include_cancelled: bool,
    page_size: u32,
) -> Vec<proto::Reservation> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = c
            .list_reservations(req(
                proto::ListReservationsRequest {
                    include_cancelled,
                    page_size,
                    page_token: token.clone(),
                    ..Default::default()
                },
                REGISTRATION,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(page.reservations.len() <= page_size.max(1) as usize);
        out.extend(page.reservations);
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}

/// A demand shock: `exam` in every region ×`mult` in weeks `from..=to`.
pub fn demand_shock(exam: &str, from: usize, to: usize, mult: f64) -> proto::Shock {
    shock_proto(&ShockSpec::Demand {
        region: None,
        exam: Some(exam.into()),
        from_week: from,
        to_week: to,
        change: DemandChange::Multiplier(mult),
    })
}

/// Every field a BadRequest detail names, in order.
pub fn violation_fields(s: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    let br = s.get_details_bad_request().expect("a BadRequest detail");
    br.field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect()
}
