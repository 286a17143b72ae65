//! Tracing for `examcap serve`.
//!
//! Every RPC handler opens a span named after its method
//! (`PlanService/Solve`, ...) and the solver's `solver_step` spans nest in
//! it (the solve's blocking thread enters the RPC span). Logs go to stderr in
//! human form, filtered by `RUST_LOG` (default `info`). When an OTLP
//! endpoint is given (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_ENDPOINT`, see [`otlp_endpoint_from_env`]), the same
//! spans are also exported over OTLP/gRPC (tonic), batched.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot build the OTLP exporter for {endpoint}: {message}")]
    Exporter { endpoint: String, message: String },
    #[error("cannot install the tracing subscriber: {0}")]
    Init(String),
}

/// The installed telemetry; [`Telemetry::shutdown`] flushes pending spans.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports every finished span now (blocking; call it off the async
    /// worker threads, e.g. in `spawn_blocking`). A no-op without OTLP.
    pub fn flush(&self) {
        if let Some(p) = &self.provider {
            if let Err(e) = p.force_flush() {
                tracing::warn!(error = %e, "flushing spans failed");
            }
        }
    }

    /// Flushes and stops the exporter (blocking, like [`Telemetry::flush`]).
    pub fn shutdown(self) {
        if let Some(p) = self.provider {
            if let Err(e) = p.shutdown() {
                eprintln!("examcap: warning: stopping the span exporter: {e}");
            }
        }
    }

    /// Whether spans are exported over OTLP.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

/// The OTLP traces endpoint from the standard variables, if any.
pub fn otlp_endpoint_from_env() -> Option<String> {
    [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .filter_map(|k| std::env::var(k).ok())
    .find(|v| !v.trim().is_empty())
}

/// Installs the global subscriber: stderr logs, plus OTLP export to
/// `otlp_endpoint` when given. Must run inside a tokio runtime when
/// exporting (the tonic channel lives on it).
pub fn init(otlp_endpoint: Option<String>) -> Result<Telemetry, TelemetryError> {
    let (filter, bad_filter) = log_filter(std::env::var("RUST_LOG").ok().as_deref());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let provider = match otlp_endpoint {
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .build()
                .map_err(|e| TelemetryError::Exporter {
                    endpoint,
                    message: e.to_string(),
                })?;
            Some(
                SdkTracerProvider::builder()
                    .with_resource(Resource::builder().with_service_name("examcap").build())
                    .with_batch_exporter(exporter)
                    .build(),
            )
        }
        None => None,
    };
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("examcap")));
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| TelemetryError::Init(e.to_string()))?;
    if let Some(why) = bad_filter {
        tracing::warn!("{why}");
    }
    Ok(Telemetry { provider })
}

/// The log filter from `RUST_LOG`'s value, `info` when it is unset or
/// blank; a value that does not parse also falls back to `info`, and says
/// so (the second element), instead of leaving the operator to wonder why
/// their filter has no effect.
fn log_filter(rust_log: Option<&str>) -> (EnvFilter, Option<String>) {
    match rust_log.map(str::trim).filter(|v| !v.is_empty()) {
        None => (EnvFilter::new("info"), None),
        Some(v) => match EnvFilter::try_new(v) {
            Ok(f) => (f, None),
            Err(e) => (
                EnvFilter::new("info"),
                Some(format!(
                    "RUST_LOG={v:?} is not a log filter ({e}); logging at info"
                )),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_rust_log_falls_back_to_info_and_says_so() {
        let (f, why) = log_filter(Some("examcap=[[["));
        assert_eq!(f.to_string(), "info");
        assert!(why.unwrap().contains("RUST_LOG=\"examcap=[[[\""));
        let (f, why) = log_filter(Some("examcap=debug"));
        assert_eq!((f.to_string(), why), ("examcap=debug".to_string(), None));
        let (f, why) = log_filter(None);
        assert_eq!((f.to_string(), why), ("info".to_string(), None));
    }
}
