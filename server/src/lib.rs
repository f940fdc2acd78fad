//! The Flipbook server: the `flipbook.v1` gRPC API over the configured stores, with health,
//! reflection, metrics, structured logs and graceful shutdown.
//!
//! [`start`] runs a server in the current process (the binary, tests and benchmarks use it);
//! [`Running::stop`] shuts it down gracefully: the listener closes, calls in flight finish,
//! appends already queued are committed, then the stores close.

mod backends;
pub mod config;
mod health;
mod metrics;
mod oversize;
pub mod service;
pub mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use flipbook_proto::server::{event_bus_server, event_store_server, server_info_server, snapshot_store_server};
use flipbook_proto::status::unauthenticated;
use flipbook_proto::v1;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Identity, Server, ServerTlsConfig};

pub use crate::config::Config;
use flipbook_model::Limits;
use flipbook_storage::engine::Engine;

use crate::oversize::Oversize;
use crate::service::Flipbook;

/// A server running in this process.
#[derive(Debug)]
pub struct Running {
    /// The gRPC address it listens on (with the real port when configured with port 0).
    pub addr: SocketAddr,
    /// The `/metrics` address, if enabled.
    pub metrics_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Graceful shutdown: stop accepting, let in-flight calls finish (up to the grace period),
    /// then close the stores.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        self.task.await.context("the server task panicked")?
    }

    /// Waits until the server ends by itself (it does not, unless it fails).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("the server task panicked")?
    }

    /// A handle that triggers the same shutdown as [`Running::stop`].
    pub fn shutdown_trigger(&self) -> impl FnOnce() + Send + 'static {
        let sender = self.shutdown.clone();
        move || {
            let _ = sender.send(true);
        }
    }
}

/// Creates or upgrades the configured stores' schemas (tables, indexes) and closes them: what
/// `flipbook migrate` does before servers start. Serving does the same at start, so this is
/// for operators who run schema changes as a step of their own. Answers the backends' names.
pub async fn migrate(config: &Config) -> anyhow::Result<(&'static str, &'static str)> {
    let (events, snapshots) = backends::open(config).await?;
    // Released before it returns: an embedded file's writer thread and connections would
    // otherwise hold it open for a moment after the stores are dropped.
    events.close().await;
    snapshots.close().await;
    Ok((events.backend(), snapshots.backend()))
}

/// Opens the stores, binds the listeners and serves in a background task.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let (events, snapshots) = backends::open(&config).await?;
    let engine = Engine::new(events, snapshots, Limits::from(&config.limits), (&config.subscriptions).into());
    let info = engine.info();
    let flipbook = Flipbook(engine);

    let listener = TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let (shutdown, stopped) = watch::channel(false);

    let metrics_addr = match config.metrics_listen {
        Some(metrics) => Some(crate::metrics::serve(metrics, stop_requested(shutdown.subscribe())).await?),
        None => None,
    };

    let (health, health_service) = tonic_health::server::health_reporter();
    let probe = tokio::spawn(flipbook.0.watch_backends((&config.health).into()));
    let readiness = tokio::spawn(crate::health::follow(health.clone(), flipbook.0.reach()));
    // Reflection in both versions: grpcurl and older tools still ask v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().context("building the reflection service")?;
    let reflection_v1alpha = reflection().build_v1alpha().context("building the reflection service")?;

    let max_request = usize::try_from(info.limits.max_request_bytes).unwrap_or(usize::MAX);
    let auth = BearerAuth::new(config.auth.accepted()?);
    let authenticated = !auth.accepted.is_empty();
    let mut builder =
        Server::builder().timeout(config.request_timeout).http2_keepalive_interval(Some(Duration::from_secs(30)));
    if let Some(tls) = tls_config(&config.tls)? {
        builder = builder.tls_config(tls).context("configuring TLS")?;
    }
    let router = builder
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        // Every service decodes up to the advertised max_request_bytes, not tonic's 4 MiB.
        .add_service(api(
            event_store_server::EventStoreServer::new(flipbook.clone()).max_decoding_message_size(max_request),
            &auth,
            &info.limits,
        ))
        .add_service(api(
            snapshot_store_server::SnapshotStoreServer::new(flipbook.clone()).max_decoding_message_size(max_request),
            &auth,
            &info.limits,
        ))
        .add_service(api(
            event_bus_server::EventBusServer::new(flipbook.clone()).max_decoding_message_size(max_request),
            &auth,
            &info.limits,
        ))
        .add_service(api(
            server_info_server::ServerInfoServer::new(flipbook.clone()).max_decoding_message_size(max_request),
            &auth,
            &info.limits,
        ));

    tracing::info!(
        %addr,
        tls = config.tls.cert.is_some(),
        auth = authenticated,
        metrics = metrics_addr.map_or_else(|| "off".to_owned(), |addr| addr.to_string()),
        events = info.event_backend,
        snapshots = info.snapshot_backend,
        durable = info.durable,
        "flipbook serving"
    );
    let grace = config.shutdown_grace;
    let task = tokio::spawn(async move {
        let stop_signal = {
            let receiver = stopped.clone();
            let engine = flipbook.0.clone();
            async move {
                stop_requested(receiver).await;
                tracing::info!("shutting down: finishing calls in flight");
                readiness.abort();
                crate::health::shutting_down(&health).await;
                // Subscriptions never finish by themselves: end them, so subscribers resume on
                // another server while this one finishes its other calls.
                engine.close_subscriptions();
            }
        };
        // tonic applies its TCP settings only to listeners it binds itself: without NODELAY a
        // response's small frames wait for the client's delayed ACK (40 ms on Linux).
        let incoming = TcpListenerStream::new(listener).map(|stream| {
            if let Ok(stream) = &stream
                && let Err(error) = stream.set_nodelay(true)
            {
                tracing::debug!(%error, "TCP_NODELAY");
            }
            stream
        });
        let serve = router.serve_with_incoming_shutdown(incoming, stop_signal);
        tokio::pin!(serve);
        // Calls in flight get the grace period after the signal; then the server stops anyway.
        let result = tokio::select! {
            result = &mut serve => result,
            () = async {
                stop_requested(stopped).await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(?grace, "calls still in flight after the grace period; closing");
                Ok(())
            }
        };
        probe.abort();
        drop(flipbook);
        tracing::info!("flipbook stopped");
        result.context("serving gRPC")
    });
    Ok(Running { addr, metrics_addr, shutdown, task })
}

