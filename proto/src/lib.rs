//! The `flipbook.v1` gRPC API, generated from `proto/flipbook/v1/flipbook.proto`, and its one
//! mapping to the domain model ([`convert`]) and to errors ([`status`]), shared by the server and
//! every client.

pub mod convert;
pub mod status;

#[allow(missing_debug_implementations, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("flipbook.v1");

    /// The encoded file descriptor set, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("flipbook_descriptor");
}
