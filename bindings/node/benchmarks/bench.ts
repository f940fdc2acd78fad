/**
 * Flipbook for Node.js against baselines measured in the same run.
 *
 * ```sh
 * node build/benchmarks/bench.js [--smoke]
 * ```
 *
 * Needs the `flipbook` server binary (FLIPBOOK_BIN, else the shared cargo target dir's release
 * build, else its debug one) and a PostgreSQL database (FLIPBOOK_TEST_POSTGRES_URL). Prints one
 * line per figure: Flipbook's rate, the baseline's, the ratio and the target.
 *
 * 1. Loading a 100,000-event state with a JS reducer through a server on SQLite, against the
 *    same `ReadState` and fold through a plain `@grpc/grpc-js` client loaded from
 *    `flipbook.proto` (what a Node user would write without the SDK). Target: at least 1.5x.
 * 2. Against Emmett (`@event-driven-io/emmett-postgresql`) on the same PostgreSQL, each used as
 *    its documentation shows: commands that load a wallet and append 1 event, and replays of a
 *    1,000-event wallet. Target: at least 2x each.
 * 3. Streaming a 1,000,000-event state through `readState`: the process's peak RSS. Target:
 *    under 150 MiB.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CommandHandler } from "@event-driven-io/emmett";
import { getPostgreSQLEventStore } from "@event-driven-io/emmett-postgresql";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { Client, type EventData, type Reducer } from "../src/index.js";
import { Server, serverBinary, tempDir } from "../test/support.js";

const smoke = process.argv.includes("--smoke");
const binary = serverBinary(["release", "debug"]);
const PAYLOAD = { account: "acc-0001", amount: 3, currency: "EUR", reference: "invoice 2026-11-27/0042" };
const proto = join(fileURLToPath(new URL(".", import.meta.url)), "..", "..", "..", "..", "proto", "flipbook", "v1");

function report(what: string, unit: string, ours: number, baselineName: string, baseline: number, target: number) {
  const ratio = ours / baseline;
  const met = ratio >= target;
  const rate = (n: number) => n.toFixed(0).padStart(12);
  console.log(
    `${what.padEnd(48)} flipbook ${rate(ours)} ${unit.padEnd(9)} ${baselineName} ${rate(baseline)} ${unit.padEnd(9)} ` +
      `ratio ${ratio.toFixed(2).padStart(6)} (target >= ${target}) ${met ? "met" : "MISSED"}`,
  );
  return met;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

/** The median rates of `repeats` runs each of `ours` and `baseline` (alternating, so a noisy neighbour slows both alike). */
async function rates(
  count: number,
  ours: () => Promise<unknown>,
  baseline: () => Promise<unknown>,
  repeats: number,
): Promise<[number, number]> {
  const measured: [number[], number[]] = [[], []];
  for (let i = 0; i < repeats; i++) {
    for (const [run, into] of [
      [ours, measured[0]],
      [baseline, measured[1]],
    ] as const) {
      const started = performance.now();
      await run();
      into.push(count / ((performance.now() - started) / 1000));
    }
  }
  return [median(measured[0]), median(measured[1])];
}

/** The wallet's balance: the same fold for every store (each event's JSON payload parsed). */
const balance: Reducer<number> = {
  revision: "balance-1",
  initial: () => 0,
  apply: (state, event) => {
    const { amount } = event.json<{ amount: number }>();
    return event.name === "Deposited" ? state + amount : state - amount;
  },
};

/** Neither the local cache nor snapshots: every load reads and folds every event. */
const plain = { cacheEntries: 0, snapshotEvery: 0 } as const;

async function writeState(client: Client, stateId: string, count: number): Promise<void> {
  const event: EventData = { name: "Deposited", data: PAYLOAD }; // no event id: each append gets fresh ones
  for (let start = 0; start < count; start += 1000) {
    await client.append(
      stateId,
      Array.from({ length: Math.min(1000, count - start) }, () => event),
    );
  }
}

interface GrpcEvent {
  name: string;
  payload: Buffer;
}

