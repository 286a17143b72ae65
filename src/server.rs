//! Wires the services, health and reflection to a listener.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use crate::api::{Api, SolveGate};
use crate::auth::Auth;
use crate::config::{Config, ConfigError};
use crate::proto::audit_service_server::AuditServiceServer;
use crate::proto::drill_service_server::DrillServiceServer;
use crate::proto::plan_service_server::PlanServiceServer;
use crate::proto::registration_service_server::RegistrationServiceServer;
use crate::proto::reschedule_service_server::RescheduleServiceServer;
use crate::proto::scenario_service_server::ScenarioServiceServer;
use crate::store::{SledStore, Store, StoreError};

/// Why the server did not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("cannot open the data directory {dir}: {source}")]
    Store { dir: String, source: StoreError },
    #[error("reservations: {0}")]
    Registration(#[from] crate::registration::book::OpenError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("reflection: {0}")]
    Reflection(String),
    #[error("TLS: cannot read {path}: {source}")]
    TlsFile {
        path: String,
        source: std::io::Error,
    },
    #[error("TLS: {path}: {reason}")]
    TlsPem { path: String, reason: String },
    #[error("TLS: the certificate and key are not usable together: {0}")]
    Tls(String),
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

impl ServerError {
    /// The operator's mistake (configuration, TLS files, a data directory
    /// another process holds), not the server's.
    pub fn is_input(&self) -> bool {
        match self {
            ServerError::Config(_)
            | ServerError::TlsFile { .. }
            | ServerError::TlsPem { .. }
            | ServerError::Tls(_) => true,
            ServerError::Store { source, .. } => source.is_wrong_directory(),
            _ => false,
        }
    }
}

/// SIGINT (Ctrl-C) and SIGTERM as `examcap serve` sees them, as two
/// futures: the first signal resolves the first one (the drain starts), a
/// second signal the other (the drain's grace ends at once: an operator
/// who presses Ctrl-C twice, or an orchestrator that signals again, does
/// not wait out the grace period).
///
/// The handlers are installed when this is called, not when a future is
/// first polled: the server logs that it is serving before it polls its
/// shutdown future, and a SIGTERM in between would otherwise kill the
/// process with the default action instead of draining it.
pub fn shutdown_signals() -> (impl Future<Output = ()>, impl Future<Output = ()>) {
    let (count, seen) = tokio::sync::watch::channel(0u32);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).ok();
        let mut int = signal(SignalKind::interrupt()).ok();
        tokio::spawn(async move {
            async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        if s.recv().await.is_none() {
                            std::future::pending::<()>().await
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            loop {
                let name = tokio::select! {
                    () = next(&mut int) => "SIGINT",
                    () = next(&mut term) => "SIGTERM",
                };
                let n = *count.borrow() + 1;
                if n == 1 {
                    tracing::info!("{name}: shutting down");
                } else {
                    tracing::info!("{name} again");
                }
                if count.send(n).is_err() {
                    return;
                }
            }
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        let mut n = 0;
        while tokio::signal::ctrl_c().await.is_ok() {
            n += 1;
            tracing::info!("Ctrl-C ({n}): shutting down");
            if count.send(n).is_err() {
                return;
            }
        }
    });
    let reached = |n: u32| {
        let mut seen = seen.clone();
        async move {
            if seen.wait_for(|&c| c >= n).await.is_err() {
                std::future::pending::<()>().await
            }
        }
    };
    (reached(1), reached(2))
}

/// `examcap serve`: binds `config.listen` and serves until SIGINT/SIGTERM.
pub async fn serve(config: Config) -> Result<(), ServerError> {
    config.check()?;
    let (shutdown, again) = shutdown_signals();
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.listen.to_string(),
            source,
        })?;
    run_until(listener, config, shutdown, again).await
}

/// The connections `listener` accepts, with `TCP_NODELAY` set on each.
///
/// tonic sets it only on listeners it binds itself; on a listener handed in
/// (as here) Nagle's algorithm stays on, and a small reply written while an
/// earlier one is unacknowledged waits for the peer's delayed ACK (tens of
/// milliseconds on loopback). gRPC replies are small and written at once,
/// so they should go out at once.
pub fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Serves examcap.v1 (with gRPC health and reflection) on `listener` until
/// `shutdown` resolves; in-flight calls are then drained, for at most
/// `shutdown_grace_seconds`.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    run_until(listener, config, shutdown, std::future::pending()).await
}

