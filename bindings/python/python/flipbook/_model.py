"""The values Flipbook's Python API takes and gives, and the protocol that loads states and
executes commands over the native core (``bindings/README.md``), written once for the sync and
the asyncio clients: a generator that yields the native calls to make and folds, decides and
encodes in between, in the caller's thread."""

from __future__ import annotations

import json
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar, Generic, Literal, TypeVar, Union

from flipbook import _native
from flipbook._native import RecordedEvent
from flipbook.errors import InvalidArgument

S = TypeVar("S")
T = TypeVar("T")

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def to_nanos(moment: datetime, what: str = "timestamp") -> int:
    """Nanoseconds since the Unix epoch of a timezone-aware datetime."""
    if moment.tzinfo is None:
        raise InvalidArgument(f"{what} must be timezone-aware", code="INVALID_ARGUMENT", field=what)
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def from_nanos(nanos: int) -> datetime:
    return _EPOCH + timedelta(microseconds=nanos // 1000)


class _NoState:
    def __repr__(self) -> str:
        return "NO_STATE"


class _Any:
    def __repr__(self) -> str:
        return "ANY"


ANY = _Any()
"""Append whatever the state's version."""
NO_STATE = _NoState()
"""Append only if the state has no events yet."""

Expected = Union[_Any, _NoState, int]


@dataclass(frozen=True)
class Event:
    """An event to append. Give ``data`` (encoded as JSON) or raw ``payload`` bytes.

    ``version`` is optional: the store assigns versions in order. When given, every event of
    the append must have one, and they must continue the state without gaps (the first is the
    state's version + 1); else the append is refused with :class:`InvalidArgument` (a gap) or
    :class:`~flipbook.errors.ConflictError` (the state is elsewhere)."""

    name: str
    data: Any = None
    payload: bytes | None = None
    content_type: str = "application/json"
    #: A UUID; one is made when absent. The same id makes a re-sent append idempotent.
    event_id: str | None = None
    #: When it happened in the domain (timezone-aware); ``None``: time-neutral.
    timestamp: datetime | None = None
    metadata: Mapping[str, str] | None = None
    #: The event's version in its state; ``None``: the store assigns it.
    version: int | None = None

    def to_native(self) -> _native._Event:
        payload = self.payload if self.payload is not None else json.dumps(self.data).encode()
        timestamp = None if self.timestamp is None else to_nanos(self.timestamp)
        metadata = None if self.metadata is None else dict(self.metadata)
        return (self.event_id, self.name, payload, self.content_type, timestamp, metadata, self.version)


def native_events(events: Event | Sequence[Event]) -> list[_native._Event]:
    if isinstance(events, Event):
        events = [events]
    return [e.to_native() for e in events]


@dataclass(frozen=True)
class AppendPart:
    """One state's part of :meth:`flipbook.Client.append_states`: what
    :meth:`~flipbook.Client.append` takes for one state."""

    state_id: str
    events: Event | Sequence[Event]
    expected: Expected = ANY
    version_neutral: bool = False
    state_metadata: Mapping[str, str] | None = None

    def to_native(self, index: int) -> _native._Part:
        kind, version = expectation(self.expected, f"parts[{index}].expected")
        metadata = None if self.state_metadata is None else dict(self.state_metadata)
        return (self.state_id, native_events(self.events), kind, version, self.version_neutral, metadata)


@dataclass(frozen=True)
class AppendResult:
    #: The state's last version now; ``None`` for a version-neutral state.
    last_version: int | None
    global_positions: list[int]
    recorded_at: datetime

    @classmethod
    def from_native(cls, outcome: tuple[int | None, list[int], int]) -> AppendResult:
        return cls(outcome[0], list(outcome[1]), from_nanos(outcome[2]))


@dataclass(frozen=True)
class StateHead:
    state_id: str
    version_neutral: bool
    #: ``None`` for a version-neutral state.
    last_version: int | None
    event_count: int
    last_global_position: int
    first_recorded_at: datetime
    last_recorded_at: datetime
    metadata: dict[str, str]


@dataclass(frozen=True)
class Snapshot:
    state_id: str
    version: int
    reducer_revision: str
    payload: bytes
    content_type: str
    created_at: datetime


@dataclass(frozen=True)
class ServerInfo:
    server_version: str
    event_backend: str
    snapshot_backend: str
    durable: bool
    max_events_per_append: int
    max_payload_bytes: int
    max_snapshot_bytes: int
    max_request_bytes: int
    #: How many states one :meth:`~flipbook.Client.append_states` may write.
    max_states_per_append: int


@dataclass(frozen=True)
class LogHead:
    """How far the log is settled: every event at or below ``settled_position`` is visible and
    none can still appear there; ``event_count`` events are at or below it. (Positions are not
    dense on PostgreSQL: never count with them.)"""

    settled_position: int
    event_count: int


@dataclass(frozen=True)
class Options:
    """How a client retries, snapshots and caches (the core's defaults)."""

    #: Decide-and-append rounds before a command gives up with :class:`ConflictError`.
    max_tries: int = 10
    #: Times an append whose answer was lost is re-sent, with the same event ids.
    max_resends: int = 5
    #: Seconds a subscription keeps resuming while the server cannot be reached (a restart, a
    #: rolling deployment) before the error reaches the iteration.
    resume_for: float = 30.0
    #: Seconds; retries wait a random time up to a ceiling that doubles from here.
    first_delay: float = 0.005
    max_delay: float = 0.5
    #: Write a snapshot after this many events folded since the last one; ``None``: never.
    snapshot_every: int | None = 100
    #: The local state cache: at most this many states and bytes; 0 entries turns it off.
    cache_entries: int = 10_000
    cache_bytes: int = 64 * 1024 * 1024

    def to_native(self) -> tuple[int, int, float, float, float, int | None, int, int]:
        for name in ("max_tries", "max_resends", "snapshot_every", "cache_entries", "cache_bytes"):
            non_negative(getattr(self, name), name)
        return (
            self.max_tries,
            self.max_resends,
            self.resume_for,
            self.first_delay,
            self.max_delay,
            self.snapshot_every,
            self.cache_entries,
            self.cache_bytes,
        )


class Reducer(ABC, Generic[S]):
    """Folds a state's events into its state: subclass it, set ``revision``, define
    ``initial`` and ``apply``. States are encoded as JSON for snapshots and the cache; override
    ``encode``/``decode`` for other state types. Change ``revision`` whenever ``apply`` or the
    state's shape changes: snapshots of other revisions are then ignored."""

    revision: ClassVar[str]

    @abstractmethod
    def initial(self) -> S:
        """The state of a state id with no events."""

    @abstractmethod
    def apply(self, state: S, event: RecordedEvent) -> S:
        """The state after one more event."""

    def encode(self, state: S) -> bytes:
        return json.dumps(state, separators=(",", ":")).encode()

    def decode(self, data: bytes) -> S:
        result: S = json.loads(data)
        return result


class FunctionReducer(Reducer[S]):
    """A reducer from plain functions: ``FunctionReducer("counter-1", lambda: 0, add)``."""

    def __init__(
        self,
        revision: str,
        initial: Callable[[], S],
        apply: Callable[[S, RecordedEvent], S],
        encode: Callable[[S], bytes] | None = None,
        decode: Callable[[bytes], S] | None = None,
    ) -> None:
        self.revision = revision  # type: ignore[misc]
        self._initial, self._apply = initial, apply
        self._encode, self._decode = encode, decode

    def initial(self) -> S:
        return self._initial()

    def apply(self, state: S, event: RecordedEvent) -> S:
        return self._apply(state, event)

    def encode(self, state: S) -> bytes:
        return self._encode(state) if self._encode else super().encode(state)

    def decode(self, data: bytes) -> S:
        return self._decode(data) if self._decode else super().decode(data)


@dataclass(frozen=True)
class Loaded(Generic[S]):
    state: S
    #: The last version folded (0: the state has no events).
    version: int


@dataclass(frozen=True)
class Executed(Generic[S]):
    #: The state after the command's events.
    state: S
    version: int
    #: ``None`` when the decision was to append nothing.
    appended: AppendResult | None = None
    #: Decide-and-append rounds: more than one means conflicts were retried.
    tries: int = 1


# ---- the protocol over the core's session --------------------------------------------------

#: A native call the runner makes (blocking; the asyncio client makes it on a thread).
Call = tuple[Callable[..., Any], tuple[Any, ...]]
Protocol = Generator[Call, Any, S]


class _UserError(Exception):
    """Carries an exception of the caller's code out of a protocol generator, where Python
    would turn a ``StopIteration`` into ``RuntimeError``; the runners raise the original."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _user(function: Callable[..., T], *args: Any) -> T:
    try:
        return function(*args)
    except StopIteration as error:
        raise _UserError(error) from None


def _start(session: _native.Session | _native.StateSession, reducer: Reducer[S]) -> S:
    base = session.base()
    if base is not None:
        try:
            return reducer.decode(base[1])
        except Exception:  # a state this reducer cannot read: fold from the beginning
            session.discard_base()
    return _user(reducer.initial)


def _fold(session: _native.Session | _native.StateSession, reducer: Reducer[S], state: S) -> Generator[Call, Any, S]:
    apply = reducer.apply
    while True:
        page = yield (session.next_page, ())
        if page is None:
            return state
        try:  # around the page: a wrapper call per event costs ~60 ns (2 % of a json.loads fold)
            for event in page:
                state = apply(state, event)
        except StopIteration as error:
            raise _UserError(error) from None


def _encoded(session: _native.Session | _native.StateSession, reducer: Reducer[S], state: S) -> bytes | None:
    """The state for the cache and a snapshot. One that does not encode is neither, with a
    warning: a command's events are stored by now, and raising would invite a retry that
    stores them twice."""
    if not session.wants_state():
        return None
    try:
        return reducer.encode(state)
    except Exception as error:
        warnings.warn(f"flipbook: the {reducer.revision} state was not cached: {error!r}", RuntimeWarning, stacklevel=2)
        return None


def _finish(session: _native.Session, reducer: Reducer[S], state: S) -> Generator[Call, Any, Any]:
    return (yield (session.finish, (_encoded(session, reducer, state),)))


def _executed(state: S, finished: _native._Finished) -> Executed[S]:
    version, appended, tries = finished
    return Executed(state, version, None if appended is None else AppendResult.from_native(appended), tries)


def load_protocol(
    native: _native.NativeClient, state_id: str, reducer: Reducer[S], as_of: datetime | None
) -> Protocol[Loaded[S]]:
    as_of_nanos = None if as_of is None else to_nanos(as_of, "as_of")
    session = yield (native.load_session, (state_id, reducer.revision, as_of_nanos))
    state = _start(session, reducer)
    state = yield from _fold(session, reducer, state)
    version, _, _ = yield from _finish(session, reducer, state)
    return Loaded(state, version)


def execute_protocol(
    native: _native.NativeClient, state_id: str, reducer: Reducer[S], decide: Callable[[S], Sequence[Event]]
) -> Protocol[Executed[S]]:
    session = yield (native.execute_session, (state_id, reducer.revision))
    state = _start(session, reducer)
    while True:
        state = yield from _fold(session, reducer, state)
        if session.is_decided():
            break
        # The caller's own exception leaves here unchanged; nothing was appended.
        events = native_events(_user(decide, state))
        yield (session.submit, (events,))
    return _executed(state, (yield from _finish(session, reducer, state)))


def execute_states_protocol(
    native: _native.NativeClient,
    targets: Sequence[tuple[str, Reducer[S]]],
    decide: Callable[[list[S]], Sequence[Sequence[Event]]],
) -> Protocol[list[Executed[S]]]:
    """:func:`execute_protocol` over several states: each folded by its own reducer, one decision
    for all of them, stored in one atomic append (the core retries a conflict on any of them)."""
    reducers = [reducer for _, reducer in targets]
    command = yield (native.execute_states_session, ([(state_id, r.revision) for state_id, r in targets],))
    sessions = [command.session(i) for i in range(len(reducers))]
    states = [_start(session, reducer) for session, reducer in zip(sessions, reducers)]
    while True:
        for i, (session, reducer) in enumerate(zip(sessions, reducers)):
            states[i] = yield from _fold(session, reducer, states[i])
        if command.is_decided():
            break
        # A copy: decide may keep or change its list without touching the folded states.
        decisions = _user(decide, list(states))
        yield (command.submit, ([native_events(events) for events in decisions],))
    encoded = [_encoded(session, reducer, state) for session, reducer, state in zip(sessions, reducers, states)]
    finished = yield (command.finish, (encoded,))
    return [_executed(state, done) for state, done in zip(states, finished)]


def run(protocol: Protocol[S]) -> S:
    """Drives a protocol with blocking calls."""
    try:
        call = next(protocol)
        while True:
            function, args = call
            call = protocol.send(function(*args))
    except StopIteration as done:
        result: S = done.value
        return result
    except _UserError as wrapped:
        raise wrapped.error from None


def head_from_native(state_id: str, head: tuple[str, int, int, int, int, dict[str, str]]) -> StateHead:
    kind, count, position, first, last, metadata = head
    neutral = kind == "neutral"
    return StateHead(
        state_id, neutral, None if neutral else count, count, position, from_nanos(first), from_nanos(last), metadata
    )


def snapshot_from_native(state_id: str, found: tuple[int, str, bytes, str, int] | None) -> Snapshot | None:
    if found is None:
        return None
    version, revision, payload, content_type, created = found
    return Snapshot(state_id, version, revision, payload, content_type, from_nanos(created))


def non_negative(value: int | None, field: str) -> int | None:
    """A count or a version: refused before it reaches the core when negative."""
    if value is not None and (not isinstance(value, int) or value < 0):
        raise InvalidArgument(
            f"{field} must be a whole number >= 0, not {value!r}", code="INVALID_ARGUMENT", field=field
        )
    return value


def expectation(expected: Expected, field: str = "expected") -> tuple[str, int]:
    if isinstance(expected, _Any):
        return ("any", 0)
    if isinstance(expected, _NoState):
        return ("no_state", 0)
    if isinstance(expected, int) and not isinstance(expected, bool) and expected >= 0:
        return ("exactly", expected)
    raise InvalidArgument(
        f"{field} must be ANY, NO_STATE or a version >= 0, not {expected!r}", code="INVALID_ARGUMENT", field=field
    )


@dataclass
class ReadArgs:
    """A state read's bounds, as the native call takes them."""

    backward: bool = False
    from_version: int | None = None
    to_version: int | None = None
    limit: int | None = None
    names: list[str] = field(default_factory=list)
    as_of: datetime | None = None

    def native(self, state_id: str) -> tuple[Any, ...]:
        as_of = None if self.as_of is None else to_nanos(self.as_of, "as_of")
        bounds = (
            non_negative(self.from_version, "from_version"),
            non_negative(self.to_version, "to_version"),
            non_negative(self.limit, "limit"),
        )
        return (state_id, self.backward, *bounds, self.names, as_of)


@dataclass
class AllArgs:
    """A read-all's bounds and filters, as the native call takes them."""

    after_position: int = 0
    until_position: int | None = None
    prefix: str = ""
    names: list[str] = field(default_factory=list)
    limit: int | None = None
    backward: bool = False

    def native(self) -> tuple[Any, ...]:
        after = non_negative(self.after_position, "after_position") or 0
        until = non_negative(self.until_position, "until_position")
        return (after, until, self.prefix, self.names, non_negative(self.limit, "limit"), self.backward)


# ---- subscriptions ---------------------------------------------------------------------------

Start = Union[Literal["beginning", "now"], int]
"""Where a subscription starts: ``"beginning"`` (every stored event first), ``"now"`` (events
settled after it starts), or a position it resumes after (a saved ``position``)."""


@dataclass(frozen=True)
class Checkpoint:
    """Every event at or below ``position`` was delivered or filtered out: a position to save
    and resume after (``start=position``)."""

    position: int


def subscription_start(start: Start) -> tuple[str, int]:
    """``(start_kind, after)`` as the native ``subscribe`` takes them."""
    if start == "beginning" or start == "now":
        return (start, 0)
    if isinstance(start, int) and not isinstance(start, bool) and start >= 0:
        return ("after", start)
    raise InvalidArgument(
        f'start must be "beginning", "now" or a position >= 0, not {start!r}', code="INVALID_ARGUMENT", field="start"
    )


class Feed:
    """A subscription's messages as the iterators hand them out: the events of the page last
    received one at a time, and the position of the last thing handed out."""

    __slots__ = ("_closed", "_events", "position")

    def __init__(self) -> None:
        self._events: Iterator[RecordedEvent] = iter(())
        self._closed = False
        #: The last position handed out (an event's or a checkpoint's); ``None`` before any.
        self.position: int | None = None

    def take(self) -> RecordedEvent | None:
        """The page's next event; ``None`` when the page is used up."""
        event = next(self._events, None)
        if event is not None:
            self.position = event.global_position
        return event

    def close(self) -> None:
        """Forgets the rest of the page, and any page still on its way."""
        self._closed = True
        self._events = iter(())

    def receive(self, delivery: _native._Delivery) -> Checkpoint | None:
        """Takes a native message: a page (handed out by :meth:`take`) or a checkpoint."""
        _, value = delivery
        if self._closed:
            return None
        if isinstance(value, int):
            self.position = value
            return Checkpoint(value)
        self._events = iter(value)
        return None
