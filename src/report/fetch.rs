//! `examcap report --server`: the plans and their scenarios read from a
//! running service, so ops can render a drill without copying files. A
//! plan's scenario id is its scenario's content hash, so GetPlan then
//! GetScenario finds the exact scenario the plan was solved from.

use std::time::Duration;

use examcap::proto::plan_service_client::PlanServiceClient;
use examcap::proto::scenario_service_client::ScenarioServiceClient;
use examcap::proto::{GetPlanRequest, GetScenarioRequest};
use examcap_solver::plan::PLAN_FORMAT;
use examcap_solver::{parse_scenario, Plan};
use tonic::transport::Channel;
use tonic::{Code, Request};

use super::Input;

/// Largest message accepted: a national plan is a few MiB.
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// Why the service could not give what the report needs.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("--server {url}: not a server address: {reason}")]
    Url { url: String, reason: String },
    #[error("--server {url}: cannot connect")]
    Connect {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("--token: not usable as a bearer token (visible ASCII only)")]
    Token,
    #[error("{call} {id}: {code:?}: {message}")]
    Rpc {
        call: &'static str,
        id: String,
        code: Code,
        message: String,
    },
    #[error("{what} {id} from the server is not valid: {reason}")]
    Document {
        what: &'static str,
        id: String,
        reason: String,
    },
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
}

impl FetchError {
    /// The caller's mistake (bad address, token, id), not the server's.
    pub fn is_input(&self) -> bool {
        match self {
            FetchError::Url { .. } | FetchError::Token => true,
            FetchError::Rpc { code, .. } => matches!(
                code,
                Code::NotFound
                    | Code::InvalidArgument
                    | Code::Unauthenticated
                    | Code::PermissionDenied
            ),
            FetchError::Connect { .. } | FetchError::Document { .. } | FetchError::Runtime(_) => {
                false
            }
        }
    }
}

fn authed<T>(msg: T, token: Option<&str>) -> Result<Request<T>, FetchError> {
    let mut req = Request::new(msg);
    if let Some(t) = token {
        let value = format!("Bearer {t}")
            .parse()
            .map_err(|_| FetchError::Token)?;
        req.metadata_mut().insert("authorization", value);
    }
    Ok(req)
}

/// Fetches each plan id with its scenario, in order.
pub fn fetch(url: &str, token: Option<&str>, ids: &[&str]) -> Result<Vec<Input>, FetchError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(FetchError::Runtime)?;
    // Without a scheme the address parses but every connect fails with a
    // transport error: name the mistake instead.
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(FetchError::Url {
            url: url.into(),
            reason: "expected http://HOST:PORT or https://HOST:PORT".into(),
        });
    }
    rt.block_on(async {
        let channel = Channel::from_shared(url.to_string())
            .map_err(|e| FetchError::Url {
                url: url.into(),
                reason: e.to_string(),
            })?
            .connect_timeout(Duration::from_secs(10))
            .connect()
            .await
            .map_err(|source| FetchError::Connect {
                url: url.into(),
                source,
            })?;
        let mut plans =
            PlanServiceClient::new(channel.clone()).max_decoding_message_size(MAX_MESSAGE);
        let mut scenarios =
            ScenarioServiceClient::new(channel).max_decoding_message_size(MAX_MESSAGE);
        let mut out = Vec::new();
        for &id in ids {
            let rpc = |call| {
                move |s: tonic::Status| FetchError::Rpc {
                    call,
                    id: id.into(),
                    code: s.code(),
                    message: s.message().into(),
                }
            };
            let got = plans
                .get_plan(authed(
                    GetPlanRequest {
                        plan_id: id.into(),
                        ..Default::default()
                    },
                    token,
                )?)
                .await
                .map_err(rpc("GetPlan"))?
                .into_inner();
            let bad_plan = |reason: String| FetchError::Document {
                what: "plan",
                id: id.into(),
                reason,
            };
            let plan: Plan =
                serde_json::from_str(&got.plan_json).map_err(|e| bad_plan(e.to_string()))?;
            if plan.format != PLAN_FORMAT {
                return Err(bad_plan(format!("format {:?}", plan.format)));
            }
            let scenario_id = plan.scenario.content_hash.clone();
            let sc = scenarios
                .get_scenario(authed(
                    GetScenarioRequest {
                        scenario_id: scenario_id.clone(),
                    },
                    token,
                )?)
                .await
                .map_err(rpc("GetScenario"))?
                .into_inner();
            let scenario =
                parse_scenario(sc.scenario_json.as_bytes()).map_err(|e| FetchError::Document {
                    what: "scenario",
                    id: scenario_id.clone(),
                    reason: e.to_string(),
                })?;
            let label = format!("plan {}", super::short(id));
            let input = Input::new(plan, scenario, label).map_err(|e| FetchError::Document {
                what: "plan",
                id: id.into(),
                reason: e.to_string(),
            })?;
            out.push(input);
        }
        Ok(out)
    })
}