/// A service of the API as served: behind the bearer-token check, with a request over
/// `max_request_bytes` answered TOO_LARGE.
fn api<S>(service: S, auth: &BearerAuth, limits: &Limits) -> Oversize<InterceptedService<S, BearerAuth>> {
    Oversize::new(InterceptedService::new(service, auth.clone()), limits.max_request_bytes)
}

/// The TLS identity, when configured (the configuration checked that cert and key go together).
fn tls_config(tls: &crate::config::TlsConfig) -> anyhow::Result<Option<ServerTlsConfig>> {
    let (Some(cert), Some(key)) = (&tls.cert, &tls.key) else { return Ok(None) };
    let read = |path: &std::path::Path| std::fs::read(path).with_context(|| format!("reading {}", path.display()));
    Ok(Some(ServerTlsConfig::new().identity(Identity::from_pem(read(cert)?, read(key)?))))
}

/// Lets a call through when it carries one of the accepted bearer tokens (or none is
/// configured). Several are accepted at once so tokens can be rotated without downtime.
#[derive(Clone)]
struct BearerAuth {
    accepted: Arc<[String]>,
}

impl BearerAuth {
    fn new(accepted: Vec<String>) -> Self {
        Self { accepted: accepted.into() }
    }
}

/// The token of an `authorization` value: the scheme is matched without regard to case
/// (RFC 9110), the token exactly.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim_start())
}

impl Interceptor for BearerAuth {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if self.accepted.is_empty() {
            return Ok(request);
        }
        let sent = request.metadata().get("authorization").and_then(|v| v.to_str().ok());
        match sent.and_then(bearer_token) {
            // Every accepted token is compared, so the time taken does not tell which matched.
            Some(token)
                if self.accepted.iter().fold(false, |ok, t| same_secret(token.as_bytes(), t.as_bytes()) | ok) =>
            {
                Ok(request)
            }
            Some(_) => Err(unauthenticated("the bearer token is not this server's")),
            None => Err(unauthenticated("this server needs `authorization: Bearer <token>`")),
        }
    }
}

/// Compares in time that depends on the lengths only, not on where the bytes differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// Completes when a stop is requested. Dropping the [`Running`] handle detaches the server: it
/// keeps serving until the runtime ends.
async fn stop_requested(mut receiver: watch::Receiver<bool>) {
    if receiver.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}
