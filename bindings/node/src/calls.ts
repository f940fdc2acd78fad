/**
 * What every call shares: running a native call with its error typed and its `AbortSignal`
 * honoured, and the integer and time arguments checked before they cross.
 *
 * @internal
 * @module
 */
import { fromNative, invalidArgument } from "./errors.js";

/** Options every call takes. */
export interface CallOptions {
  /**
   * Stops waiting: the promise rejects with the signal's reason; a read, a subscription or a
   * command is cancelled. An append already sent may still be stored; re-send it with the same
   * event ids to know.
   */
  readonly signal?: AbortSignal;
}

/** The reason a signal aborted with, or a new `AbortError`. */
export function aborted(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("the call was aborted", "AbortError");
}

/** Runs a native call: its error as the class of its code, and stops waiting on abort. */
export async function call<T>(signal: AbortSignal | undefined, run: () => Promise<T>): Promise<T> {
  if (signal?.aborted) throw aborted(signal);
  const running = run().catch((error: unknown) => {
    throw fromNative(error);
  });
  if (signal === undefined) return running;
  let onAbort: (() => void) | undefined;
  const abort = new Promise<never>((_, reject) => {
    onAbort = () => reject(aborted(signal));
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([running, abort]);
  } finally {
    if (onAbort !== undefined) signal.removeEventListener("abort", onAbort);
    running.catch(() => {}); // a rejection after the abort is nobody's
  }
}

/** Runs a synchronous native call with its error as the class of its code. */
export function callNow<T>(run: () => T): T {
  try {
    return run();
  } catch (error) {
    throw fromNative(error);
  }
}

/** Calls `onAbort` when the signal aborts; the returned function stops listening. */
export function onAbort(signal: AbortSignal | undefined, onAbort: () => void): () => void {
  if (signal === undefined) return () => {};
  if (signal.aborted) {
    onAbort();
    return () => {};
  }
  signal.addEventListener("abort", onAbort, { once: true });
  return () => signal.removeEventListener("abort", onAbort);
}

/** A count or version as a bigint (numbers must be safe integers). */
export function bigintOf(value: bigint | number, field: string): bigint {
  if (typeof value === "bigint") return value;
  if (!Number.isSafeInteger(value)) throw invalidArgument(field, "must be an integer (a bigint above 2^53)");
  return BigInt(value);
}

/** {@link bigintOf}, or `undefined`. */
export function optionalBigint(value: bigint | number | undefined, field: string): bigint | undefined {
  return value === undefined ? undefined : bigintOf(value, field);
}

/** A time as nanoseconds since the Unix epoch. */
export function nanos(value: Date | bigint): bigint {
  return typeof value === "bigint" ? value : BigInt(value.getTime()) * 1_000_000n;
}
