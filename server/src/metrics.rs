//! Prometheus metrics: what the server counts, and the `/metrics` endpoint.
//!
//! - `flipbook_requests_total{method, code}` and `flipbook_request_duration_seconds{method}`
//! - `flipbook_events_appended_total`
//! - `flipbook_version_conflicts_total`
//! - `flipbook_backend_errors_total{kind}` (`unavailable`, `read_only`, `storage_full` or
//!   `internal`)
//! - `flipbook_backend_reachable{store}` (`events`, `snapshots`): 1 while the store answers the
//!   server's probes, 0 while it does not (see `crate::health`)
//! - `flipbook_subscriptions` (open now) and `flipbook_events_delivered_total`

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use flipbook_model::Error;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

const DURATION_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The process-wide recorder; installed once, whatever number of servers a process runs.
fn handle() -> anyhow::Result<&'static PrometheusHandle> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle);
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("duration_seconds".to_owned()), DURATION_BUCKETS)
        .context("metric buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    Ok(HANDLE.get_or_init(|| handle))
}

/// Serves `GET /metrics` on `addr` until `shutdown` completes; answers the bound address.
pub async fn serve(
    addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<SocketAddr> {
    let handle = handle()?;
    let listener = TcpListener::bind(addr).await.with_context(|| format!("binding the metrics endpoint {addr}"))?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new().route("/metrics", axum::routing::get(move || async move { handle.render() }));
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
            tracing::error!(%error, "metrics endpoint failed");
        }
    });
    Ok(bound)
}

pub fn record_call(method: &'static str, elapsed: Duration, error: Option<&Error>) {
    let code = error.map_or_else(|| "Ok".to_owned(), code_name);
    metrics::counter!("flipbook_requests_total", "method" => method, "code" => code).increment(1);
    metrics::histogram!("flipbook_request_duration_seconds", "method" => method).record(elapsed.as_secs_f64());
    if let Some(error) = error {
        record_error(method, error);
    }
}

/// An error met while a read was already streaming.
pub fn record_stream_error(method: &'static str, error: &Error) {
    metrics::counter!("flipbook_stream_errors_total", "method" => method, "code" => code_name(error)).increment(1);
    record_error(method, error);
}

fn record_error(method: &'static str, error: &Error) {
    match error {
        Error::VersionConflict { .. } => metrics::counter!("flipbook_version_conflicts_total").increment(1),
        Error::Unavailable(message) => {
            tracing::warn!(method, %message, "backend unavailable");
            metrics::counter!("flipbook_backend_errors_total", "kind" => "unavailable").increment(1);
        }
        Error::ReadOnly(message) => {
            tracing::warn!(method, %message, "backend read-only");
            metrics::counter!("flipbook_backend_errors_total", "kind" => "read_only").increment(1);
        }
        Error::StorageFull(message) => {
            tracing::error!(method, %message, "backend storage full: nothing more can be stored until room is made");
            metrics::counter!("flipbook_backend_errors_total", "kind" => "storage_full").increment(1);
        }
        Error::Internal(message) => {
            tracing::error!(method, %message, "internal error");
            metrics::counter!("flipbook_backend_errors_total", "kind" => "internal").increment(1);
        }
        _ => {}
    }
}

/// Whether a store (`"events"`, `"snapshots"`) answers the probes.
pub fn record_reachable(store: &'static str, reachable: bool) {
    metrics::gauge!("flipbook_backend_reachable", "store" => store).set(if reachable { 1.0 } else { 0.0 });
}

pub fn record_appended(events: u64) {
    metrics::counter!("flipbook_events_appended_total").increment(events);
}

/// The gRPC code's name ("Aborted", "Unavailable"), from the one error mapping.
fn code_name(error: &Error) -> String {
    format!("{:?}", flipbook_proto::status::code_of(error))
}

/// One open subscription, counted while it lives.
pub struct Subscriber(());

impl Subscriber {
    pub fn new() -> Self {
        metrics::gauge!("flipbook_subscriptions").increment(1);
        Self(())
    }

    pub fn delivered(&self, events: usize) {
        metrics::counter!("flipbook_events_delivered_total").increment(events as u64);
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        metrics::gauge!("flipbook_subscriptions").decrement(1);
    }
}
