"""Flipbook for Python: event sourcing done right, over the Rust core.

>>> import flipbook
>>> client = flipbook.Client.in_memory()
>>> client.append("wallet-1", flipbook.Event("Deposited", {"amount": 100})).last_version
1

See the package README for the wallet example; :mod:`flipbook.aio` is the asyncio client.
"""

from flipbook._client import Client, Subscription
from flipbook._model import (
    ANY,
    NO_STATE,
    AppendPart,
    AppendResult,
    Checkpoint,
    Event,
    Executed,
    FunctionReducer,
    Loaded,
    LogHead,
    Options,
    Reducer,
    ServerInfo,
    Snapshot,
    StateHead,
)
from flipbook._native import RecordedEvent
from flipbook.errors import (
    ConflictError,
    DuplicateEvent,
    FellBehind,
    FlipbookError,
    InternalError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ReadOnly,
    StateKindMismatch,
    StorageFull,
    TooLarge,
    Unauthenticated,
    Unavailable,
)

__all__ = [
    "ANY",
    "NO_STATE",
    "AppendPart",
    "AppendResult",
    "Checkpoint",
    "Client",
    "ConflictError",
    "DuplicateEvent",
    "Event",
    "Executed",
    "FellBehind",
    "FlipbookError",
    "FunctionReducer",
    "InternalError",
    "InvalidArgument",
    "Loaded",
    "LogHead",
    "NotFound",
    "Options",
    "PermissionDenied",
    "ReadOnly",
    "RecordedEvent",
    "Reducer",
    "ServerInfo",
    "Snapshot",
    "StateHead",
    "StateKindMismatch",
    "StorageFull",
    "Subscription",
    "TooLarge",
    "Unauthenticated",
    "Unavailable",
]
