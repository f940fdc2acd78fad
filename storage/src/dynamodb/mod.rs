//! AWS DynamoDB: events and snapshots in one table (`pk` string, `sk` number), through
//! aws-sdk-dynamodb. See `docs/backends/dynamodb.md` for the design and what each guarantee
//! rests on.
//!
//! | item | `pk` | `sk` | holds |
//! | --- | --- | --- | --- |
//! | position counter | `position` | 0 | `last`: the last global position given out |
//! | state head | `s#<state>` | 0 | kind, last_seq, last position, recorded-at times, metadata |
//! | state chunk | `s#<state>` | last seq in it | the events of (part of) one append, encoded |
//! | position chunk | `p#<last position / 1024>` | last position in it | the same chunk, for read-all |
//! | event-id guard | `e#<state>#<event id>` | 0 | `seq`: where that event id is stored |
//! | snapshot revisions | `r#<state>` | 0 | `revs`: the state's reducer revisions with snapshots |
//! | snapshot | `n#<state>\n<revision>` | version | payload, content type, created at |
//!
//! Appends are written by one task per store (`writer.rs`), which takes the appends waiting and
//! writes them in one `TransactWriteItems`: the counter once (conditioned on the value it last
//! saw, advanced by the group's events), then per append (per part of an append to several
//! states) the head (conditioned on the last sequence number seen), the chunks, and one guard
//! per event (conditioned on not existing). All parts of an append go in one transaction.
//! Positions are therefore assigned atomically with the appends, and transactions serialize on
//! the counter, so every position up to the counter is written. The counter and heads it saw
//! last spare it reads; a stale one only fails its condition, which returns the item as it is.

mod codec;
mod events;
mod snapshots;
mod writer;

use std::collections::HashMap;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::Region;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
};

pub use crate::DynamoConfig;
pub use events::DynamoEventStore;
pub use snapshots::DynamoSnapshotStore;

use flipbook_model::{Error, Result};

impl DynamoConfig {
    /// The SDK's configuration: the endpoint, region and timeouts configured, credentials from
    /// the standard AWS chain (environment, profile, container or instance role), and an HTTPS
    /// client on rustls with ring, the one crypto provider the rest of Flipbook uses.
    pub async fn sdk_config(&self) -> SdkConfig {
        use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
        let http =
            aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(self.connect_timeout)
                    .operation_attempt_timeout(self.attempt_timeout)
                    .operation_timeout(self.operation_timeout())
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(3));
        if let Some(region) = &self.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url.clone());
        }
        loader.load().await
    }

    async fn client(&self) -> Client {
        Client::new(&self.sdk_config().await)
    }
}

/// The table and a client, shared by the event and snapshot stores.
#[derive(Clone, Debug)]
struct Table {
    client: Client,
    name: String,
}

impl Table {
    async fn open(config: &DynamoConfig) -> Result<Self> {
        let table = Self { client: config.client().await, name: config.table.clone() };
        table.ensure(config.create_table).await?;
        Ok(table)
    }

    /// A store's `ping`: an eventually consistent read of a key nothing writes (half a read
    /// unit a probe). Any answer of the service, even a refusal (throttling), means it is
    /// reachable; only a request that got no answer (no connection, a timeout) fails.
    async fn ping(&self) -> Result<()> {
        let read = self.client.get_item().table_name(&self.name).set_key(Some(key("ping", 0))).send().await;
        match read {
            Ok(_) | Err(SdkError::ServiceError(_) | SdkError::ResponseError(_)) => Ok(()),
            Err(error) => Err(sdk_error(error)),
        }
    }

    /// Waits until the table is active, creating it first when it is missing and allowed.
    async fn ensure(&self, create: bool) -> Result<()> {
        for _ in 0..120 {
            match self.client.describe_table().table_name(&self.name).send().await {
                Ok(out) => {
                    let status = out.table().and_then(|t| t.table_status());
                    if matches!(status, Some(TableStatus::Active) | None) {
                        return Ok(());
                    }
                }
                Err(e) if e.code() == Some("ResourceNotFoundException") => {
                    if !create {
                        return Err(Error::Internal(format!(
                            "the DynamoDB table {:?} does not exist (run `flipbook migrate`)",
                            self.name
                        )));
                    }
                    self.create().await?;
                }
                Err(e) => return Err(sdk_error(e)),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(Error::Unavailable(format!("the DynamoDB table {:?} did not become active", self.name)))
    }

    async fn create(&self) -> Result<()> {
        let attribute = |name: &str, kind| {
            AttributeDefinition::builder().attribute_name(name).attribute_type(kind).build().map_err(build_error)
        };
        let key = |name: &str, kind| {
            KeySchemaElement::builder().attribute_name(name).key_type(kind).build().map_err(build_error)
        };
        let created = self
            .client
            .create_table()
            .table_name(&self.name)
            .attribute_definitions(attribute("pk", ScalarAttributeType::S)?)
            .attribute_definitions(attribute("sk", ScalarAttributeType::N)?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            // Another server created it meanwhile.
            Err(e) if e.code() == Some("ResourceInUseException") => Ok(()),
            Err(e) => Err(sdk_error(e)),
        }
    }
}

type Item = HashMap<String, AttributeValue>;

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn key(pk: impl Into<String>, sk: u64) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), n(sk))])
}

fn corrupt(what: &str) -> Error {
    Error::Internal(format!("a corrupt {what} item in DynamoDB"))
}

fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Result<T> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().map_err(|_| corrupt(name)),
        _ => Err(corrupt(name)),
    }
}

fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(corrupt(name)),
    }
}

fn get_b<'a>(item: &'a Item, name: &str) -> Result<&'a [u8]> {
    match item.get(name) {
        Some(AttributeValue::B(v)) => Ok(v.as_ref()),
        _ => Err(corrupt(name)),
    }
}

fn build_error(error: aws_sdk_dynamodb::error::BuildError) -> Error {
    Error::Internal(format!("building a DynamoDB request: {error}"))
}

/// What DynamoDB's throttling and server errors say can pass; what its validation says cannot.
fn sdk_error<E, R>(error: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let message = DisplayErrorContext(&error).to_string();
    let transient = match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(e) => matches!(
            e.err().code(),
            Some(
                "ProvisionedThroughputExceededException"
                    | "RequestLimitExceeded"
                    | "ThrottlingException"
                    | "InternalServerError"
                    | "ServiceUnavailable"
                    | "TransactionInProgressException"
            )
        ),
        _ => false,
    };
    if transient { Error::Unavailable(message) } else { Error::Internal(message) }
}
