//! The storage contract end to end: the same test kit, through the real server's gRPC API.

mod common;

use common::{grpc_events, grpc_snapshots};

flipbook_storage::event_store_contract!(grpc_events());

mod snapshots {
    use super::*;
    flipbook_storage::snapshot_store_contract!(grpc_snapshots());
}
