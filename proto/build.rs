use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // protoc and the well-known types come from a crate, never from the machine, so a fresh
    // clone builds anywhere.
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    let well_known = protoc_bin_vendored::include_path()?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("flipbook_descriptor.bin"))
        .compile_with_config(
            config,
            &[PathBuf::from("flipbook/v1/flipbook.proto")],
            &[PathBuf::from("."), well_known],
        )?;
    Ok(())
}
