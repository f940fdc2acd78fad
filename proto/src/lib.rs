//! The `flipbook.v1` gRPC API, generated from `proto/flipbook/v1/flipbook.proto`, and its one
//! mapping to the domain model ([`convert`]) and to errors ([`status`]), shared by the server and
//! every client.

pub mod convert;
pub mod encoded;
pub mod request;
pub mod status;

#[allow(missing_debug_implementations, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("flipbook.v1");

    /// The encoded file descriptor set, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("flipbook_descriptor");
}

/// The servers as the Flipbook server runs them: the methods of [`v1`]'s servers, generated from
/// the same descriptors, with requests decoded by [`request`] (an undecodable one is
/// INVALID_ARGUMENT naming the field) and `ReadState`'s and `ReadAll`'s events sent as the store
/// encoded them ([`encoded`]). Clients use [`v1`]'s clients; [`v1`]'s servers are tonic's own.
#[allow(missing_debug_implementations, clippy::all, clippy::pedantic)]
pub mod server {
    include!(concat!(env!("OUT_DIR"), "/flipbook.v1.EventStore.rs"));
    include!(concat!(env!("OUT_DIR"), "/flipbook.v1.SnapshotStore.rs"));
    include!(concat!(env!("OUT_DIR"), "/flipbook.v1.EventBus.rs"));
    include!(concat!(env!("OUT_DIR"), "/flipbook.v1.ServerInfo.rs"));
}
