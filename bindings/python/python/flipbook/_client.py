"""The synchronous client. Every call that waits releases the GIL: other Python threads run
while one waits on the network or the disk."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from os import PathLike
from types import TracebackType

from flipbook import _native
from flipbook._model import (
    ANY,
    AllArgs,
    AppendPart,
    AppendResult,
    Checkpoint,
    Event,
    Executed,
    Expected,
    Feed,
    Loaded,
    LogHead,
    Options,
    ReadArgs,
    Reducer,
    S,
    ServerInfo,
    Snapshot,
    Start,
    StateHead,
    execute_protocol,
    execute_states_protocol,
    expectation,
    head_from_native,
    load_protocol,
    native_events,
    non_negative,
    run,
    snapshot_from_native,
    subscription_start,
)
from flipbook._native import RecordedEvent


def _pages(pages: _native.Pages) -> Iterator[list[RecordedEvent]]:
    while (page := pages.next_page()) is not None:
        yield page


class Subscription:
    """Every event of the store after its start (stored ones first, then live ones as they are
    appended), each once, in global-position order: iterate it for the events, or
    :meth:`with_checkpoints` for :class:`Checkpoint` objects too. Broken connections are resumed by
    the core; an error that ends the subscription is raised from the iteration (invalid filters,
    as :class:`~flipbook.errors.InvalidArgument`, at the first step). Waiting releases the GIL;
    :meth:`close` (from any thread) ends a waiting iteration. Pages are fetched as you iterate."""

    def __init__(self, native: _native.NativeSubscription) -> None:
        self._native = native
        self._feed = Feed()

    @property
    def position(self) -> int | None:
        """The position of the last event or checkpoint handed out: every event at or below it
        was handed out or filtered out. Save it and subscribe again with ``start=position`` to
        go on after it. ``None`` before the first."""
        return self._feed.position

    def __iter__(self) -> Subscription:
        return self

    def __next__(self) -> RecordedEvent:
        while isinstance(message := self._next_message(), Checkpoint):
            pass
        return message

    def _next_message(self) -> RecordedEvent | Checkpoint:
        while True:
            event = self._feed.take()
            if event is not None:
                return event
            checkpoint = self._receive()
            if checkpoint is not None:
                return checkpoint

    def _receive(self) -> Checkpoint | None:
        # Waits with the GIL released (no timeout: never None); StopIteration once closed or ended.
        delivery = self._native.next()
        return None if delivery is None else self._feed.receive(delivery)

    def with_checkpoints(self) -> Iterator[RecordedEvent | Checkpoint]:
        """The same subscription, with a :class:`Checkpoint` whenever the store moved past
        events that did not match (and, from ``"now"``, first: where it starts)."""
        return _WithCheckpoints(self)

    def close(self) -> None:
        """Ends the subscription (a thread waiting for its next event stops iterating)."""
        self._native.close()
        self._feed.close()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


class _WithCheckpoints:
    def __init__(self, subscription: Subscription) -> None:
        self._subscription = subscription

    def __iter__(self) -> _WithCheckpoints:
        return self

    def __next__(self) -> RecordedEvent | Checkpoint:
        return self._subscription._next_message()


class Client:
    """A connection to Flipbook (a server, or an embedded SQLite file, or memory). Thread-safe;
    share one per process. Make one with :meth:`connect`, :meth:`open_embedded` or
    :meth:`in_memory`; :meth:`close` it (or use it as ``with Client.open_embedded(...) as
    client:``) to release its connection or file before it is garbage-collected."""

    def __init__(self, native: _native.NativeClient) -> None:
        self._native = native

    @classmethod
    def connect(
        cls,
        endpoint: str = "http://127.0.0.1:7420",
        *,
        token: str | None = None,
        ca_certificate: bytes | None = None,
        tls_domain: str | None = None,
        connect_timeout: float = 5.0,
        request_timeout: float = 30.0,
        options: Options | None = None,
    ) -> Client:
        """Connects to a server. ``https://`` endpoints use TLS: ``ca_certificate`` (PEM) for a
        private CA. ``token`` is sent as ``authorization: Bearer <token>``."""
        native = _native.NativeClient.connect(
            endpoint,
            token,
            ca_certificate,
            tls_domain,
            connect_timeout,
            request_timeout,
            (options or Options()).to_native(),
        )
        return cls(native)

    @classmethod
    def open_embedded(cls, path: str | PathLike[str], *, options: Options | None = None) -> Client:
        """The same API over a SQLite file in this process (created when missing), no server."""
        return cls(_native.NativeClient.open_embedded(str(path), (options or Options()).to_native()))

    @classmethod
    def in_memory(cls, *, options: Options | None = None) -> Client:
        """Everything in this process's memory, gone with the client: for unit tests."""
        return cls(_native.NativeClient.in_memory((options or Options()).to_native()))

    def close(self) -> None:
        """Releases the connection, or the embedded SQLite file, now (after waiting for the
        snapshots being written in the background). Every call after it raises
        :class:`~flipbook.errors.Unavailable` with code ``"CLOSED"`` (not retryable); closing
        again does nothing. A call already running finishes first; a read or subscription begun
        before raises the same when it goes on."""
        self._native.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    # ---- the high level --------------------------------------------------------------------

    def load(self, state_id: str, reducer: Reducer[S], *, as_of: datetime | None = None) -> Loaded[S]:
        """The state now (local cache, then the newest snapshot, then the events after it), or
        as it was at ``as_of``: only events whose timestamp is at or before it count."""
        return run(load_protocol(self._native, state_id, reducer, as_of))

    def execute(self, state_id: str, reducer: Reducer[S], decide: Callable[[S], Sequence[Event]]) -> Executed[S]:
        """Runs a command: ``decide(state)`` returns the events to append (maybe none). On a
        version conflict the state is brought up to date and ``decide`` runs again, with the
        client's retry policy. An exception from ``decide`` propagates unchanged and appends
        nothing; after the last try a :class:`~flipbook.errors.ConflictError` is raised."""
        return run(execute_protocol(self._native, state_id, reducer, decide))

    def execute_states(
        self,
        targets: Sequence[tuple[str, Reducer[S]]],
        decide: Callable[[list[S]], Sequence[Sequence[Event]]],
    ) -> list[Executed[S]]:
        """Runs a command over several states: ``targets`` are ``(state_id, reducer)`` pairs
        (a state at most once); ``decide(states)`` gets their states in that order and returns
        one list of events per state (an empty one: that state is not written). The events are
        stored in one atomic append, each state expected at the version it was folded to. On a
        conflict on any of them every state is brought up to date and ``decide`` runs again, as
        :meth:`execute` does. Returns one :class:`Executed` per state, in order.

        With reducers of different state types, annotate them as ``Reducer[Any]``."""
        return run(execute_states_protocol(self._native, targets, decide))

    # ---- the low level ---------------------------------------------------------------------

    def append(
        self,
        state_id: str,
        events: Event | Sequence[Event],
        *,
        expected: Expected = ANY,
        version_neutral: bool = False,
        state_metadata: dict[str, str] | None = None,
    ) -> AppendResult:
        """Appends events to one state atomically. ``expected``: :data:`ANY`, :data:`NO_STATE`,
        or the state's current version. A lost answer is re-sent with the same event ids."""
        kind, version = expectation(expected)
        outcome = self._native.append(state_id, native_events(events), kind, version, version_neutral, state_metadata)
        return AppendResult.from_native(outcome)

    def append_states(self, parts: Sequence[AppendPart]) -> list[AppendResult]:
        """Appends to several states atomically: every part is stored, or none is. Each part is
        what :meth:`append` takes for one state, each state in one part at most. A part that
        fails fails the whole: its :class:`~flipbook.errors.ConflictError` names the part's
        ``state_id`` and ``actual_version``; an invalid argument's ``field`` names the part
        (``parts[1].events[0].name``). One result per part, in order; the global positions of
        the request are contiguous, in part order. A lost answer is re-sent, as for
        :meth:`append`."""
        outcomes = self._native.append_states([part.to_native(i) for i, part in enumerate(parts)])
        return [AppendResult.from_native(outcome) for outcome in outcomes]

    def read_pages(
        self,
        state_id: str,
        *,
        backward: bool = False,
        from_version: int | None = None,
        to_version: int | None = None,
        limit: int | None = None,
        names: Sequence[str] = (),
        as_of: datetime | None = None,
    ) -> Iterator[list[RecordedEvent]]:
        """A state's events page by page (pages are fetched as you iterate), as :meth:`read`
        selects them."""
        args = ReadArgs(backward, from_version, to_version, limit, list(names), as_of)
        return _pages(self._native.read_state(*args.native(state_id)))

    def read(
        self,
        state_id: str,
        *,
        backward: bool = False,
        from_version: int | None = None,
        to_version: int | None = None,
        limit: int | None = None,
        names: Sequence[str] = (),
        as_of: datetime | None = None,
    ) -> Iterator[RecordedEvent]:
        """A state's events, one by one (fetched a page at a time): in version order, or from
        the newest with ``backward``. ``from_version`` and ``to_version`` bound the versions read,
        both inclusive, in either direction (``from_version=3, to_version=6, backward=True``
        gives 6, 5, 4, 3); ``limit`` takes the first that many in the read's direction. ``names``
        keeps only events of those names; ``as_of`` only events whose timestamp is at or before
        it (time-neutral ones always)."""
        pages = self.read_pages(
            state_id,
            backward=backward,
            from_version=from_version,
            to_version=to_version,
            limit=limit,
            names=names,
            as_of=as_of,
        )
        return (event for page in pages for event in page)

    def read_all(
        self,
        *,
        after_position: int = 0,
        until_position: int | None = None,
        prefix: str = "",
        names: Sequence[str] = (),
        limit: int | None = None,
        backward: bool = False,
    ) -> Iterator[RecordedEvent]:
        """Events of the store after ``after_position`` and up to ``until_position``, in
        global-position order (newest first when ``backward``). The read never goes above the
        settled position it finds when it starts, so polling from the last position seen misses
        nothing."""
        args = AllArgs(after_position, until_position, prefix, list(names), limit, backward)
        pages = _pages(self._native.read_all(*args.native()))
        return (event for page in pages for event in page)

    def log_head(self) -> LogHead:
        """How far the log is settled, and how many events that covers."""
        return LogHead(*self._native.log_head())

    def subscribe(self, *, prefix: str = "", names: Sequence[str] = (), start: Start = "beginning") -> Subscription:
        """Every event of the store whose state id starts with ``prefix`` (and whose name is one
        of ``names``, when given), stored ones then live ones, once and in order. ``start``:
        ``"beginning"``, ``"now"`` (events settled after the subscription starts, which is at its
        first step), or a saved :attr:`Subscription.position` to go on after."""
        kind, after = subscription_start(start)
        return Subscription(self._native.subscribe(kind, after, prefix, list(names)))

    def head(self, state_id: str) -> StateHead:
        """The state's head ("version 0"); :class:`~flipbook.errors.NotFound` if it has no events."""
        return head_from_native(state_id, self._native.head(state_id))

    def put_snapshot(
        self, state_id: str, version: int, reducer_revision: str, payload: bytes, content_type: str = "application/json"
    ) -> None:
        version = non_negative(version, "version") or 0
        self._native.put_snapshot(state_id, version, reducer_revision, payload, content_type)

    def get_snapshot(self, state_id: str, reducer_revision: str, *, max_version: int | None = None) -> Snapshot | None:
        """The newest snapshot of the revision (at or below ``max_version``), or ``None``."""
        found = self._native.get_snapshot(state_id, reducer_revision, non_negative(max_version, "max_version"))
        return snapshot_from_native(state_id, found)

    def delete_snapshots(self, state_id: str) -> int:
        """Deletes every snapshot of the state; returns how many there were."""
        return self._native.delete_snapshots(state_id)

    def server_info(self) -> ServerInfo:
        return ServerInfo(*self._native.server_info())

    def flush_snapshots(self) -> None:
        """Waits for the snapshots that loads and commands are writing in the background
        (commands never wait for them): before exiting, or to read them back."""
        self._native.flush_snapshots()

    def cache_usage(self) -> tuple[int, int]:
        """(states, bytes) held in the local state cache."""
        return self._native.cache_usage()
