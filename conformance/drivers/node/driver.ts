/**
 * The conformance suite's Node driver (`conformance/README.md`, "The protocol"): reads one
 * request a line on stdin and answers one line on stdout, using only the `flipbook` package's
 * public API, as an application would. It runs on the packed package installed with no Rust
 * toolchain (`scripts/test`).
 */
import { createInterface } from "node:readline";
import {
  ANY,
  Checkpoint,
  Client,
  type Decision,
  type EventData,
  type Executed,
  type Expected,
  FlipbookError,
  NO_STATE,
  type RecordedEvent,
  type Reducer,
  type Start,
  type Subscription,
} from "flipbook";

type Json = { [key: string]: unknown };
// A request's arguments as the cases write them; the runner checks every answer.
// biome-ignore lint/suspicious/noExplicitAny: the protocol's JSON, read field by field
type Args = { [key: string]: any };

/** A request the driver cannot run (a bug in the case or the runner, not the binding). */
class DriverError extends Error {}

/** The decide function's own error: it reaches the caller unchanged; the suite calls it REJECTED. */
class InsufficientFunds extends Error {}

// ---- JSON with integers of any size (versions and positions are bigints) ----------------------

/** Marks an integer carried as a string through `JSON.parse` and `JSON.stringify`. */
const BIG = "@flipbook-bigint:";

/** Parses a request, keeping integers above 2^53 exact. */
function parse(line: string): Args {
  const marked = line.replace(/"(?:[^"\\]|\\.)*"|-?\d{16,}(?![.eE\d])/g, (token) =>
    token.startsWith('"') ? token : `"${BIG}${token}"`,
  );
  return JSON.parse(marked, (_, value) =>
    typeof value === "string" && value.startsWith(BIG) ? BigInt(value.slice(BIG.length)) : value,
  ) as Args;
}

/** Writes an answer: bigints as JSON integers. */
function stringify(value: unknown): string {
  const marked = JSON.stringify(value, (_, v) => (typeof v === "bigint" ? `${BIG}${v}` : v));
  return marked.replace(/"@flipbook-bigint:(-?\d+)"/g, "$1");
}

// ---- requests and answers ---------------------------------------------------------------------

function expected(value: unknown): Expected {
  if (value === "no_state") return NO_STATE;
  if (typeof value === "number" || typeof value === "bigint") return value;
  return ANY;
}

function event(spec: Args): EventData {
  const common = {
    name: spec.name ?? "",
    eventId: spec.id,
    metadata: spec.metadata ?? undefined,
    version: spec.version ?? undefined,
    timestamp:
      spec.timestamp_nanos === undefined || spec.timestamp_nanos === null ? undefined : BigInt(spec.timestamp_nanos),
  };
  if (spec.payload_size !== undefined) {
    return {
      ...common,
      payload: new Uint8Array(spec.payload_size).fill(0x78),
      contentType: "application/octet-stream",
    };
  }
  return { ...common, data: spec.payload ?? {} };
}

function appendOptions(args: Args) {
  return {
    expected: expected(args.expected),
    versionNeutral: Boolean(args.neutral),
    stateMetadata: args.state_metadata ?? undefined,
  };
}

function outcome(result: { lastVersion: bigint | undefined; globalPositions: readonly bigint[] }): Json {
  return { last_version: result.lastVersion ?? null, positions: result.globalPositions };
}

function eventJson(e: RecordedEvent): Json {
  let payload: unknown = { size: e.payload.length };
  if (e.contentType === "application/json") {
    try {
      payload = e.json();
    } catch {
      // not JSON after all: its size, as for bytes
    }
  }
  return {
    state: e.stateId,
    version: e.version ?? null,
    position: e.globalPosition,
    id: e.eventId,
    name: e.name,
    payload,
    metadata: { ...e.metadata },
    timestamp_nanos: e.timestamp ?? null,
  };
}

// ---- the named reducers and decide functions (conformance/README.md) --------------------------

function amount(e: RecordedEvent): number {
  try {
    return Number(e.json<{ amount?: number }>().amount ?? 0);
  } catch {
    return 0;
  }
}

interface WalletState {
  balance: number;
}

const wallet: Reducer<WalletState> = {
  revision: "conformance-wallet-1",
  initial: () => ({ balance: 0 }),
  apply: (state, e) => {
    const change = e.name === "Deposited" ? amount(e) : e.name === "Withdrawn" ? -amount(e) : 0;
    return { balance: state.balance + change };
  },
};

const counter: Reducer<{ count: number }> = {
  revision: "conformance-counter-1",
  initial: () => ({ count: 0 }),
  apply: (state) => ({ count: state.count + 1 }),
};

const REDUCERS: Record<string, Reducer<Json>> = {
  wallet: wallet as unknown as Reducer<Json>,
  counter: counter as unknown as Reducer<Json>,
};

function reducer(name: unknown): Reducer<Json> {
  const found = REDUCERS[String(name)];
  if (found === undefined) throw new DriverError(`no reducer ${String(name)}`);
  return found;
}

