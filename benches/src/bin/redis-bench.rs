//! Flipbook on Redis against Redis itself and against the gRPC floor, measured in the same run.
//!
//! `cargo run --release -p flipbook-benches --bin redis-bench -- --url redis://…` (default:
//! $FLIPBOOK_TEST_REDIS_URL; `--smoke` for a quick run that only proves it works).
//!
//! Redis appends in tens of microseconds, so on a 2-core machine gRPC itself is the limit: the
//! target compares Flipbook with a minimal tonic service answering the same `Append` messages
//! at once, at the same concurrency. The raw Redis figure (one Lua script per append that checks
//! the version, takes the positions and stores the events, over the redis crate's multiplexed
//! connection) shows what the backend alone does. Reads of a 10,000-event state compare with
//! the raw commands (`LRANGE` the state's positions, `HMGET` the events a page at a time, bytes
//! not decoded).

use flipbook_benches::{
    Args, BackendSizes as Sizes, ChildServer, PAYLOAD, Target, child_main, client, fill_state, grpc_appends,
    grpc_reads, median, rate, report,
};
use flipbook_storage::redis::{RedisConfig, RedisEventStore};
use redis::aio::MultiplexedConnection;

/// The raw append: the version check, the positions and the writes in one script.
const RAW_APPEND: &str = r"
local last = tonumber(redis.call('HGET', KEYS[1], 'last_seq') or '0')
if last ~= tonumber(ARGV[1]) then return redis.error_reply('version conflict') end
local n = #ARGV - 1
local position = redis.call('INCRBY', KEYS[3], n)
for i = 1, n do
  redis.call('HSET', KEYS[4], position - n + i, ARGV[1 + i])
  redis.call('RPUSH', KEYS[2], position - n + i)
end
redis.call('HSET', KEYS[1], 'last_seq', last + n)
return position
";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Some(child) = child_main().await {
        return child;
    }
    let args = Args::from_env(&["appends", "reads"], &["--url URL"]);
    let smoke = args.smoke();
    let url = args.url("FLIPBOOK_TEST_REDIS_URL")?;
    let sizes = if smoke {
        Sizes { appends_per_client: 8, read_events: 1_000, read_rounds: 2, repeats: 1 }
    } else {
        Sizes { appends_per_client: 400, read_events: 10_000, read_rounds: 10, repeats: 3 }
    };
    println!("Redis benchmark ({} mode)", if smoke { "smoke" } else { "full" });
    let redis_client = redis::Client::open(url.as_str())?;
    let server = ChildServer::redis(&url).await?;
    let echo = ChildServer::echo().await?;

    let mut met = true;
    if args.runs("appends") {
        for (clients, batch) in [(1, 1), (1, 10), (16, 1), (16, 10)] {
            let total = sizes.appends_per_client * clients * if clients == 1 { 4 } else { 1 };
            let (mut raw, mut floor, mut flipbook) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..sizes.repeats {
                raw.push(raw_appends(&redis_client, clients, batch, total).await?);
                floor.push(grpc_appends(echo.addr, clients, batch, total).await?);
                flipbook.push(grpc_appends(server.addr, clients, batch, total).await?);
            }
            let what = format!("append {batch} event(s), {clients} client(s)");
            let flipbook = median(flipbook);
            met &= report(&what, "appends/s", flipbook, "tonic echo", median(floor), Target::AtLeast(0.8));
            report("  (against Redis alone)", "appends/s", flipbook, "redis", median(raw), Target::None);
        }
    }
    if args.runs("reads") {
        let state = format!("bench-read-{}", uuid::Uuid::new_v4().simple());
        let store = RedisEventStore::open(&RedisConfig::new(&url)).await?;
        fill_state(&store, &state, sizes.read_events).await?;
        let mut conn = redis_client.get_multiplexed_async_connection().await?;
        let mut grpc = client(server.addr).await?;
        let (mut baseline, mut flipbook) = (Vec::new(), Vec::new());
        // One read from each side at a time, alternating: this machine's speed swings by a
        // third from one second to the next, and both sides then see the swings alike.
        for _ in 0..sizes.repeats as u64 * sizes.read_rounds {
            baseline.push(
                rate(sizes.read_events, || async {
                    let count = raw_read(&mut conn, &state).await?;
                    anyhow::ensure!(count == sizes.read_events, "read {count} events");
                    Ok(())
                })
                .await?,
            );
            flipbook.push(grpc_reads(&mut grpc, &state, sizes.read_events, 1).await?);
        }
        met &= report(
            &format!("read a {}-event state", sizes.read_events),
            "events/s",
            median(flipbook),
            "redis",
            median(baseline),
            Target::AtLeast(0.9),
        );
    }
    server.stop().await?;
    echo.stop().await?;
    if !met && !smoke {
        println!("some targets were missed");
    }
    Ok(())
}

/// The same appends on Redis directly: one script call per append, a connection per client.
async fn raw_appends(redis: &redis::Client, clients: u64, batch: u64, total: u64) -> anyhow::Result<f64> {
    let prefix = uuid::Uuid::new_v4().simple().to_string();
    let script = redis::Script::new(RAW_APPEND);
    let mut connections = Vec::new();
    for _ in 0..clients {
        connections.push(redis.get_multiplexed_async_connection().await?);
    }
    rate(total, || async {
        let mut tasks = Vec::new();
        for (n, mut conn) in connections.into_iter().enumerate() {
            let script = script.clone();
            let state = format!("{prefix}-{n}");
            tasks.push(tokio::spawn(async move {
                for version in 0..total / clients {
                    let mut call = script.key(format!("raw:{{{state}}}:head"));
                    call.key(format!("raw:{{{state}}}:seq")).key("raw:position").key("raw:events");
                    call.arg(version * batch);
                    for _ in 0..batch {
                        call.arg(PAYLOAD);
                    }
                    let _: i64 = call.invoke_async(&mut conn).await?;
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

/// A state's events the raw way: its positions, then the events a page of 1,000 at a time.
async fn raw_read(conn: &mut MultiplexedConnection, state: &str) -> anyhow::Result<u64> {
    let positions: Vec<u64> =
        redis::cmd("LRANGE").arg(format!("flipbook:{{{state}}}:seq")).arg(0).arg(-1).query_async(conn).await?;
    let mut count = 0;
    for page in positions.chunks(1000) {
        let events: Vec<Vec<u8>> = redis::cmd("HMGET").arg("flipbook:events").arg(page).query_async(conn).await?;
        count += events.iter().filter(|e| !e.is_empty()).count() as u64;
    }
    Ok(count)
}
