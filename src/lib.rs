//! # examcap service
//!
//! The gRPC service of examcap (package `examcap.v1`, see `proto/`), built
//! on the planning core in `examcap-solver`. Requests flow one way:
//! [`auth`] (bearer token → role) → [`api`] (proto → solver types, validate,
//! solve on a blocking thread) → [`store`] (sled) → response.
//!
//! - [`api`]: the handlers of ScenarioService, PlanService and DrillService,
//!   the proto ↔ solver conversions and the one exhaustive mapping of
//!   [`api::ApiError`] to gRPC status codes.
//! - [`store`]: the [`store::Store`] trait the service talks to, and its sled
//!   implementation (so a shared database can replace sled later).
//! - [`auth`]: roles (planner, registration, drill) and which RPC each may call.
//! - [`backlog`]: reservations as the backlog of the next scenario.
//! - [`drill`]: what-if shocks as transforms of a scenario.
//! - [`registration`]: RegistrationService: quotes and never-oversold,
//!   durable seat reservations against the published plan.
//! - [`reschedule`]: RescheduleService, a repair in milliseconds then the
//!   optimal re-plan of a published plan after a surge.
//! - [`client`]: how the CLI connects to a server and sends its token.
//! - [`config`]: the server configuration (TOML file plus environment overrides).
//! - [`telemetry`]: tracing subscriber set-up.
//! - [`deadline`]: a call's gRPC deadline answered as DEADLINE_EXCEEDED
//!   (tonic's own timeout says CANCELLED).
//! - [`size_limit`]: a message over `max_message_bytes` answered as
//!   RESOURCE_EXHAUSTED (tonic says OUT_OF_RANGE).
//! - [`server`]: [`server::run`] wires it all to a listener, with health and
//!   reflection, until a shutdown future resolves.
#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod backlog;
pub mod client;
pub mod config;
pub mod deadline;
pub mod drill;
pub mod registration;
pub mod reschedule;
pub mod server;
pub mod size_limit;
pub mod store;
pub mod telemetry;

/// Code generated from `proto/examcap/v1/*.proto` (servers and clients).
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod proto {
    tonic::include_proto!("examcap.v1");

    /// The encoded file descriptor set of the examcap.v1 protos, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("examcap_descriptor");
}
