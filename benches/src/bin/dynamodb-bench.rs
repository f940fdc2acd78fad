//! Flipbook on DynamoDB against the same appends and reads done with the AWS SDK directly,
//! measured in the same run.
//!
//! `cargo run --release -p flipbook-benches --bin dynamodb-bench -- --url http://127.0.0.1:58000`
//! (default: $FLIPBOOK_TEST_DYNAMODB_URL; `--url aws` for AWS itself, with `--region`, default
//! $FLIPBOOK_TEST_DYNAMODB_REGION or us-east-1; `--smoke` for a quick run that only proves it
//! works). Both sides use one fresh table (the server creates it; on AWS, delete it afterwards).
//!
//! The raw append is the least an application writing events to DynamoDB itself would do for an
//! atomic, version-checked, idempotent append: one `TransactWriteItems` with the head updated on
//! the condition that it holds the version the client tracks, one item per event, and one guard
//! per event id that must not exist yet. Flipbook also gives global positions (a counter every
//! transaction moves) and writes the events a second time under their position partition, and
//! it groups the appends waiting in a server into one transaction. Target: at least 0.8 of the raw
//! append rate. Reads of a 10,000-event state compare with a consistent `Query` of the raw
//! items, page by page (target: at least 0.9; Flipbook's layout, 64 events to an item, makes it
//! far more: see `benches/README.md`).
//!
//! On moto (the tests' emulator, one request at a time) the figures say little about AWS: every
//! request waits for the one before, whichever client sent it.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use flipbook_benches::{
    Args, BackendSizes as Sizes, ChildServer, PAYLOAD, Target, child_main, client, fill_state, grpc_appends,
    grpc_reads, median, rate, report,
};
use flipbook_storage::dynamodb::{DynamoConfig, DynamoEventStore};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Some(child) = child_main().await {
        return child;
    }
    let args = Args::from_env(&["appends", "reads"], &["--url URL", "--region REGION"]);
    let smoke = args.smoke();
    let url = args.url("FLIPBOOK_TEST_DYNAMODB_URL")?;
    let region = args
        .value("--region")
        .or_else(|| std::env::var("FLIPBOOK_TEST_DYNAMODB_REGION").ok())
        .unwrap_or_else(|| "us-east-1".to_owned());
    let sizes = if smoke {
        Sizes { appends_per_client: 2, read_events: 256, read_rounds: 1, repeats: 1 }
    } else {
        Sizes { appends_per_client: 25, read_events: 10_000, read_rounds: 3, repeats: 3 }
    };
    println!("DynamoDB benchmark ({} mode), {url}", if smoke { "smoke" } else { "full" });
    let table = format!("flipbook-bench-{}", uuid::Uuid::new_v4().simple());
    let server = ChildServer::dynamodb(&url, &region, &table).await?;
    let sdk = sdk_client(&url, &region).await;

    let mut met = true;
    if args.runs("appends") {
        for (clients, batch) in [(1, 1), (1, 10), (16, 1), (16, 10)] {
            let total = sizes.appends_per_client * clients * if clients == 1 { 4 } else { 1 };
            let (mut raw, mut flipbook) = (Vec::new(), Vec::new());
            for _ in 0..sizes.repeats {
                raw.push(raw_appends(&sdk, &table, clients, batch, total).await?);
                flipbook.push(grpc_appends(server.addr, clients, batch, total).await?);
            }
            met &= report(
                &format!("append {batch} event(s), {clients} client(s)"),
                "appends/s",
                median(flipbook),
                "aws sdk",
                median(raw),
                Target::AtLeast(0.8),
            );
        }
    }
    if args.runs("reads") {
        let state = format!("bench-read-{}", uuid::Uuid::new_v4().simple());
        let mut config = DynamoConfig::new(&table);
        config.endpoint_url = (url != "aws").then(|| url.clone());
        config.region = Some(region.clone());
        let store = DynamoEventStore::open(&config).await?;
        fill_state(&store, &state, sizes.read_events).await?;
        let raw_state = format!("raw-read-{}", uuid::Uuid::new_v4().simple());
        for version in (0..sizes.read_events).step_by(25) {
            raw_append(&sdk, &table, &raw_state, version, 25.min(sizes.read_events - version)).await?;
        }
        let mut grpc = client(server.addr).await?;
        let (mut baseline, mut flipbook) = (Vec::new(), Vec::new());
        for _ in 0..sizes.repeats {
            baseline.push(
                rate(sizes.read_events * sizes.read_rounds, || async {
                    for _ in 0..sizes.read_rounds {
                        let count = raw_read(&sdk, &table, &raw_state).await?;
                        anyhow::ensure!(count == sizes.read_events, "read {count} events");
                    }
                    Ok(())
                })
                .await?,
            );
            flipbook.push(grpc_reads(&mut grpc, &state, sizes.read_events, sizes.read_rounds).await?);
        }
        met &= report(
            &format!("read a {}-event state", sizes.read_events),
            "events/s",
            median(flipbook),
            "aws sdk",
            median(baseline),
            Target::AtLeast(0.9),
        );
    }
    server.stop().await?;
    if !met && !smoke {
        println!("some targets were missed");
    }
    Ok(())
}

