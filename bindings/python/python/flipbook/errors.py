"""Flipbook's errors: one class per kind of failure, the same kinds in every language.

Catch :class:`FlipbookError` for all of them, or a subclass for one. Every error carries
``code`` (the stable name, e.g. ``"VERSION_CONFLICT"``); :class:`InvalidArgument` and
:class:`TooLarge` also name the ``field``, :class:`ConflictError` the ``state_id`` it is about and that state's
``actual_version`` (in an append to several states, the part that failed). An exception raised
by your own reducer or decide function is never wrapped: it reaches you unchanged.
"""

from __future__ import annotations

#: The codes of failures that may pass when tried again (the core's ``Error::is_retryable``).
_RETRYABLE = frozenset({"UNAVAILABLE", "READ_ONLY", "FELL_BEHIND"})


class FlipbookError(Exception):
    """Base class of every error Flipbook raises."""

    code: str
    field: str | None
    #: The state a conflict, a duplicate event or a kind mismatch is about.
    state_id: str | None
    actual_version: int | None

    def __init__(
        self,
        message: str,
        *,
        code: str = "INTERNAL",
        field: str | None = None,
        state_id: str | None = None,
        actual_version: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        self.state_id = state_id
        self.actual_version = actual_version

    @property
    def retryable(self) -> bool:
        """Whether the same call may succeed if made again: the server was unreachable or
        read-only, or a subscriber fell behind (the same kinds the core retries and resumes
        itself)."""
        return self.code in _RETRYABLE


class InvalidArgument(FlipbookError):
    """Input broke a rule; nothing was stored. ``field`` names what was wrong."""


class NotFound(FlipbookError):
    """The state (its head) or the snapshot does not exist."""


class ConflictError(FlipbookError):
    """The version of the state ``state_id`` was not the expected one; ``actual_version`` is its
    version now. Nothing of the append was stored (of an append to several states: no part)."""


class DuplicateEvent(FlipbookError):
    """An event id already stored in the state ``state_id``, with other content or at another
    place."""


class StateKindMismatch(FlipbookError):
    """Versioned and version-neutral events cannot be mixed in one state (``state_id``)."""


class TooLarge(FlipbookError):
    """Data over a limit of the server or its backend (a payload, a metadata map, the events or
    states of one append, a whole request); nothing was stored. ``field`` names what passed the
    limit (``None`` for a whole request)."""


class StorageFull(FlipbookError):
    """The backend has no room to store more (a full disk, Redis at ``maxmemory``); nothing was
    stored, reads go on. Not retryable: an operator must make room."""


class Unauthenticated(FlipbookError):
    """No bearer token, or not the server's."""


class PermissionDenied(FlipbookError):
    """The token may not do this."""


class Unavailable(FlipbookError):
    """The server or its backend cannot be reached; retrying later can help. Also raised, with
    code ``"CLOSED"`` and not :attr:`~FlipbookError.retryable`, by a call on a closed client."""


class ReadOnly(Unavailable):
    """The backend refuses writes (a read-only database, a replica); nothing was stored, reads go
    on. Retryable, as every :class:`Unavailable` is: a failover ends it."""


class FellBehind(FlipbookError):
    """The server ended a subscription whose reader took nothing for too long. Subscriptions
    resume by themselves after it: you see it only once they have run out of tries."""


class InternalError(FlipbookError):
    """A bug or corrupt data; retrying will not help."""


_BY_CODE: dict[str, type[FlipbookError]] = {
    "INVALID_ARGUMENT": InvalidArgument,
    "NOT_FOUND": NotFound,
    "VERSION_CONFLICT": ConflictError,
    "DUPLICATE_EVENT": DuplicateEvent,
    "STATE_KIND_MISMATCH": StateKindMismatch,
    "TOO_LARGE": TooLarge,
    "STORAGE_FULL": StorageFull,
    "READ_ONLY": ReadOnly,
    "UNAUTHENTICATED": Unauthenticated,
    "PERMISSION_DENIED": PermissionDenied,
    "UNAVAILABLE": Unavailable,
    # A call on a client after close(): the core's CLOSED, raised as Unavailable, not retryable.
    "CLOSED": Unavailable,
    "FELL_BEHIND": FellBehind,
    "INTERNAL": InternalError,
}


def class_for_code(code: str) -> type[FlipbookError]:
    """The class the native core raises for an error code."""
    return _BY_CODE.get(code, FlipbookError)
