/**
 * Every failure of the store is a {@link FlipbookError} of one subclass per code, so
 * `instanceof` tells them apart; `code`, `field`, `stateId`, `actualVersion` and `retryable`
 * say the rest. The core decides what is retryable and retries what it can itself.
 *
 * @module
 */

/** The codes of `docs/spec.md` §7, as the core names them. */
export type ErrorCode =
  | "INVALID_ARGUMENT"
  | "NOT_FOUND"
  | "VERSION_CONFLICT"
  | "DUPLICATE_EVENT"
  | "STATE_KIND_MISMATCH"
  | "TOO_LARGE"
  | "STORAGE_FULL"
  | "READ_ONLY"
  | "UNAUTHENTICATED"
  | "PERMISSION_DENIED"
  | "UNAVAILABLE"
  | "CLOSED"
  | "FELL_BEHIND"
  | "REJECTED"
  | "INTERNAL";

/** What the native half says of an error (see `native/errors.rs`). */
interface Detail {
  code: ErrorCode;
  message: string;
  field?: string | null;
  stateId?: string | null;
  actualVersion?: string | null;
  retryable: boolean;
}

/** A failure of the store or of a call's arguments. */
export class FlipbookError extends Error {
  /** The core's code: the same in every binding. */
  readonly code: ErrorCode;
  /** The argument at fault, for {@link InvalidArgumentError} and {@link TooLargeError}. */
  readonly field: string | undefined;
  /** The state the error is about, when it names one (a conflict in an append to several states). */
  readonly stateId: string | undefined;
  /** The state's version when an expectation failed. */
  readonly actualVersion: bigint | undefined;
  /** Whether the same call may succeed later (the core has already retried what it could). */
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, detail: Partial<Omit<Detail, "code" | "message">> = {}) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.field = detail.field ?? undefined;
    this.stateId = detail.stateId ?? undefined;
    this.actualVersion =
      detail.actualVersion === undefined || detail.actualVersion === null ? undefined : BigInt(detail.actualVersion);
    this.retryable = detail.retryable ?? false;
  }
}

/** An argument the contract refuses; `field` names it. Nothing was changed. */
export class InvalidArgumentError extends FlipbookError {}
/** The state (or snapshot) does not exist. */
export class NotFoundError extends FlipbookError {}
/** The expected version did not hold; `actualVersion` is the state's. */
export class ConflictError extends FlipbookError {}
/** An event id already stored with other content, or a re-send that is only partly stored. */
export class DuplicateEventError extends FlipbookError {}
/** A versioned append to a version-neutral state, or the other way round. */
export class StateKindMismatchError extends FlipbookError {}
/** Over a limit of the server's; `field` names what. */
export class TooLargeError extends FlipbookError {}
/** The backend has no room left. */
export class StorageFullError extends FlipbookError {}
/** The server is read-only. */
export class ReadOnlyError extends FlipbookError {}
/** No token, or a wrong one. */
export class UnauthenticatedError extends FlipbookError {}
/** The token may not do this. */
export class PermissionDeniedError extends FlipbookError {}
/** The server or its backend cannot be reached now; retryable. */
export class UnavailableError extends FlipbookError {}
/** The client was closed. */
export class ClosedError extends FlipbookError {}
/** A subscriber fell behind and was dropped (the core resumes by itself). */
export class FellBehindError extends FlipbookError {}
/** A decide function refused the command. */
export class RejectedError extends FlipbookError {}
/** A bug or an unexpected failure of the server or the core. */
export class InternalError extends FlipbookError {}

const classes: Record<ErrorCode, new (code: ErrorCode, message: string, detail: Partial<Detail>) => FlipbookError> = {
  INVALID_ARGUMENT: InvalidArgumentError,
  NOT_FOUND: NotFoundError,
  VERSION_CONFLICT: ConflictError,
  DUPLICATE_EVENT: DuplicateEventError,
  STATE_KIND_MISMATCH: StateKindMismatchError,
  TOO_LARGE: TooLargeError,
  STORAGE_FULL: StorageFullError,
  READ_ONLY: ReadOnlyError,
  UNAUTHENTICATED: UnauthenticatedError,
  PERMISSION_DENIED: PermissionDeniedError,
  UNAVAILABLE: UnavailableError,
  CLOSED: ClosedError,
  FELL_BEHIND: FellBehindError,
  REJECTED: RejectedError,
  INTERNAL: InternalError,
};

/** Makes the error of `code` (an argument checked here, before any round trip). */
export function flipbookError(code: ErrorCode, message: string, detail: Partial<Detail> = {}): FlipbookError {
  return new classes[code](code, message, detail);
}

/** The {@link InvalidArgumentError} of an argument refused here, before any round trip. */
export function invalidArgument(field: string, rule: string): FlipbookError {
  return flipbookError("INVALID_ARGUMENT", `${field}: ${rule}`, { field });
}

const MARKER = "flipbook:";

/** The error a native call failed with, as the class of its code; anything else unchanged. */
export function fromNative(error: unknown): unknown {
  if (!(error instanceof Error) || !error.message.startsWith(MARKER)) {
    return error;
  }
  const detail = JSON.parse(error.message.slice(MARKER.length)) as Detail;
  return flipbookError(detail.code, detail.message, detail);
}
