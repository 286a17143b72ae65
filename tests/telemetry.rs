//! OTLP export end to end: an in-process OTLP trace collector (the
//! opentelemetry-proto TraceService on tonic, 127.0.0.1:0), the service's
//! telemetry pointed at it, one Solve, a flush, and the spans checked.
//! Its own test binary, because it installs the global subscriber.

use std::sync::{Arc, Mutex};

use examcap::auth::{Role, Token};
use examcap::config::Config;
use examcap::proto;
use examcap::proto::plan_service_client::PlanServiceClient;
use examcap::proto::scenario_service_client::ScenarioServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use tonic::{Request, Response, Status};

/// Span name and its string attributes.
type Seen = Arc<Mutex<Vec<(String, Vec<(String, String)>)>>>;

struct Collector(Seen);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        req: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut seen = self.0.lock().unwrap();
        for rs in req.into_inner().resource_spans {
            for ss in rs.scope_spans {
                for span in ss.spans {
                    let attrs = span
                        .attributes
                        .iter()
                        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
                            AnyValue::StringValue(s) => Some((kv.key.clone(), s.clone())),
                            _ => None,
                        })
                        .collect();
                    seen.push((span.name, attrs));
                }
            }
        }
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

const PLANNER: &str = "planner-secret-1";

fn req<T>(msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {PLANNER}").parse().unwrap(),
    );
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_and_solver_spans_reach_an_otlp_collector() {
    let seen: Seen = Arc::default();
    let collector = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_addr = collector.local_addr().unwrap();
    let (stop_collector, stopped) = tokio::sync::oneshot::channel::<()>();
    let collector_task = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Collector(seen.clone())))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(collector),
                async {
                    let _ = stopped.await;
                },
            ),
    );

    let telemetry = examcap::telemetry::init(Some(format!("http://{collector_addr}"))).unwrap();
    assert!(telemetry.exporting());

    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().to_owned(),
        tokens: vec![Token {
            name: "alice".into(),
            role: Role::Planner,
            token: PLANNER.into(),
        }],
        ..Config::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(examcap::server::run(listener, config, async {
        let _ = stopped.await;
    }));
    let url = format!("http://{addr}");
    let mut s = ScenarioServiceClient::connect(url.clone()).await.unwrap();
    let mut p = PlanServiceClient::connect(url).await.unwrap();
    let tiny: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/tiny.json")).expect("fixture is JSON");
    let id = s
        .put_scenario(req(proto::PutScenarioRequest {
            scenario_json: tiny.to_string(),
            scenario: None,
        }))
        .await
        .unwrap()
        .into_inner()
        .scenario_id;
    let mut stream = p
        .solve(req(proto::SolveRequest {
            scenario_id: id,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    while stream.message().await.unwrap().is_some() {}
    let _ = stop.send(());
    server.await.unwrap().unwrap();

    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"ScenarioService/PutScenario"), "{names:?}");
    assert!(names.contains(&"PlanService/Solve"), "{names:?}");
    for step in [
        "validate", "build", "solve", "stage1", "stage2", "rounding", "waits", "duals",
    ] {
        assert!(
            seen.iter().any(|(n, attrs)| n == "solver_step"
                && attrs.iter().any(|(k, v)| k == "step" && v == step)),
            "no solver_step {step}: {seen:?}"
        );
    }
    let _ = stop_collector.send(());
    collector_task.await.unwrap().unwrap();
}