/** A plain gRPC client of the EventStore service, loaded from the proto as the grpc-js docs show. */
function grpcClient(url: string) {
  const definition = protoLoader.loadSync(join(proto, "flipbook.proto"), {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    flipbook: { v1: { EventStore: new (address: string, credentials: grpc.ChannelCredentials) => grpc.Client } };
  };
  return new loaded.flipbook.v1.EventStore(new URL(url).host, grpc.credentials.createInsecure()) as grpc.Client & {
    ReadState(request: object): grpc.ClientReadableStream<{ events: GrpcEvent[] }>;
  };
}

/** What a Node user writes without the SDK: ReadState's stream, each event's payload parsed. */
function grpcFold(client: ReturnType<typeof grpcClient>, stateId: string): Promise<number> {
  return new Promise((resolve, reject) => {
    let state = 0;
    const stream = client.ReadState({ state_id: stateId, direction: "DIRECTION_FORWARD" });
    stream.on("data", (page: { events: GrpcEvent[] }) => {
      for (const event of page.events) {
        const { amount } = JSON.parse(event.payload.toString("utf8")) as { amount: number };
        state = event.name === "Deposited" ? state + amount : state - amount;
      }
    });
    stream.on("end", () => resolve(state));
    stream.on("error", reject);
  });
}

async function loadAgainstGrpc(): Promise<boolean> {
  const events = smoke ? 5_000 : 100_000;
  const repeats = smoke ? 1 : 5;
  const server = await Server.start(["--sqlite-path", join(tempDir(), "bench.db")], binary);
  const client = await Client.connect(server.url, plain);
  const raw = grpcClient(server.url);
  try {
    const stateId = `big-${randomUUID()}`;
    await writeState(client, stateId, events);
    const ours = async () => {
      const { state } = await client.load(stateId, balance);
      if (state !== 3 * events) throw new Error(`folded ${state}`);
    };
    const baseline = async () => {
      const state = await grpcFold(raw, stateId);
      if (state !== 3 * events) throw new Error(`grpc-js folded ${state}`);
    };
    const [flipbook, grpcJs] = await rates(events, ours, baseline, repeats);
    return report(
      `load ${events.toLocaleString("en")} events, JS reducer`,
      "events/s",
      flipbook,
      "grpc-js",
      grpcJs,
      1.5,
    );
  } finally {
    raw.close();
    await client.close();
    await server.stop();
  }
}

type Deposited = { type: "Deposited"; data: { amount: number } };

async function againstEmmett(): Promise<boolean> {
  const url = process.env.FLIPBOOK_TEST_POSTGRES_URL;
  if (!url) throw new Error("FLIPBOOK_TEST_POSTGRES_URL must name a PostgreSQL database");
  const [wallets, commandsEach] = smoke ? [5, 10] : [50, 20];
  const [replayEvents, replays] = smoke ? [200, 3] : [1_000, 20];
  const repeats = smoke ? 1 : 5;
  const server = await Server.start(
    ["--event-store", "postgres", "--snapshot-store", "postgres", "--postgres-url", url],
    binary,
  );
  const client = await Client.connect(server.url);
  const uncached = await Client.connect(server.url, plain);
  const eventStore = getPostgreSQLEventStore(url);
  // Emmett's command handler: aggregate the stream, decide, append with the version it read.
  const evolve = (state: number, event: Deposited) => state + event.data.amount;
  const handle = CommandHandler<number, Deposited>({ evolve, initialState: () => 0 });
  let met = true;
  try {
    const deposit: EventData = { name: "Deposited", data: PAYLOAD };
    const flipbookCommands = async () => {
      for (let w = 0; w < wallets; w++) {
        const stateId = `wallet-${randomUUID()}`;
        for (let c = 0; c < commandsEach; c++) await client.execute(stateId, balance, () => deposit);
      }
    };
    const emmettCommands = async () => {
      for (let w = 0; w < wallets; w++) {
        const streamId = `wallet-${randomUUID()}`;
        for (let c = 0; c < commandsEach; c++) {
          await handle(eventStore, streamId, (): Deposited => ({ type: "Deposited", data: { amount: 3 } }));
        }
      }
    };
    const count = wallets * commandsEach;
    const [ours, theirs] = await rates(count, flipbookCommands, emmettCommands, repeats);
    met = report("commands, 1 event each (PostgreSQL)", "cmds/s", ours, "Emmett", theirs, 2.0) && met;

    const stateId = `replay-${randomUUID()}`;
    await writeState(client, stateId, replayEvents);
    const streamId = `replay-${randomUUID()}`;
    for (let start = 0; start < replayEvents; start += 100) {
      const page = Array.from(
        { length: Math.min(100, replayEvents - start) },
        (): Deposited => ({
          type: "Deposited",
          data: { ...PAYLOAD },
        }),
      );
      await eventStore.appendToStream(streamId, page);
    }
    const flipbookReplays = async () => {
      for (let r = 0; r < replays; r++) await uncached.load(stateId, balance);
    };
    const emmettReplays = async () => {
      for (let r = 0; r < replays; r++) await eventStore.aggregateStream(streamId, { evolve, initialState: () => 0 });
    };
    const [oursReplays, theirReplays] = await rates(replays, flipbookReplays, emmettReplays, repeats);
    const replayed = `replay a ${replayEvents.toLocaleString("en")}-event aggregate`;
    met = report(replayed, "loads/s", oursReplays, "Emmett", theirReplays, 2.0) && met;
    // What a load of it costs with the SDK's defaults but no local cache: from the snapshot
    // the first load wrote (not a replay: beside the figure above, not instead of it).
    const snapshotted = await Client.connect(server.url, { cacheEntries: 0 });
    try {
      await snapshotted.load(stateId, balance);
      await snapshotted.close(); // waits for the snapshot it writes
      const fromSnapshots = await Client.connect(server.url, { cacheEntries: 0 });
      const flipbookLoads = async () => {
        for (let r = 0; r < replays; r++) await fromSnapshots.load(stateId, balance);
      };
      const [oursLoads, theirLoads] = await rates(replays, flipbookLoads, emmettReplays, repeats);
      report(`${replayed}, from its snapshot`, "loads/s", oursLoads, "Emmett", theirLoads, 2.0);
      await fromSnapshots.close();
    } finally {
      await snapshotted.close();
    }
  } finally {
    await eventStore.close();
    await uncached.close();
    await client.close();
    await server.stop();
  }
  return met;
}

/** Streams a state in a process of its own and answers its peak RSS in MiB. */
function streamedPeakRss(url: string, stateId: string, events: number): number {
  const script = `
    import { Client } from ${JSON.stringify(new URL("../src/index.js", import.meta.url).href)};
    const client = await Client.connect(${JSON.stringify(url)});
    let count = 0;
    for await (const event of client.readState(${JSON.stringify(stateId)})) count += event.payload.length > 0 ? 1 : 0;
    if (count !== ${events}) throw new Error("streamed " + count);
    await client.close();
    console.log(process.resourceUsage().maxRSS / 1024);
  `;
  const done = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
  if (done.status !== 0) throw new Error(`the streaming process failed: ${done.stderr}`);
  return Number(done.stdout.trim());
}

async function streamingMemory(): Promise<boolean> {
  const events = smoke ? 20_000 : 1_000_000;
  const server = await Server.start(["--sqlite-path", join(tempDir(), "stream.db")], binary);
  const client = await Client.connect(server.url);
  try {
    const stateId = `huge-${randomUUID()}`;
    await writeState(client, stateId, events);
    const peak = streamedPeakRss(server.url, stateId, events);
    const met = peak < 150;
    console.log(
      `${`stream ${events.toLocaleString("en")} events, peak RSS`.padEnd(48)} flipbook ${peak.toFixed(1).padStart(12)} MiB ` +
        `(target < 150) ${met ? "met" : "MISSED"}`,
    );
    return met;
  } finally {
    await client.close();
    await server.stop();
  }
}

console.log(`Node benchmark (${smoke ? "smoke" : "full"} mode), server ${binary}`);
let met = await loadAgainstGrpc();
met = (await againstEmmett()) && met;
met = (await streamingMemory()) && met;
if (!met && !smoke) console.log("some targets were missed");