/// A client of the SDK itself, configured as Flipbook's (endpoint, region, HTTPS client).
async fn sdk_client(url: &str, region: &str) -> Client {
    let mut config = DynamoConfig::new("unused");
    config.endpoint_url = (url != "aws").then(|| url.to_owned());
    config.region = Some(region.to_owned());
    Client::new(&config.sdk_config().await)
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// One raw append: the head moved on the condition that it holds `version`, one item per event,
/// and one guard item per event id on the condition that it does not exist yet (a unique event
/// id per state, as Flipbook's guards and the PostgreSQL bench's raw side keep).
async fn raw_append(sdk: &Client, table: &str, state: &str, version: u64, batch: u64) -> anyhow::Result<()> {
    let pk = format!("raw#{state}");
    let mut head = Update::builder()
        .table_name(table)
        .key("pk", s(&pk))
        .key("sk", n(0))
        .update_expression("SET last_seq = :new")
        .expression_attribute_values(":new", n(version + batch));
    head = if version == 0 {
        head.condition_expression("attribute_not_exists(pk)")
    } else {
        head.condition_expression("last_seq = :seen").expression_attribute_values(":seen", n(version))
    };
    let recorded_at = n(std::time::UNIX_EPOCH.elapsed()?.as_secs());
    let mut items = vec![TransactWriteItem::builder().update(head.build()?).build()];
    for seq in version + 1..=version + batch {
        let id = uuid::Uuid::new_v4().to_string();
        let guard = Put::builder()
            .table_name(table)
            .item("pk", s(format!("{pk}#{id}")))
            .item("sk", n(0))
            .item("seq", n(seq))
            .condition_expression("attribute_not_exists(pk)")
            .build()?;
        let event = Put::builder()
            .table_name(table)
            .item("pk", s(&pk))
            .item("sk", n(seq))
            .item("id", s(id))
            .item("name", s("Deposited"))
            .item("payload", AttributeValue::B(PAYLOAD.to_vec().into()))
            .item("ct", s("application/json"))
            .item("at", recorded_at.clone())
            .build()?;
        items.push(TransactWriteItem::builder().put(event).build());
        items.push(TransactWriteItem::builder().put(guard).build());
    }
    sdk.transact_write_items().set_transact_items(Some(items)).send().await?;
    Ok(())
}

/// The raw appends: `clients` tasks, a state each, each tracking its version.
async fn raw_appends(sdk: &Client, table: &str, clients: u64, batch: u64, total: u64) -> anyhow::Result<f64> {
    let prefix = uuid::Uuid::new_v4().simple().to_string();
    rate(total, || async {
        let mut tasks = Vec::new();
        for n in 0..clients {
            let (sdk, table, state) = (sdk.clone(), table.to_owned(), format!("{prefix}-{n}"));
            tasks.push(tokio::spawn(async move {
                for i in 0..total / clients {
                    raw_append(&sdk, &table, &state, i * batch, batch).await?;
                }
                anyhow::Ok(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        Ok(())
    })
    .await
}

/// A raw state's events: a consistent `Query` of its items, a page (1 MB) at a time.
async fn raw_read(sdk: &Client, table: &str, state: &str) -> anyhow::Result<u64> {
    let mut count = 0;
    let mut start = None;
    loop {
        let out = sdk
            .query()
            .table_name(table)
            .key_condition_expression("pk = :pk AND sk > :zero")
            .expression_attribute_values(":pk", s(format!("raw#{state}")))
            .expression_attribute_values(":zero", n(0))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await?;
        count += out.items().iter().filter(|item| item.contains_key("payload")).count() as u64;
        match out.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return Ok(count),
        }
    }
}
