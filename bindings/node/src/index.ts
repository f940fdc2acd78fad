/**
 * Flipbook for Node.js and TypeScript: an event store client over the Rust core.
 *
 * ```ts
 * import { Client, NO_STATE } from "flipbook";
 * await using client = await Client.connect("http://127.0.0.1:7420");
 * await client.append("wallet-1", { name: "Deposited", data: { amount: 10 } }, { expected: NO_STATE });
 * for await (const event of client.readState("wallet-1")) console.log(event.name, event.json());
 * ```
 *
 * @module
 */

export type { CallOptions } from "./calls.js";
export {
  ANY,
  type AppendOptions,
  type AppendPart,
  Client,
  type ClientOptions,
  type ConnectOptions,
  type Expected,
  type LogHead,
  NO_STATE,
  type ReadAllOptions,
  type ReadStateOptions,
  type ServerInfo,
  type Snapshot,
  type StateHead,
} from "./client.js";
export {
  ClosedError,
  ConflictError,
  DuplicateEventError,
  type ErrorCode,
  FellBehindError,
  FlipbookError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ReadOnlyError,
  RejectedError,
  StateKindMismatchError,
  StorageFullError,
  TooLargeError,
  UnauthenticatedError,
  UnavailableError,
} from "./errors.js";
export { type AppendResult, type EventData, RecordedEvent } from "./events.js";
export type { Decision, Executed, Loaded, LoadOptions, Reducer, Target } from "./reducers.js";
export { Checkpoint, type Start, type SubscribeOptions, Subscription } from "./subscriptions.js";
