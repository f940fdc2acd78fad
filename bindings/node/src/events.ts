/**
 * Events: what an append sends ({@link EventData}) and what the store recorded
 * ({@link RecordedEvent}, decoded a page at a time from the buffer the core packs).
 *
 * @module
 */
import { nanos, optionalBigint } from "./calls.js";
import { invalidArgument } from "./errors.js";

/** An event to append. Its payload is `data` as JSON, or `payload` as bytes. */
export interface EventData {
  readonly name: string;
  /** Encoded as JSON (content type `application/json`); `{}` when neither this nor `payload` is given. */
  readonly data?: unknown;
  /** Raw bytes (content type `application/octet-stream` unless `contentType` says otherwise). */
  readonly payload?: Uint8Array;
  readonly contentType?: string;
  /** A UUID; the core makes one when absent. Send the same id again to re-send the same event. */
  readonly eventId?: string;
  /** When it happened in the domain (a `Date`, or nanoseconds since the Unix epoch); absent: time-neutral. */
  readonly timestamp?: Date | bigint;
  readonly metadata?: Readonly<Record<string, string>>;
  /** An explicit version: every event of an append has one, or none has. */
  readonly version?: bigint | number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** An event as the native append takes it; errors name the field under `path` (`events[2]`). */
export function nativeEvent(event: EventData, path: string) {
  if (typeof event?.name !== "string") throw invalidArgument(`${path}.name`, "must be a string");
  const bytes = event.payload !== undefined;
  if (bytes && !(event.payload instanceof Uint8Array)) {
    throw invalidArgument(`${path}.payload`, "must be a Uint8Array");
  }
  const payload = bytes ? event.payload : encoder.encode(JSON.stringify(event.data ?? {}));
  return {
    eventId: event.eventId,
    name: event.name,
    payload: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength),
    contentType: event.contentType ?? (bytes ? "application/octet-stream" : "application/json"),
    timestampNanos: event.timestamp === undefined ? undefined : nanos(event.timestamp),
    metadata: event.metadata === undefined ? undefined : { ...event.metadata },
    version: optionalBigint(event.version, `${path}.version`),
  };
}

/** An event as the store recorded it. */
export class RecordedEvent {
  constructor(
    readonly stateId: string,
    /** `undefined` for version-neutral states. */
    readonly version: bigint | undefined,
    readonly globalPosition: bigint,
    readonly eventId: string,
    readonly name: string,
    /** A view of the page the event came in. */
    readonly payload: Uint8Array,
    readonly contentType: string,
    /** When it happened in the domain, in nanoseconds since the Unix epoch; `undefined`: time-neutral. */
    readonly timestamp: bigint | undefined,
    /** The store's clock when it was appended, in nanoseconds since the Unix epoch. */
    readonly recordedAt: bigint,
    readonly metadata: Readonly<Record<string, string>>,
  ) {}

  /** The payload parsed as JSON. */
  json<T = unknown>(): T {
    return JSON.parse(decoder.decode(this.payload)) as T;
  }
}

const hex = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

function uuid(bytes: Uint8Array, at: number): string {
  let out = "";
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) out += "-";
    out += hex[bytes[at + i] ?? 0];
  }
  return out;
}

const NO_METADATA: Readonly<Record<string, string>> = Object.freeze({});

/** Decodes a page the core packed (`native/pages.rs` has the layout). */
export function decodePage(page: Uint8Array): RecordedEvent[] {
  const view = new DataView(page.buffer, page.byteOffset, page.byteLength);
  const count = view.getUint32(0, true);
  const events = new Array<RecordedEvent>(count);
  let at = 4;
  // Consecutive events mostly share their state id, name and content type: decoded once.
  let last: { bytes: Uint8Array; text: string }[] = [];
  const text = (slot: number): string => {
    const length = view.getUint32(at, true);
    const bytes = page.subarray(at + 4, at + 4 + length);
    at += 4 + length;
    const previous = last[slot];
    if (previous !== undefined && equal(previous.bytes, bytes)) return previous.text;
    const decoded = decoder.decode(bytes);
    last[slot] = { bytes, text: decoded };
    return decoded;
  };
  for (let i = 0; i < count; i++) {
    const globalPosition = view.getBigUint64(at, true);
    const versionPlusOne = view.getBigUint64(at + 8, true);
    const recordedAt = view.getBigInt64(at + 16, true);
    const hasTimestamp = view.getUint8(at + 24) === 1;
    const timestamp = view.getBigInt64(at + 25, true);
    const eventId = uuid(page, at + 33);
    at += 49;
    const stateId = text(0);
    const name = text(1);
    const contentType = text(2);
    const metadataLength = view.getUint32(at, true);
    const metadata =
      metadataLength === 0
        ? NO_METADATA
        : (JSON.parse(decoder.decode(page.subarray(at + 4, at + 4 + metadataLength))) as Record<string, string>);
    at += 4 + metadataLength;
    const payloadLength = view.getUint32(at, true);
    const payload = page.subarray(at + 4, at + 4 + payloadLength);
    at += 4 + payloadLength;
    events[i] = new RecordedEvent(
      stateId,
      versionPlusOne === 0n ? undefined : versionPlusOne - 1n,
      globalPosition,
      eventId,
      name,
      payload,
      contentType,
      hasTimestamp ? timestamp : undefined,
      recordedAt,
      metadata,
    );
  }
  last = [];
  return events;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return false;
  }
  return true;
}

/** What an append stored. */
export interface AppendResult {
  /** The state's last version after the append; `undefined` for a version-neutral state. */
  readonly lastVersion: bigint | undefined;
  /** The stored events' global positions, in the order sent. */
  readonly globalPositions: readonly bigint[];
  /** The store's clock when it committed, in nanoseconds since the Unix epoch. */
  readonly recordedAt: bigint;
}

/** @internal */
export function appendResult(result: {
  lastVersion?: bigint | null;
  globalPositions: bigint[];
  recordedAtNanos: bigint;
}): AppendResult {
  return {
    lastVersion: result.lastVersion ?? undefined,
    globalPositions: result.globalPositions,
    recordedAt: result.recordedAtNanos,
  };
}
