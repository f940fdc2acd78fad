/**
 * The client: the API of `docs/spec.md` §6 over the Rust core, as promises and async
 * iterables: appends, reads and subscriptions, and `load` and `execute` with a reducer. Every
 * call takes `{ signal }`.
 *
 * @module
 */
import { bigintOf, type CallOptions, call, callNow, nanos, optionalBigint } from "./calls.js";
import { invalidArgument } from "./errors.js";
import {
  type AppendResult,
  appendResult,
  decodePage,
  type EventData,
  nativeEvent,
  type RecordedEvent,
} from "./events.js";
import { type NativeClient, type NativePages, native } from "./native.js";
import {
  converse,
  type Decision,
  type Executed,
  type Loaded,
  type LoadOptions,
  type Reducer,
  type Target,
} from "./reducers.js";
import { type SubscribeOptions, Subscription, subscriptionQuery } from "./subscriptions.js";

/** Append whatever the state's version (the default). */
export const ANY = "any";
/** Append only if the state has no events yet. */
export const NO_STATE = "no_state";

/** What an append expects of the state: {@link ANY}, {@link NO_STATE}, or its exact version. */
export type Expected = typeof ANY | typeof NO_STATE | bigint | number;

/** How a client retries and caches; absent fields keep the core's defaults. */
export interface ClientOptions {
  /** Decide-and-append rounds before a command gives up with the conflict. */
  readonly maxTries?: number;
  /** Times an append whose answer was lost is re-sent, with the same event ids. */
  readonly maxResends?: number;
  /** Seconds a subscription keeps resuming while the server cannot be reached. */
  readonly resumeFor?: number;
  /** Seconds; retries wait a random time up to a ceiling that doubles from here... */
  readonly firstDelay?: number;
  /** ...up to here. */
  readonly maxDelay?: number;
  /** States the local cache holds (10,000 by default); 0 turns it off. */
  readonly cacheEntries?: number;
  /** Bytes of encoded states the local cache holds (64 MiB by default). */
  readonly cacheBytes?: number;
  /** Events folded since a state's newest snapshot before a load or command writes one (100 by default); 0: never. */
  readonly snapshotEvery?: number;
}

/** How a client reaches a server, and how it retries and caches. */
export interface ConnectOptions extends ClientOptions {
  /** A bearer token (the server's `--auth-token`). */
  readonly token?: string;
  readonly tls?: { readonly ca?: Uint8Array; readonly domain?: string };
  /** Seconds. */
  readonly timeouts?: { readonly connect?: number; readonly request?: number };
}

/** How {@link Client.append} checks and marks the state. */
export interface AppendOptions extends CallOptions {
  readonly expected?: Expected;
  /** A version-neutral state: its events carry no versions and no expectation applies. */
  readonly versionNeutral?: boolean;
  /** Merged into the state's metadata when the events are stored. */
  readonly stateMetadata?: Readonly<Record<string, string>>;
}

/** One state's part of {@link Client.appendStates}. */
export interface AppendPart extends Omit<AppendOptions, "signal"> {
  readonly stateId: string;
  readonly events: readonly EventData[];
}

/** A state's head (its version 0): what {@link Client.head} answers. */
export interface StateHead {
  readonly stateId: string;
  /** `undefined` for a version-neutral state. */
  readonly lastVersion: bigint | undefined;
  readonly versionNeutral: boolean;
  readonly eventCount: bigint;
  readonly lastGlobalPosition: bigint;
  readonly firstRecordedAt: bigint;
  readonly lastRecordedAt: bigint;
  readonly metadata: Readonly<Record<string, string>>;
}

/** Which events of one state {@link Client.readState} streams, and in which order. */
export interface ReadStateOptions extends CallOptions {
  readonly backward?: boolean;
  /** Inclusive bounds (on a version-neutral state they count its events). */
  readonly minVersion?: bigint | number;
  readonly maxVersion?: bigint | number;
  readonly limit?: bigint | number;
  /** Only events of these names. */
  readonly names?: readonly string[];
  /** Only events whose domain time is at or before this; time-neutral events always pass. */
  readonly asOf?: Date | bigint;
}

