//! The committed header is what cbindgen generates from the sources: CI fails when it drifts.

#[test]
fn the_committed_header_is_what_cbindgen_generates() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let config = cbindgen::Config::from_file(format!("{dir}/cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    let path = format!("{dir}/include/flipbook.h");
    if std::env::var_os("FLIPBOOK_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).expect("write the header");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "bindings/c/include/flipbook.h is not what cbindgen generates from src/: \
         FLIPBOOK_UPDATE_HEADER=1 cargo test -p flipbook-c --test header, and commit it"
    );
}