async function execute(client: Client, args: Args): Promise<Json> {
  const stateId: string = args.state;
  const decide = args.decide as Args;
  const competitor: number[] = "competitor" in decide ? [decide.competitor] : [];
  const decision = async (state: Json): Promise<Decision> => {
    // The competing writer appends while the first decision is made, so its append conflicts
    // and the command must decide again on the new state.
    const competing = competitor.pop();
    if (competing !== undefined) await client.append(stateId, { name: "Deposited", data: { amount: competing } });
    if ("deposit" in decide) return { name: "Deposited", data: { amount: decide.deposit } };
    if ("withdraw" in decide) {
      const balance = (state as unknown as WalletState).balance;
      if (balance < decide.withdraw) throw new InsufficientFunds(`${balance} < ${decide.withdraw}`);
      return { name: "Withdrawn", data: { amount: decide.withdraw } };
    }
    return [];
  };
  const done = await client.execute(stateId, reducer(args.reducer), decision);
  return { state: done.state, version: done.version, tries: done.tries, appended: done.appended !== undefined };
}

async function executeStates(client: Client, args: Args): Promise<Json> {
  const transfer: number = args.decide.transfer;
  const [from, to] = args.states as [string, string];
  const results: Executed<WalletState>[] = await client.executeStates(
    [
      { stateId: from, reducer: wallet },
      { stateId: to, reducer: wallet },
    ],
    ([source]) => {
      if (source.balance < transfer) throw new InsufficientFunds(`${source.balance} < ${transfer}`);
      return [
        { name: "Withdrawn", data: { amount: transfer } },
        { name: "Deposited", data: { amount: transfer } },
      ];
    },
  );
  return {
    results: results.map((e) => ({ state: e.state, version: e.version, appended: e.appended !== undefined })),
  };
}

/** Milliseconds a subscription step waits for the events it asks for. */
const PATIENCE_MS = 10_000;

function start(args: Args): Start {
  return args.after === undefined || args.after === null ? "beginning" : args.after;
}

function subscribe(client: Client, args: Args): Subscription {
  return client.subscribe({ prefix: args.prefix, names: args.names ?? [], start: start(args) });
}

/** The first `count` events of a subscription, or what arrived of them within the patience. */
async function subscribeCount(client: Client, args: Args): Promise<Json[]> {
  const received: Json[] = [];
  const subscription = subscribe(client, args);
  const patience = setTimeout(() => subscription.close(), PATIENCE_MS);
  try {
    for await (const e of subscription) {
      received.push(eventJson(e));
      if (received.length >= args.count) break;
    }
  } finally {
    clearTimeout(patience);
    subscription.close();
  }
  return received;
}

/**
 * An open subscription consumed all the time in the background, the way an application's
 * projection consumes one (`subscribe_open`, `subscribe_next`, `subscribe_close`), also while
 * the runner restarts a server.
 */
class Consumer {
  readonly #subscription: Subscription;
  readonly #events: Json[] = [];
  #error: FlipbookError | undefined;
  #messages = 0; // of any kind: a subscription from "now" first sends a checkpoint
  #taken = 0;
  #wake: (() => void) | undefined;
  readonly #done: Promise<void>;

  constructor(subscription: Subscription) {
    this.#subscription = subscription;
    this.#done = this.#consume();
  }

  async #consume(): Promise<void> {
    try {
      for await (const message of this.#subscription.withCheckpoints()) {
        this.#messages += 1;
        if (!(message instanceof Checkpoint)) this.#events.push(eventJson(message));
        this.#wake?.();
      }
    } catch (error) {
      if (!(error instanceof FlipbookError)) throw error;
      this.#error = error;
      this.#wake?.();
    }
  }

  /** Waits until `done()` holds or `ms` passed. */
  async #until(done: () => boolean, ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (!done() && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deadline - Date.now());
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
    }
  }

  /** Waits for the first message: where a subscription from "now" starts is settled then. */
  started(ms: number): Promise<void> {
    return this.#until(() => this.#messages > 0 || this.#error !== undefined, ms);
  }

  /** The next `count` events, or what arrived within `ms`; the error that ended the subscription once the events before it are taken. */
  async next(count: number, ms: number): Promise<Json[]> {
    const wanted = this.#taken + count;
    await this.#until(() => this.#events.length >= wanted || this.#error !== undefined, ms);
    const end = Math.min(this.#events.length, wanted);
    if (end === this.#taken && this.#error !== undefined) {
      const error = this.#error;
      this.#error = undefined;
      throw error;
    }
    const events = this.#events.slice(this.#taken, end);
    this.#taken = end;
    return events;
  }

  async close(): Promise<void> {
    this.#subscription.close();
    await this.#done;
  }
}

/** What the driver holds between steps: its client, and the subscription a case opened. */
class Session {
  client: Client | undefined;
  consumer: Consumer | undefined;

  async closeSubscription(): Promise<void> {
    await this.consumer?.close();
    this.consumer = undefined;
  }