/** Which events of the whole store {@link Client.readAll} streams. */
export interface ReadAllOptions extends CallOptions {
  /** Only states whose id starts with this. */
  readonly prefix?: string;
  readonly names?: readonly string[];
  /** Exclusive: events after this global position. */
  readonly after?: bigint | number;
  /** Inclusive. */
  readonly until?: bigint | number;
  readonly limit?: bigint | number;
  readonly backward?: boolean;
}

/** The log's head: where a poll of {@link Client.readAll} may safely go on from. */
export interface LogHead {
  /** Every event at or below it is visible, and none can still appear there. */
  readonly settledPosition: bigint;
  readonly eventCount: bigint;
}

/** A reduced state stored at a version, for one reducer revision (a cache: never the truth). */
export interface Snapshot {
  readonly stateId: string;
  readonly version: bigint;
  readonly reducerRevision: string;
  readonly payload: Uint8Array;
  readonly contentType: string;
  readonly createdAt: bigint | undefined;
}

/** What the server (or the embedded store) runs on and what it accepts. */
export interface ServerInfo {
  readonly serverVersion: string;
  readonly eventBackend: string;
  readonly snapshotBackend: string;
  readonly durable: boolean;
  readonly maxEventsPerAppend: number;
  readonly maxStatesPerAppend: number;
  readonly maxPayloadBytes: bigint;
  readonly maxSnapshotBytes: bigint;
}

function appendInput(stateId: string, events: readonly EventData[], options: Omit<AppendOptions, "signal">) {
  const expected = options.expected ?? ANY;
  const exactly = typeof expected === "bigint" || typeof expected === "number";
  if (!exactly && expected !== ANY && expected !== NO_STATE) {
    throw invalidArgument("expected", "must be ANY, NO_STATE or a version");
  }
  return {
    stateId,
    events: events.map((event, i) => nativeEvent(event, `events[${i}]`)),
    expected: exactly ? "exactly" : expected,
    version: exactly ? bigintOf(expected, "expected") : undefined,
    versionNeutral: options.versionNeutral ?? false,
    stateMetadata: options.stateMetadata === undefined ? undefined : { ...options.stateMetadata },
  };
}

function settings(options: ClientOptions) {
  return {
    maxTries: options.maxTries,
    maxResends: options.maxResends,
    resumeFor: options.resumeFor,
    firstDelay: options.firstDelay,
    maxDelay: options.maxDelay,
    cacheEntries: options.cacheEntries,
    cacheBytes: options.cacheBytes,
    snapshotEvery: options.snapshotEvery,
  };
}

/** Events page by page, decoded as the loop asks; leaving the loop early cancels the read. */
async function* events(open: () => NativePages, signal: AbortSignal | undefined): AsyncGenerator<RecordedEvent> {
  const pages = callNow(open);
  try {
    for (;;) {
      const page = await call(signal, () => pages.next());
      if (page === null || page === undefined) return;
      yield* decodePage(page);
    }
  } finally {
    pages.close();
  }
}

/** A client of a Flipbook server, an embedded store or memory. */
export class Client implements AsyncDisposable {
  readonly #native: NativeClient;

  private constructor(client: NativeClient) {
    this.#native = client;
  }

  /** Connects to a server: `http://host:7420`, or `https://…` with `tls`. */
  static async connect(url: string, options: ConnectOptions & CallOptions = {}): Promise<Client> {
    const connect = {
      token: options.token,
      caCertificate: options.tls?.ca === undefined ? undefined : Buffer.from(options.tls.ca),
      tlsDomain: options.tls?.domain,
      connectTimeout: options.timeouts?.connect,
      requestTimeout: options.timeouts?.request,
    };
    return new Client(await call(options.signal, () => native.connect(url, connect, settings(options))));
  }

  /** Opens (or creates) an embedded store in an SQLite file: no server. */
  static async openEmbedded(path: string, options: ClientOptions & CallOptions = {}): Promise<Client> {
    return new Client(await call(options.signal, () => native.openEmbedded(path, settings(options))));
  }

