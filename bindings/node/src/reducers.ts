/**
 * The high level: a {@link Reducer} folds a state's events into a state; `load` and `execute`
 * run the core's session protocol (`bindings/README.md`), folding and deciding here in
 * JavaScript, a page of events per crossing. Every policy (where a load starts, retrying a
 * conflict, re-sending with the same event ids, writing snapshots) is the core's.
 *
 * @module
 */
import { type CallOptions, call, callNow } from "./calls.js";
import {
  type AppendResult,
  appendResult,
  decodePage,
  type EventData,
  nativeEvent,
  type RecordedEvent,
} from "./events.js";
import type { NativeSession } from "./native.js";
import { errorMessage } from "./util.js";

/**
 * Folds a state's events into its state. States are encoded as JSON for the cache and
 * snapshots unless `encode` and `decode` say otherwise (a state holding bigints needs them).
 * Change `revision` whenever `apply` or the state's shape changes: snapshots of other
 * revisions are then ignored.
 */
export interface Reducer<S> {
  readonly revision: string;
  /** The state of a state id with no events. */
  initial(): S;
  /** The state after one more event. */
  apply(state: S, event: RecordedEvent): S;
  encode?(state: S): Uint8Array;
  decode?(bytes: Uint8Array): S;
}

/** What {@link Client.load} answers: the folded state and its version. */
export interface Loaded<S> {
  readonly state: S;
  /** The last version folded (0: the state has no events). */
  readonly version: bigint;
}

/** What {@link Client.execute} answers for each state. */
export interface Executed<S> extends Loaded<S> {
  /** `undefined` when the decision was to append nothing. */
  readonly appended: AppendResult | undefined;
  /** Decide-and-append rounds: more than one means conflicts were retried. */
  readonly tries: number;
}

/** What a decide function returns for one state: an event, several, or none (`[]`). */
export type Decision = EventData | readonly EventData[];

/** One state of {@link Client.executeStates}. */
export interface Target<S> {
  readonly stateId: string;
  readonly reducer: Reducer<S>;
}

/** Options of {@link Client.load}. */
export interface LoadOptions extends CallOptions {
  /** Only events whose domain time is at or before this count (no cache, no snapshot). */
  readonly asOf?: Date | bigint;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function encode<S>(reducer: Reducer<S>, state: S): Uint8Array {
  return reducer.encode ? reducer.encode(state) : encoder.encode(JSON.stringify(state));
}

function decode<S>(reducer: Reducer<S>, bytes: Uint8Array): S {
  return reducer.decode ? reducer.decode(bytes) : (JSON.parse(decoder.decode(bytes)) as S);
}

/**
 * The state encoded for the cache and a snapshot. A state that does not encode is neither (a
 * warning says why): the command's events are stored by now, and failing the call would invite
 * a retry that stores them twice.
 */
function cacheable<S>(reducer: Reducer<S>, state: S): Buffer | null {
  try {
    return Buffer.from(encode(reducer, state));
  } catch (error) {
    process.emitWarning(
      `flipbook: the ${reducer.revision} state was not cached: ${errorMessage(error)}`,
      "FlipbookWarning",
    );
    return null;
  }
}

function events(decision: Decision): readonly EventData[] {
  return Array.isArray(decision) ? decision : [decision as EventData];
}

/** The state each reducer starts from: the session's base when it decodes, else `initial()`. */
function start<S>(session: NativeSession, index: number, reducer: Reducer<S>): S {
  const base = callNow(() => session.base(index));
  if (base !== null && base !== undefined) {
    try {
      return decode(reducer, base.state);
    } catch {
      // A state this reducer cannot read (its shape changed under the same revision): fold
      // from the beginning instead.
      callNow(() => session.discardBase(index));
    }
  }
  return reducer.initial();
}

async function fold<S>(
  session: NativeSession,
  index: number,
  reducer: Reducer<S>,
  state: S,
  signal: AbortSignal | undefined,
): Promise<S> {
  for (;;) {
    const page = await call(signal, () => session.nextPage(index));
    if (page === null || page === undefined) return state;
    for (const event of decodePage(page)) state = reducer.apply(state, event);
  }
}

/**
 * One session to its end: fold every state, decide (when deciding) until the core says the
 * decision is stored, then finish. A throw of the reducer or of `decide` reaches the caller
 * unchanged and drops the session: nothing more is appended.
 */
export async function converse(
  open: () => Promise<NativeSession>,
  reducers: readonly Reducer<unknown>[],
  decide: ((states: unknown[]) => Promise<readonly Decision[]>) | undefined,
  signal: AbortSignal | undefined,
): Promise<Executed<unknown>[]> {
  const session = await call(signal, open);
  try {
    const states = reducers.map((reducer, i) => start(session, i, reducer));
    for (;;) {
      for (const [i, reducer] of reducers.entries()) states[i] = await fold(session, i, reducer, states[i], signal);
      if (decide === undefined || callNow(() => session.isDecided())) break;
      const decisions = await decide([...states]);
      if (!Array.isArray(decisions) || decisions.length !== reducers.length) {
        throw new TypeError(`decide must return one decision per state (${reducers.length})`);
      }
      const native = decisions.map((decision, i) =>
        events(decision).map((event, j) => nativeEvent(event, `decisions[${i}][${j}]`)),
      );
      await call(signal, () => session.submit(native));
    }
    const encoded = reducers.map((reducer, i) =>
      callNow(() => session.wantsState(i)) ? cacheable(reducer, states[i]) : null,
    );
    const finished = await call(signal, () => session.finish(encoded));
    return finished.map((done, i) => ({
      state: states[i],
      version: done.version,
      appended: done.appended === null || done.appended === undefined ? undefined : appendResult(done.appended),
      tries: done.tries,
    }));
  } finally {
    session.close(); // an unfinished session is dropped; a finished one is already gone
  }
}
