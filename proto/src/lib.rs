//! The `flipbook.v1` gRPC API, generated from `proto/flipbook/v1/flipbook.proto`, and its one
//! mapping to the domain model ([`convert`]) and to errors ([`status`]), shared by the server and
//! every client.

pub mod convert;
pub mod encoded;
pub mod status;

#[allow(missing_debug_implementations, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("flipbook.v1");

    /// The encoded file descriptor set, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("flipbook_descriptor");
}

/// The event store's server as the Flipbook server runs it: the methods of
/// [`v1::event_store_server`], generated from the same descriptors, with `ReadState`'s events
/// sent as the store encoded them ([`encoded`]). Clients use [`v1::event_store_client`].
#[allow(missing_debug_implementations, clippy::all, clippy::pedantic)]
pub mod server {
    include!(concat!(env!("OUT_DIR"), "/flipbook.v1.EventStore.rs"));
}