  /** A store in this process's memory, gone when the client is: for tests. */
  static async inMemory(options: ClientOptions = {}): Promise<Client> {
    return new Client(await call(undefined, () => native.inMemory(settings(options))));
  }

  /**
   * Appends events to one state, atomically, under `expected` ({@link ANY} by default). A lost
   * answer is re-sent with the same event ids, so the store keeps the events once.
   */
  append(
    stateId: string,
    events: EventData | readonly EventData[],
    options: AppendOptions = {},
  ): Promise<AppendResult> {
    return call(options.signal, async () => {
      const input = appendInput(stateId, Array.isArray(events) ? events : [events as EventData], options);
      return appendResult(await this.#native.append(input));
    });
  }

  /** Appends to several states atomically: every part is stored, or none. */
  appendStates(parts: readonly AppendPart[], options: CallOptions = {}): Promise<AppendResult[]> {
    return call(options.signal, async () => {
      const inputs = parts.map((part) => appendInput(part.stateId, part.events, part));
      return (await this.#native.appendStates(inputs)).map(appendResult);
    });
  }

  /** A state's head; {@link NotFoundError} when it has no events. */
  head(stateId: string, options: CallOptions = {}): Promise<StateHead> {
    return call(options.signal, async () => {
      const head = await this.#native.head(stateId);
      return {
        stateId: head.stateId,
        lastVersion: head.versionNeutral ? undefined : head.eventCount,
        versionNeutral: head.versionNeutral,
        eventCount: head.eventCount,
        lastGlobalPosition: head.lastGlobalPosition,
        firstRecordedAt: head.firstRecordedAtNanos,
        lastRecordedAt: head.lastRecordedAtNanos,
        metadata: head.metadata,
      };
    });
  }

  /** One state's events, streamed: a page is fetched as the loop reaches it. */
  readState(stateId: string, options: ReadStateOptions = {}): AsyncIterable<RecordedEvent> {
    const query = () => ({
      stateId,
      backward: options.backward ?? false,
      minVersion: optionalBigint(options.minVersion, "minVersion"),
      maxVersion: optionalBigint(options.maxVersion, "maxVersion"),
      limit: optionalBigint(options.limit, "limit"),
      names: [...(options.names ?? [])],
      asOfNanos: options.asOf === undefined ? undefined : nanos(options.asOf),
    });
    return events(() => this.#native.readState(query()), options.signal);
  }

  /** Events of the whole store in global-position order (or newest first, `backward`). */
  readAll(options: ReadAllOptions = {}): AsyncIterable<RecordedEvent> {
    const query = () => ({
      after: optionalBigint(options.after, "after") ?? 0n,
      until: optionalBigint(options.until, "until"),
      prefix: options.prefix ?? "",
      names: [...(options.names ?? [])],
      limit: optionalBigint(options.limit, "limit"),
      backward: options.backward ?? false,
    });
    return events(() => this.#native.readAll(query()), options.signal);
  }

  /** The settled position of the whole log and how many events are at or below it. */
  logHead(options: CallOptions = {}): Promise<LogHead> {
    return call(options.signal, () => this.#native.logHead());
  }

  putSnapshot(
    snapshot: Omit<Snapshot, "createdAt" | "contentType" | "version"> & {
      readonly version: bigint | number;
      readonly contentType?: string;
    },
    options: CallOptions = {},
  ): Promise<void> {
    return call(options.signal, () =>
      this.#native.putSnapshot({
        stateId: snapshot.stateId,
        version: bigintOf(snapshot.version, "version"),
        reducerRevision: snapshot.reducerRevision,
        payload: Buffer.from(snapshot.payload),
        contentType: snapshot.contentType ?? "application/json",
      }),
    );
  }

  /** The newest snapshot of the revision (at or below `maxVersion`), or `undefined`. */
  getSnapshot(
    stateId: string,
    reducerRevision: string,
    options: CallOptions & { readonly maxVersion?: bigint | number } = {},
  ): Promise<Snapshot | undefined> {
    return call(options.signal, async () => {
      const found = await this.#native.getSnapshot(
        stateId,
        reducerRevision,
        optionalBigint(options.maxVersion, "maxVersion"),
      );
      if (found === null || found === undefined) return undefined;
      return {
        stateId: found.stateId,
        version: found.version,
        reducerRevision: found.reducerRevision,
        payload: new Uint8Array(found.payload),
        contentType: found.contentType,
        createdAt: found.createdAtNanos ?? undefined,
      };
    });
  }

  /** Deletes every snapshot of the state; resolves to how many there were. */
  deleteSnapshots(stateId: string, options: CallOptions = {}): Promise<bigint> {
    return call(options.signal, () => this.#native.deleteSnapshots(stateId));
  }

  serverInfo(options: CallOptions = {}): Promise<ServerInfo> {
    return call(options.signal, () => this.#native.serverInfo());
  }

  /**
   * Every event of the store after `start` (stored ones first, then live ones as they are
   * appended), each once, in global-position order. The core resumes it after broken
   * connections; see {@link Subscription}.
   */
  subscribe(options: SubscribeOptions = {}): Subscription {
    const query = subscriptionQuery(options);
    return new Subscription(
      callNow(() => this.#native.subscribe(query)),
      options.signal,
    );
  }

  /**
   * A state folded by `reducer`: from the local cache, else the newest snapshot of its
   * revision, else the beginning, then the events after it. `asOf`: only events whose domain
   * time is at or before it.
   */
  async load<S>(stateId: string, reducer: Reducer<S>, options: LoadOptions = {}): Promise<Loaded<S>> {
    const asOf = options.asOf === undefined ? undefined : nanos(options.asOf);
    const [done] = await converse(
      () => this.#native.loadSession(stateId, reducer.revision, asOf),
      [reducer as Reducer<unknown>],
      undefined,
      options.signal,
    );
    return { state: (done as Executed<S>).state, version: (done as Executed<S>).version };
  }

  /**
   * A command: folds the state, calls `decide` (it may be async) and appends what it returns,
   * expecting the version it decided on. On a conflict the core folds the new events and calls
   * `decide` again, up to the client's `maxTries`. A throw of `decide` or the reducer reaches
   * the caller unchanged, and nothing is appended.
   */
  async execute<S>(
    stateId: string,
    reducer: Reducer<S>,
    decide: (state: S) => Decision | Promise<Decision>,
    options: CallOptions = {},
  ): Promise<Executed<S>> {
    const [done] = await converse(
      () => this.#native.executeSession(stateId, reducer.revision),
      [reducer as Reducer<unknown>],
      async ([state]) => [await decide(state as S)],
      options.signal,
    );
    return done as Executed<S>;
  }

  /**
   * A command over several states, each folded by its reducer: `decide` gets their states in
   * order and returns one decision per state (`[]` leaves a state alone); every event is
   * appended in one atomic append, and a conflict on any of them is retried as `execute` does.
   */
  async executeStates<T extends readonly unknown[]>(
    targets: { readonly [K in keyof T]: Target<T[K]> },
    decide: (states: T) => readonly Decision[] | Promise<readonly Decision[]>,
    options: CallOptions = {},
  ): Promise<{ -readonly [K in keyof T]: Executed<T[K]> }> {
    const list = targets as readonly Target<unknown>[];
    const done = await converse(
      () =>
        this.#native.executeStatesSession(
          list.map((t) => ({ stateId: t.stateId, reducerRevision: t.reducer.revision })),
        ),
      list.map((t) => t.reducer),
      async (states) => decide(states as unknown as T),
      options.signal,
    );
    return done as { -readonly [K in keyof T]: Executed<T[K]> };
  }

  /** Whether {@link Client.close} was called. */
  get closed(): boolean {
    return this.#native.isClosed;
  }

  /**
   * Closes the client: calls after it fail with {@link ClosedError}; resolves once snapshots
   * being written are and an embedded file is released. Nothing of it keeps the process alive.
   */
  close(): Promise<void> {
    return call(undefined, () => this.#native.close());
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
