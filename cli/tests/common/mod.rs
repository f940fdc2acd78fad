//! What the binary's tests share: fresh files, and the services `scripts/test` starts.
#![allow(dead_code)]

use std::path::PathBuf;

/// A fresh database path in a directory that outlives the test's runtime.
pub fn fresh_db() -> PathBuf {
    tempfile::Builder::new().prefix("flipbook-cli-").tempdir().expect("temp dir").keep().join("flipbook.db")
}

/// The PostgreSQL database the tests use (scripts/test starts one).
pub fn postgres_url() -> String {
    std::env::var("FLIPBOOK_TEST_POSTGRES_URL")
        .expect("FLIPBOOK_TEST_POSTGRES_URL must name a PostgreSQL database (scripts/test starts one)")
}