  async subscriptionStep(client: Client, op: string, args: Args): Promise<Json> {
    if (op === "subscribe_open") {
      await this.closeSubscription();
      this.consumer = new Consumer(subscribe(client, args));
      if (args.after === "now") await this.consumer.started(PATIENCE_MS);
      return {};
    }
    if (op === "subscribe_next") {
      if (this.consumer === undefined) throw new DriverError("no subscription is open");
      return { events: await this.consumer.next(args.count, args.wait_ms ?? PATIENCE_MS) };
    }
    await this.closeSubscription();
    return {};
  }
}

async function collect(events: AsyncIterable<RecordedEvent>): Promise<Json[]> {
  const out: Json[] = [];
  for await (const e of events) out.push(eventJson(e));
  return out;
}

async function answer(client: Client, op: string, args: Args): Promise<Json> {
  switch (op) {
    case "append":
      return outcome(await client.append(args.state, args.events.map(event), appendOptions(args)));
    case "append_states": {
      const parts = args.parts.map((p: Args) => ({
        stateId: p.state,
        events: p.events.map(event),
        ...appendOptions(p),
      }));
      return { parts: (await client.appendStates(parts)).map(outcome) };
    }
    case "read": {
      const events = client.readState(args.state, {
        backward: Boolean(args.backward),
        minVersion: args.min_version ?? undefined,
        maxVersion: args.max_version ?? undefined,
        limit: args.limit ?? undefined,
        names: args.names ?? [],
        asOf: args.as_of_nanos === undefined || args.as_of_nanos === null ? undefined : BigInt(args.as_of_nanos),
      });
      return { events: await collect(events) };
    }
    case "read_all": {
      const events = client.readAll({
        prefix: args.prefix,
        names: args.names ?? [],
        after: args.after ?? 0,
        until: args.until ?? undefined,
        backward: Boolean(args.backward),
        limit: args.limit ?? undefined,
      });
      return { events: await collect(events) };
    }
    case "head": {
      const head = await client.head(args.state);
      return {
        last_version: head.lastVersion ?? null,
        event_count: head.eventCount,
        kind: head.versionNeutral ? "version-neutral" : "versioned",
        metadata: { ...head.metadata },
        last_position: head.lastGlobalPosition,
      };
    }
    case "log_head": {
      const log = await client.logHead();
      return { settled_position: log.settledPosition, event_count: log.eventCount };
    }
    case "load": {
      const asOf = args.as_of_nanos === undefined || args.as_of_nanos === null ? undefined : BigInt(args.as_of_nanos);
      const loaded = await client.load(args.state, reducer(args.reducer), { asOf });
      return { state: loaded.state, version: loaded.version };
    }
    case "execute":
      return execute(client, args);
    case "execute_states":
      return executeStates(client, args);
    case "subscribe":
      return { events: await subscribeCount(client, args) };
    case "put_snapshot":
      await client.putSnapshot({
        stateId: args.state,
        version: args.version,
        reducerRevision: args.revision,
        payload: new TextEncoder().encode(JSON.stringify(args.payload)),
      });
      return {};
    case "get_snapshot": {
      const found = await client.getSnapshot(args.state, args.revision, { maxVersion: args.max_version ?? undefined });
      if (found === undefined) return { snapshot: null };
      const payload: unknown = JSON.parse(new TextDecoder().decode(found.payload));
      return { snapshot: { version: found.version, revision: found.reducerRevision, payload } };
    }
    default:
      throw new DriverError(`no op ${op}`);
  }
}

function errorJson(error: FlipbookError): Json {
  const out: Json = { code: error.code, message: error.message };
  if (error.field !== undefined) out.field = error.field;
  if (error.stateId !== undefined) out.state = error.stateId;
  if (error.actualVersion !== undefined) out.actual_version = error.actualVersion;
  return out;
}

async function step(session: Session, op: string, args: Args): Promise<Json> {
  try {
    if (op === "connect") {
      // A connect while connected replaces the client (the other server, or a new client of
      // the same embedded file).
      await session.closeSubscription();
      await session.client?.close();
      session.client = undefined;
      session.client = "server" in args ? await Client.connect(args.server) : await Client.openEmbedded(args.embedded);
      return { ok: {} };
    }
    if (session.client === undefined) throw new DriverError("not connected");
    if (op === "subscribe_open" || op === "subscribe_next" || op === "subscribe_close") {
      return { ok: await session.subscriptionStep(session.client, op, args) };
    }
    return { ok: await answer(session.client, op, args) };
  } catch (error) {
    if (error instanceof FlipbookError) return { error: errorJson(error) };
    if (error instanceof InsufficientFunds) return { error: { code: "REJECTED", message: error.message } };
    const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    return { error: { code: "DRIVER", message } };
  }
}

const session = new Session();
for await (const line of createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY })) {
  const request = parse(line);
  process.stdout.write(`${stringify(await step(session, request.op, request.args ?? {}))}\n`);
}
await session.closeSubscription();
await session.client?.close();
