//! `examcap report --server`: the plans and their scenarios read from a
//! running service, so ops can render a drill without copying files. A
//! plan's scenario id is its scenario's content hash, so GetPlan then
//! GetScenario finds the exact scenario the plan was solved from.

use examcap::client::{authed, call_failure, connect, ClientError, MAX_MESSAGE};
use examcap::proto::plan_service_client::PlanServiceClient;
use examcap::proto::scenario_service_client::ScenarioServiceClient;
use examcap::proto::{GetPlanRequest, GetScenarioRequest};
use examcap_solver::plan::PLAN_FORMAT;
use examcap_solver::{parse_scenario, Plan};
use tonic::Code;

use super::Input;

/// Why the service could not give what the report needs.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Client(#[from] ClientError),
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
            FetchError::Client(e) => e.is_input(),
            FetchError::Rpc { code, .. } => examcap::client::is_caller_code(*code),
            FetchError::Document { .. } | FetchError::Runtime(_) => false,
        }
    }
}

/// Fetches each plan id with its scenario, in order.
pub fn fetch(url: &str, token: Option<&str>, ids: &[&str]) -> Result<Vec<Input>, FetchError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(FetchError::Runtime)?;
    rt.block_on(async {
        let channel = connect(url).await?;
        let mut plans =
            PlanServiceClient::new(channel.clone()).max_decoding_message_size(MAX_MESSAGE);
        let mut scenarios =
            ScenarioServiceClient::new(channel).max_decoding_message_size(MAX_MESSAGE);
        let mut out = Vec::new();
        for &id in ids {
            // The id the failed call asked for: the plan's, or its scenario's.
            let rpc = |call, id: &str| {
                let id = id.to_string();
                move |s: tonic::Status| FetchError::Rpc {
                    call,
                    id,
                    code: s.code(),
                    message: call_failure(&s, token.is_some()),
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
                .map_err(rpc("GetPlan", id))?
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
                .map_err(rpc("GetScenario", &scenario_id))?
                .into_inner();
            let scenario =
                parse_scenario(sc.scenario_json.as_bytes()).map_err(|e| FetchError::Document {
                    what: "scenario",
                    id: scenario_id.clone(),
                    reason: e.to_string(),
                })?;
            // The scenario's name says what the plan is about; the short id
            // tells two plans of one scenario apart.
            let label = format!("{} · plan {}", scenario.name, super::short(id));
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
