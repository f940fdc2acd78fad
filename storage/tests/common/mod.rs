//! What the DynamoDB test binaries share.

use flipbook_storage::dynamodb::DynamoConfig;

pub fn config() -> DynamoConfig {
    let url = std::env::var("FLIPBOOK_TEST_DYNAMODB_URL")
        .unwrap_or_else(|_| panic!("FLIPBOOK_TEST_DYNAMODB_URL must be set (scripts/test starts moto)"));
    // A table per case on the emulator, where tables cost nothing: cases then neither share
    // global positions (a subscription from "now" sees only its own case's appends) nor scan
    // each other's events when they read everything from the beginning.
    let table = std::env::var("FLIPBOOK_TEST_DYNAMODB_TABLE")
        .unwrap_or_else(|_| format!("flipbook-test-{}", uuid::Uuid::new_v4().simple()));
    let mut config = DynamoConfig::new(table);
    config.endpoint_url = (url != "aws").then_some(url);
    config.region = Some(std::env::var("FLIPBOOK_TEST_DYNAMODB_REGION").unwrap_or_else(|_| "us-east-1".to_owned()));
    config
}
