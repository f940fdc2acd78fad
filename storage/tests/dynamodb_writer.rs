//! The DynamoDB writer with DynamoDB paused: an append whose caller has gone before its
//! transaction was sent is never written. A test binary of its own, since it pauses the
//! emulator (`FLIPBOOK_DYNAMODB_STOP` / `FLIPBOOK_DYNAMODB_START`, exported by
//! scripts/services.sh), which would stall the tests running beside it.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use flipbook_model::{AppendRequest, Expectation, StateQuery};
use flipbook_storage::EventStore;
use flipbook_storage::dynamodb::DynamoEventStore;
use flipbook_storage::testkit::{events, read, unique_state};

/// Pauses and resumes the emulator with the commands scripts/services.sh exports.
struct Emulator {
    stop: String,
    start: String,
}

impl Emulator {
    fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| panic!("{name} must be set (scripts/test starts moto)"))
        };
        Self { stop: var("FLIPBOOK_DYNAMODB_STOP"), start: var("FLIPBOOK_DYNAMODB_START") }
    }

    fn run(command: &str) {
        let status = Command::new("sh").arg("-c").arg(command).status().expect("run a shell");
        assert!(status.success(), "{command}: {status}");
    }

    fn pause(&self) {
        Self::run(&self.stop);
    }

    fn resume(&self) {
        Self::run(&self.start);
    }
}

/// Resumes the emulator however the test ends.
struct Resume<'a>(&'a Emulator);

impl Drop for Resume<'_> {
    fn drop(&mut self) {
        let _ = Command::new("sh").arg("-c").arg(&self.0.start).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_whose_caller_has_gone_before_it_is_sent_is_not_written() {
    let emulator = Emulator::from_env();
    let store: Arc<dyn EventStore> = Arc::new(DynamoEventStore::open(&common::config()).await.expect("open DynamoDB"));
    let append = |state: &str, name: &str| AppendRequest::new(state, Expectation::NoState, events(name, 1));
    // The writer learns the counter, so each append below is one transaction.
    store.append(append(&unique_state("warm"), "W")).await.expect("warm-up append");

    emulator.pause();
    let _resume = Resume(&emulator);
    let (sent, abandoned) = (unique_state("sent"), unique_state("abandoned"));
    // `sent` goes out first and hangs on the paused emulator; `abandoned` waits behind it for
    // the next transaction, and its caller gives up meanwhile.
    let in_flight = tokio::spawn({
        let (store, request) = (Arc::clone(&store), append(&sent, "S"));
        async move { store.append(request).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let gave_up = tokio::time::timeout(Duration::from_millis(200), store.append(append(&abandoned, "A"))).await;
    assert!(gave_up.is_err(), "answered while DynamoDB is paused: {gave_up:?}");
    emulator.resume();

    in_flight.await.expect("join").expect("the append in flight is written once DynamoDB is back");
    // Queued after `abandoned`: once it is answered, the writer has passed `abandoned` by.
    store.append(append(&unique_state("after"), "F")).await.expect("a later append");
    assert_eq!(store.head(&abandoned).await.expect("head"), None, "an append nobody waited for was written");
    assert_eq!(read(&store, StateQuery::all(&sent)).await.len(), 1);
}
