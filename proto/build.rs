use std::{env, fs, path::PathBuf};

use prost::Message;
use prost_types::FileDescriptorSet;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // protoc and the well-known types come from a crate, never from the machine, so a fresh
    // clone builds anywhere.
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // Maps as the domain holds them (ordered): converting is a move, and an encoding is the
    // same bytes every time (the stores keep events encoded with these messages).
    config.btree_map(["."]);
    let well_known = protoc_bin_vendored::include_path()?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let descriptors = out_dir.join("flipbook_descriptor.bin");
    tonic_prost_build::configure().file_descriptor_set_path(&descriptors).compile_with_config(
        config,
        &[PathBuf::from("flipbook/v1/flipbook.proto")],
        &[PathBuf::from("."), well_known],
    )?;
    let descriptors = FileDescriptorSet::decode(fs::read(&descriptors)?.as_slice())?;
    for service in ["EventStore", "SnapshotStore", "EventBus", "ServerInfo"] {
        server(&descriptors, service);
    }
    Ok(())
}

/// A service's server as the Flipbook server runs it: every method of the proto's service (read
/// from the descriptors, so the two cannot drift apart), with requests decoded by
/// `crate::request` (a request that does not decode is INVALID_ARGUMENT naming the field), and
/// the events of `ReadState` and `ReadAll` sent as the store encoded them (`crate::encoded`).
fn server(descriptors: &FileDescriptorSet, name: &str) {
    let service = descriptors
        .file
        .iter()
        .filter(|file| file.package() == "flipbook.v1")
        .flat_map(|file| &file.service)
        .find(|service| service.name() == name)
        .unwrap_or_else(|| panic!("flipbook.v1.{name}"));
    let mut builder = tonic_build::manual::Service::builder().name(name).package("flipbook.v1");
    for method in &service.method {
        let rust_type = |proto: &str| format!("crate::v1::{}", proto.trim_start_matches(".flipbook.v1."));
        let pre_encoded = name == "EventStore" && matches!(method.name(), "ReadState" | "ReadAll");
        let mut built = tonic_build::manual::Method::builder()
            .name(snake_case(method.name()))
            .route_name(method.name())
            .input_type(rust_type(method.input_type()))
            .output_type(if pre_encoded {
                "crate::encoded::Encoded".to_owned()
            } else {
                rust_type(method.output_type())
            })
            .codec_path(if pre_encoded { "crate::encoded::EncodedCodec" } else { "crate::request::RequestCodec" });
        if method.server_streaming() {
            built = built.server_streaming();
        }
        if method.client_streaming() {
            built = built.client_streaming();
        }
        builder = builder.method(built.build());
    }
    tonic_build::manual::Builder::new().build_client(false).compile(&[builder.build()]);
}

fn snake_case(name: &str) -> String {
    let mut snake = String::new();
    for (i, c) in name.char_indices() {
        if c.is_ascii_uppercase() && i > 0 {
            snake.push('_');
        }
        snake.push(c.to_ascii_lowercase());
    }
    snake
}