/// The certificate file must hold a PEM certificate and the key file a PEM
/// private key: rustls says only "PrivateKeyParseError" when, say, both
/// settings name the certificate, without a word about which file.
fn check_pem(
    cert_path: &std::path::Path,
    cert: &[u8],
    key_path: &std::path::Path,
    key: &[u8],
) -> Result<(), ServerError> {
    use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
    let bad = |path: &std::path::Path, reason: String| ServerError::TlsPem {
        path: path.display().to_string(),
        reason,
    };
    CertificateDer::from_pem_slice(cert).map_err(|e| {
        bad(
            cert_path,
            format!("cert: no PEM certificate (BEGIN CERTIFICATE) in it: {e}"),
        )
    })?;
    // rustls reads no encrypted key; its PEM label is not a key's.
    if key
        .windows(b"ENCRYPTED PRIVATE KEY".len())
        .any(|w| w == b"ENCRYPTED PRIVATE KEY")
    {
        return Err(bad(
            key_path,
            "key: the private key is encrypted; give it unencrypted (openssl pkcs8 -nocrypt)"
                .into(),
        ));
    }
    PrivateKeyDer::from_pem_slice(key).map_err(|e| {
        bad(
            key_path,
            format!("key: no PEM private key (PKCS#8, PKCS#1 or SEC1) in it: {e}"),
        )
    })?;
    Ok(())
}

