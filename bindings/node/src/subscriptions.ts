/**
 * Subscriptions: every event of the store after a start, stored ones first and then live ones,
 * each once and in global-position order, resumed by the core after broken connections.
 *
 * @module
 */
import { aborted, bigintOf, type CallOptions, call, onAbort } from "./calls.js";
import { invalidArgument } from "./errors.js";
import { decodePage, type RecordedEvent } from "./events.js";
import type { NativeSubscription } from "./native.js";

/**
 * Where a subscription starts: `"beginning"` (every stored event first), `"now"` (only events
 * settled after it starts), or a position to go on after (a saved {@link Subscription.position}).
 */
export type Start = "beginning" | "now" | bigint | number;

/** What {@link Client.subscribe} delivers and where it starts. */
export interface SubscribeOptions extends CallOptions {
  /** Only states whose id starts with this. */
  readonly prefix?: string;
  /** Only events of these names. */
  readonly names?: readonly string[];
  /** `"beginning"` by default. */
  readonly start?: Start;
}

/**
 * Every event at or below `position` was delivered or filtered out: a position to save and go
 * on after (`start: position`). Sent when the store moved past events that did not match, and
 * first of all from `"now"`.
 */
export class Checkpoint {
  constructor(readonly position: bigint) {}
}

/** The native query of a subscription's options. */
export function subscriptionQuery(options: SubscribeOptions) {
  const start = options.start ?? "beginning";
  const named = start === "beginning" || start === "now";
  if (!named && typeof start !== "bigint" && typeof start !== "number") {
    throw invalidArgument("start", 'must be "beginning", "now" or a position');
  }
  return {
    start: named ? start : "after",
    after: named ? undefined : bigintOf(start, "start"),
    prefix: options.prefix ?? "",
    names: [...(options.names ?? [])],
  };
}

/**
 * A subscription: `for await (const event of subscription)`, or {@link withCheckpoints}. It
 * holds one page in memory and fetches the next as the loop asks for it, so a slow consumer
 * slows the stream rather than filling memory (a consumer that takes nothing for the server's
 * stall timeout is dropped and resumed by the core). Leaving the loop, `close()` or the
 * `signal` end it; an error that resuming cannot help is thrown from the loop.
 */
export class Subscription implements AsyncIterable<RecordedEvent>, AsyncDisposable {
  readonly #native: NativeSubscription;
  readonly #signal: AbortSignal | undefined;
  readonly #stopListening: () => void;
  #page: RecordedEvent[] = [];
  #next = 0;
  #position: bigint | undefined;
  #closed = false;

  /** @internal */
  constructor(native: NativeSubscription, signal: AbortSignal | undefined) {
    this.#native = native;
    this.#signal = signal;
    this.#stopListening = onAbort(signal, () => this.close());
  }

  /**
   * The position of the last event or checkpoint handed out: every event at or below it was
   * handed out or filtered out. Save it to go on after it (`start: position`); `undefined`
   * before the first.
   */
  get position(): bigint | undefined {
    return this.#position;
  }

  /** The next event or checkpoint; `undefined` once closed. */
  async #message(): Promise<RecordedEvent | Checkpoint | undefined> {
    for (;;) {
      if (this.#signal?.aborted) throw aborted(this.#signal);
      const event = this.#page[this.#next];
      if (event !== undefined) {
        this.#next += 1;
        this.#position = event.globalPosition;
        return event;
      }
      if (this.#closed) return undefined;
      const message = await call(this.#signal, () => this.#native.next());
      if (this.#closed || message === null || message === undefined) return undefined;
      if (message.events !== undefined && message.events !== null) {
        this.#page = decodePage(message.events);
        this.#next = 0;
      } else if (message.checkpoint !== undefined && message.checkpoint !== null) {
        this.#position = message.checkpoint;
        return new Checkpoint(message.checkpoint);
      }
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<RecordedEvent> {
    for await (const message of this.withCheckpoints()) {
      if (!(message instanceof Checkpoint)) yield message;
    }
  }

  /** The same subscription with its {@link Checkpoint}s. */
  async *withCheckpoints(): AsyncGenerator<RecordedEvent | Checkpoint> {
    try {
      for (;;) {
        const message = await this.#message();
        if (message === undefined) return;
        yield message;
      }
    } finally {
      this.close();
    }
  }

  /** Ends the subscription: a loop waiting for its next event ends; never waits. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#page = [];
    this.#stopListening();
    this.#native.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }
}
