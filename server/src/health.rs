//! The gRPC health service (`grpc.health.v1.Health`), for load balancers and Kubernetes:
//!
//! - **Liveness**: the server-wide status (service `""`) is SERVING for as long as the process
//!   serves at all. Restarting a server does not bring a backend back, so liveness never
//!   follows the backends.
//! - **Readiness**: `flipbook.v1.EventStore` and `flipbook.v1.EventBus` are SERVING while the
//!   event store answers its probes, `flipbook.v1.SnapshotStore` while the snapshot store does
//!   (`flipbook.v1.ServerInfo` always); NOT_SERVING while it does not, and from the start of a
//!   shutdown. Calls that need an unreachable store answer UNAVAILABLE at once meanwhile.

use flipbook_proto::server::{event_bus_server, event_store_server, server_info_server, snapshot_store_server};
use flipbook_storage::engine::Reach;
use tokio::sync::watch;
use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::service::Flipbook;

const EVENTS: [&str; 2] =
    [<event_store_server::EventStoreServer<Flipbook>>::NAME, <event_bus_server::EventBusServer<Flipbook>>::NAME];
const SNAPSHOTS: &str = <snapshot_store_server::SnapshotStoreServer<Flipbook>>::NAME;
const INFO: &str = <server_info_server::ServerInfoServer<Flipbook>>::NAME;

fn status(serving: bool) -> ServingStatus {
    if serving { ServingStatus::Serving } else { ServingStatus::NotServing }
}

/// Keeps the readiness of the API's services in step with what the probes find, and logs each
/// change; returns when the engine is gone.
pub async fn follow(reporter: HealthReporter, mut reach: watch::Receiver<Reach>) {
    reporter.set_service_status(INFO, ServingStatus::Serving).await;
    let mut last: Option<Reach> = None;
    loop {
        let now = reach.borrow_and_update().clone();
        for name in EVENTS {
            reporter.set_service_status(name, status(now.events.is_none())).await;
        }
        reporter.set_service_status(SNAPSHOTS, status(now.snapshots.is_none())).await;
        crate::metrics::record_reachable("events", now.events.is_none());
        crate::metrics::record_reachable("snapshots", now.snapshots.is_none());
        if let Some(last) = &last {
            log_change("event store", &last.events, &now.events);
            log_change("snapshot store", &last.snapshots, &now.snapshots);
        }
        last = Some(now);
        if reach.changed().await.is_err() {
            return;
        }
    }
}

fn log_change(store: &str, was: &Option<String>, now: &Option<String>) {
    match (was, now) {
        (None, Some(why)) => tracing::warn!(store, why, "unreachable: calls that need it answer UNAVAILABLE"),
        (Some(_), None) => tracing::info!(store, "reachable again"),
        _ => {}
    }
}

/// Every API service NOT_SERVING: a shutdown has begun.
pub async fn shutting_down(reporter: &HealthReporter) {
    for name in EVENTS.into_iter().chain([SNAPSHOTS, INFO]) {
        reporter.set_service_status(name, ServingStatus::NotServing).await;
    }
}