/// [`run`], whose drain also ends when `force` resolves (a second signal):
/// calls still open are then dropped without waiting out the grace.
pub async fn run_until(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
    force: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    config.check()?;
    // TLS first: a missing or unusable certificate stops the start before
    // the store is opened or anything says it is serving.
    let mut builder = Server::builder();
    if let Some(tls) = &config.tls {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|source| ServerError::TlsFile {
                path: p.display().to_string(),
                source,
            })
        };
        let (cert, key) = (read(&tls.cert)?, read(&tls.key)?);
        check_pem(&tls.cert, &cert, &tls.key, &key)?;
        let identity = Identity::from_pem(cert, key);
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(identity))
            .map_err(|e| {
                ServerError::Tls(format!(
                    "cert {} with key {}: {e:?}",
                    tls.cert.display(),
                    tls.key.display()
                ))
            })?;
    }
    if config.allow_unauthenticated {
        tracing::warn!(
            "serving with allow_unauthenticated: callers without a token act as planner"
        );
    }
    // Said once serving: a mistyped or relative data_dir (taken from the
    // working directory, not the config file's) opens an empty store.
    let new_store = !SledStore::exists(&config.data_dir);
    let reserve = config.disk_reserve_mb.saturating_mul(1 << 20);
    let sled = SledStore::open_with_reserve(&config.data_dir, reserve).map_err(|source| {
        ServerError::Store {
            dir: config.data_dir.display().to_string(),
            source,
        }
    })?;
    sled.set_stall_limit(Duration::from_secs(config.store_stall_seconds));
    let sled = Arc::new(sled);
    let store: Arc<dyn Store> = sled.clone();
    let book = Arc::new(crate::registration::open(store.clone(), config.clock())?);
    let api = Api::new(
        store,
        Auth::new(config.tokens.clone(), config.allow_unauthenticated),
        SolveGate::new(config.solve_slots(), config.solve_queue),
        book,
    );
    let max = config.max_message_bytes;

    let (health, health_service) = tonic_health::server::health_reporter();
    // The overall status "" (what a plain probe asks) and each service's.
    let services = [
        "",
        <ScenarioServiceServer<Api> as NamedService>::NAME,
        <PlanServiceServer<Api> as NamedService>::NAME,
        <DrillServiceServer<Api> as NamedService>::NAME,
        <RegistrationServiceServer<Api> as NamedService>::NAME,
        <RescheduleServiceServer<Api> as NamedService>::NAME,
        <AuditServiceServer<Api> as NamedService>::NAME,
    ];
    let status = Arc::new(Status::new(health, services).await);
    let mut store_watch = AbortOnDrop(tokio::spawn(watch_store(sled, status.clone())));
    // Reflection v1, and v1alpha for the clients (older grpcurl, IDEs) that
    // only speak that.
    let descriptors = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_err =
        |e: tonic_reflection::server::Error| ServerError::Reflection(e.to_string());
    let reflection = descriptors().build_v1().map_err(reflection_err)?;
    let reflection_alpha = descriptors().build_v1alpha().map_err(reflection_err)?;

    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    let data_dir = std::fs::canonicalize(&config.data_dir).unwrap_or(config.data_dir.clone());
    tracing::info!(%addr, data_dir = %data_dir.display(), "examcap serving");
    if new_store {
        tracing::warn!(
            data_dir = %data_dir.display(),
            "data_dir held no store: created a new, empty one (no scenarios, no published \
             plan); if one was expected, check data_dir (a relative one is taken from the \
             working directory)"
        );
    }
    if let Some(today) = config.today {
        tracing::warn!(
            %today,
            "registration clock pinned (`today` or EXAMCAP_TODAY): cells are sold as if it \
             were this date; leave it out in production"
        );
    }
    if let Some(tls) = &config.tls {
        tracing::info!(cert = %tls.cert.display(), "serving TLS");
    }
    let router = builder
        .layer(crate::deadline::DeadlineLayer)
        .layer(crate::size_limit::SizeLimitLayer)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(
            ScenarioServiceServer::new(api.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            PlanServiceServer::new(api.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            DrillServiceServer::new(api.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            RescheduleServiceServer::new(api.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            AuditServiceServer::new(api.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            RegistrationServiceServer::new(api)
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        );
    let (draining, drain_started) = tokio::sync::oneshot::channel::<()>();
    let serving = router.serve_with_incoming_shutdown(incoming(listener), async move {
        shutdown.await;
        // Load balancers and probes see the drain before the port closes.
        status.update(|down| down.draining = true).await;
        let _ = draining.send(());
    });
    // Calls in flight get `shutdown_grace_seconds` to finish; a stream that
    // never ends (a health Watch) must not keep the process up for good.
    let grace = Duration::from_secs(config.shutdown_grace_seconds);
    tokio::select! {
        served = serving => served?,
        forced = async {
            if drain_started.await.is_ok() {
                tokio::select! {
                    () = tokio::time::sleep(grace) => false,
                    () = force => true,
                }
            } else {
                std::future::pending().await
            }
        } => {
            if forced {
                tracing::warn!("told to stop again while draining: stopping without the calls still open");
            } else {
                tracing::warn!(
                    grace_seconds = grace.as_secs(),
                    "calls still open after the shutdown grace: stopping without them"
                );
            }
        }
    }
    // The watch holds the store: it is gone before this returns, so the
    // store closes with the last call (a restart in the same process
    // reopens it).
    store_watch.0.abort();
    let _ = (&mut store_watch.0).await;
    tracing::info!("examcap stopped");
    Ok(())
}

/// A task stopped when its handle goes, on every way out of [`run_until`].
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How often [`watch_store`] looks.
const STORE_WATCH_INTERVAL: Duration = Duration::from_millis(250);

/// Keeps the store's part of the health status: NOT_SERVING for good once
/// the store has failed a write ([`SledStore::failure`]), since it takes no
/// more writes until the process restarts, which is what an orchestrator
/// does with a replica whose health says so; NOT_SERVING while a write has
/// run past the store's stall limit ([`SledStore::stalled`]: a disk that
/// stopped answering), SERVING again once it returns. Reads keep being
/// answered either way.
async fn watch_store(sled: Arc<SledStore>, status: Arc<Status>) {
    let mut stalled = false;
    loop {
        tokio::time::sleep(STORE_WATCH_INTERVAL).await;
        if let Some(why) = sled.failure() {
            tracing::error!(
                error = why,
                "the store failed a write: every service is NOT_SERVING and writes are \
                 refused (UNAVAILABLE) until examcap restarts"
            );
            status.update(|down| down.store_failed = true).await;
            return;
        }
        let age = sled.stalled();
        let now = age.is_some();
        if now == stalled {
            continue;
        }
        stalled = now;
        match age {
            Some(age) => tracing::error!(
                seconds = age.as_secs_f64(),
                "a store write has not returned (the data directory's disk may have stopped \
                 answering): every service is NOT_SERVING until it does"
            ),
            None => tracing::warn!("the stalled store write returned: SERVING again"),
        }
        status.update(|down| down.write_stalled = now).await;
    }
}

/// The services whose health is reported: the overall `""` and examcap.v1's six.
const SERVICES: usize = 7;

/// Why the server is not serving; it is SERVING when none of these holds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Down {
    /// Told to stop: calls in flight finish, new ones should go elsewhere.
    draining: bool,
    /// The store failed a write and refuses every later one.
    store_failed: bool,
    /// A store write has run longer than `store_stall_seconds`.
    write_stalled: bool,
}

impl Down {
    fn status(self) -> tonic_health::ServingStatus {
        if self.draining || self.store_failed || self.write_stalled {
            tonic_health::ServingStatus::NotServing
        } else {
            tonic_health::ServingStatus::Serving
        }
    }
}

/// The health status of every service, decided in one place from [`Down`]:
/// a stalled write that returns while the server drains must not turn it
/// SERVING again.
struct Status {
    health: tonic_health::server::HealthReporter,
    /// Every service, the overall `""` among them.
    services: [&'static str; SERVICES],
    down: tokio::sync::Mutex<Down>,
}

impl Status {
    /// Every one of `services` SERVING.
    async fn new(
        health: tonic_health::server::HealthReporter,
        services: [&'static str; SERVICES],
    ) -> Self {
        let status = Status {
            health,
            services,
            down: tokio::sync::Mutex::new(Down::default()),
        };
        status.set_all(Down::default().status()).await;
        status
    }

    /// Applies `change`, and sets every service's status if that changed it.
    async fn update(&self, change: impl FnOnce(&mut Down)) {
        let mut down = self.down.lock().await;
        let before = down.status();
        change(&mut down);
        if down.status() != before {
            self.set_all(down.status()).await;
        }
    }

    async fn set_all(&self, status: tonic_health::ServingStatus) {
        for name in self.services {
            self.health.set_service_status(name, status).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use tonic_health::pb::health_check_response::ServingStatus as Wire;
    use tonic_health::pb::health_server::Health;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::server::HealthService;

    const NAMES: [&str; SERVICES] = ["", "a", "b", "c", "d", "e", "f"];

    /// The status every service answers, if they all agree.
    async fn answered(health: &HealthService) -> Wire {
        let mut seen = BTreeSet::new();
        for service in NAMES {
            let request = tonic::Request::new(HealthCheckRequest {
                service: service.into(),
            });
            seen.insert(health.check(request).await.unwrap().into_inner().status);
        }
        assert_eq!(seen.len(), 1, "the services disagree: {seen:?}");
        Wire::try_from(seen.into_iter().next().unwrap()).unwrap()
    }

    /// Polls until every service answers `want`, for at most 5 s.
    async fn until(health: &HealthService, want: Wire) {
        let start = std::time::Instant::now();
        while answered(health).await != want {
            assert!(start.elapsed() < Duration::from_secs(5), "never {want:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A store write that runs past the stall limit turns every service
    /// NOT_SERVING, and SERVING again once it returns; a younger one does
    /// not; one that returns while the server drains leaves it
    /// NOT_SERVING.
    #[tokio::test]
    async fn a_stalled_store_write_turns_health_not_serving_until_it_returns() {
        let dir = tempfile::tempdir().unwrap();
        let sled = Arc::new(SledStore::open(dir.path()).unwrap());
        let stall_after = Duration::from_millis(600);
        sled.set_stall_limit(stall_after);
        let (reporter, _) = tonic_health::server::health_reporter();
        let health = HealthService::from_health_reporter(reporter.clone());
        let status = Arc::new(Status::new(reporter, NAMES).await);
        let _watch = AbortOnDrop(tokio::spawn(watch_store(sled.clone(), status.clone())));
        assert_eq!(answered(&health).await, Wire::Serving);

        // Younger than the limit: still serving after two looks.
        let write = sled.start_write();
        tokio::time::sleep(2 * STORE_WATCH_INTERVAL).await;
        assert!(sled.oldest_write().unwrap() < stall_after);
        assert_eq!(answered(&health).await, Wire::Serving);
        until(&health, Wire::NotServing).await;
        assert!(sled.oldest_write().unwrap() >= stall_after);
        drop(write);
        until(&health, Wire::Serving).await;

        // Stalled again, then drained: the returning write changes nothing.
        let write = sled.start_write();
        until(&health, Wire::NotServing).await;
        status.update(|down| down.draining = true).await;
        drop(write);
        tokio::time::sleep(3 * STORE_WATCH_INTERVAL).await;
        assert_eq!(answered(&health).await, Wire::NotServing);
    }
}
