//! Tracing set-up for `examcap serve`: human-readable logs on stderr,
//! filtered by `RUST_LOG` (default `info`). Every RPC handler opens a span
//! named after its method, and the solver's `solver_step` spans nest in it.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot install the tracing subscriber: {0}")]
    Init(String),
}

/// Installs the global subscriber (stderr logs).
pub fn init() -> Result<(), TelemetryError> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .try_init()
        .map_err(|e| TelemetryError::Init(e.to_string()))
}
