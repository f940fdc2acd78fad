"""The asyncio client: the same API as :class:`flipbook.Client`, as coroutines and async
iterators. Native calls that wait run on a thread pool of this module (the GIL released), and
your reducer and decide function run in the event loop's thread. No native thread ever calls
into Python, so nothing is left to deliver when the interpreter exits.

Cancelling a task stops it at its next ``await``; a native call already running finishes on its
thread (an append sent is not taken back: its event ids make sending it again safe)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from os import PathLike
from types import TracebackType
from typing import Any, TypeVar

from flipbook import _client, _native
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
    Protocol,
    Reducer,
    S,
    ServerInfo,
    Snapshot,
    Start,
    StateHead,
    _UserError,
    execute_protocol,
    execute_states_protocol,
    load_protocol,
    subscription_start,
)
from flipbook._native import RecordedEvent

T = TypeVar("T")

_executor: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="flipbook")
    return _executor


def _forget_pool() -> None:
    # A pool's threads do not survive fork(): the child makes its own.
    global _executor
    _executor = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


async def _call(function: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(_pool(), function, *args)


async def _run(protocol: Protocol[S]) -> S:
    try:
        call = next(protocol)
        while True:
            function, args = call
            call = protocol.send(await _call(function, *args))
    except StopIteration as done:
        result: S = done.value
        return result
    except _UserError as wrapped:
        raise wrapped.error from None


async def _events(pages: AsyncIterator[list[RecordedEvent]]) -> AsyncIterator[RecordedEvent]:
    async for page in pages:
        for event in page:
            yield event


# ---- subscriptions ---------------------------------------------------------------------------

#: How long one native wait of a subscription lasts: a cancelled iteration leaves at most this on
#: a pool thread, and the interpreter's exit waits at most this for it.
_POLL_SECONDS = 0.2


class _Ended:
    pass


_ENDED = _Ended()


def _poll(native: _native.NativeSubscription) -> _native._Delivery | _Ended | None:
    try:
        return native.next(_POLL_SECONDS)
    except StopIteration:  # cannot cross into an asyncio future
        return _ENDED


class Subscription:
    """The asyncio face of :class:`flipbook.Subscription`: ``async for event in subscription``.
    Waits run on the module's thread pool a short while at a time. Cancelling the iterating task
    loses nothing: a wait already running on a thread keeps what it receives for the next step."""

    def __init__(self, native: _native.NativeSubscription) -> None:
        self._native = native
        self._feed = Feed()
        self._pending: concurrent.futures.Future[_native._Delivery | _Ended | None] | None = None
        self._pid = os.getpid()

    @property
    def position(self) -> int | None:
        """The position of the last event or checkpoint handed out (see
        :attr:`flipbook.Subscription.position`)."""
        return self._feed.position

    async def _receive(self) -> _native._Delivery:
        while True:
            pending = self._pending
            if pending is None or pending.cancelled() or self._pid != os.getpid():
                # (A wait of the parent's pool never ends in a forked child; the native call
                # refuses a subscription begun before the fork.)
                pending = self._pending = _pool().submit(_poll, self._native)
            try:
                # Shielded: a cancelled caller leaves the wait running, and the next step takes its
                # answer.
                delivery = await asyncio.shield(asyncio.wrap_future(pending))
            except asyncio.CancelledError:
                raise
            except BaseException:
                self._pending = None
                raise
            self._pending = None
            if isinstance(delivery, _Ended):
                raise StopAsyncIteration
            if delivery is not None:
                return delivery

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> RecordedEvent:
        while isinstance(message := await self._next_message(), Checkpoint):
            pass
        return message

    async def _next_message(self) -> RecordedEvent | Checkpoint:
        while True:
            event = self._feed.take()
            if event is not None:
                return event
            checkpoint = self._feed.receive(await self._receive())
            if checkpoint is not None:
                return checkpoint

    def with_checkpoints(self) -> AsyncIterator[RecordedEvent | Checkpoint]:
        """The same subscription, with :class:`~flipbook.Checkpoint` objects too."""
        return _WithCheckpoints(self)

    def close(self) -> None:
        """Ends the subscription (never waits); an iteration waiting on it stops."""
        self._native.close()
        self._feed.close()

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


class _WithCheckpoints:
    def __init__(self, subscription: Subscription) -> None:
        self._subscription = subscription

    def __aiter__(self) -> _WithCheckpoints:
        return self

    async def __anext__(self) -> RecordedEvent | Checkpoint:
        return await self._subscription._next_message()


class Client:
    """The asyncio face of :class:`flipbook.Client`: ``client = await Client.connect(...)``, or
    ``async with await Client.open_embedded(...) as client:`` to close it at the end."""

    def __init__(self, sync: _client.Client) -> None:
        self._sync = sync

    @property
    def sync(self) -> _client.Client:
        """The same client with blocking calls (they share the connection and the cache)."""
        return self._sync

    @classmethod
    async def connect(
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
        def connect() -> _client.Client:
            return _client.Client.connect(
                endpoint,
                token=token,
                ca_certificate=ca_certificate,
                tls_domain=tls_domain,
                connect_timeout=connect_timeout,
                request_timeout=request_timeout,
                options=options,
            )

        return cls(await _call(connect))

    @classmethod
    async def open_embedded(cls, path: str | PathLike[str], *, options: Options | None = None) -> Client:
        return cls(await _call(lambda: _client.Client.open_embedded(path, options=options)))

    @classmethod
    def in_memory(cls, *, options: Options | None = None) -> Client:
        return cls(_client.Client.in_memory(options=options))

    async def close(self) -> None:
        """See :meth:`flipbook.Client.close` (this closes :attr:`sync` too: they are one client)."""
        await _call(self._sync.close)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.close()

    async def load(self, state_id: str, reducer: Reducer[S], *, as_of: datetime | None = None) -> Loaded[S]:
        return await _run(load_protocol(self._sync._native, state_id, reducer, as_of))

    async def execute(self, state_id: str, reducer: Reducer[S], decide: Callable[[S], Sequence[Event]]) -> Executed[S]:
        return await _run(execute_protocol(self._sync._native, state_id, reducer, decide))

    async def execute_states(
        self,
        targets: Sequence[tuple[str, Reducer[S]]],
        decide: Callable[[list[S]], Sequence[Sequence[Event]]],
    ) -> list[Executed[S]]:
        """See :meth:`flipbook.Client.execute_states`; ``decide`` runs in the event loop's thread."""
        return await _run(execute_states_protocol(self._sync._native, targets, decide))

    async def append(
        self,
        state_id: str,
        events: Event | Sequence[Event],
        *,
        expected: Expected = ANY,
        version_neutral: bool = False,
        state_metadata: dict[str, str] | None = None,
    ) -> AppendResult:
        def append() -> AppendResult:
            return self._sync.append(
                state_id, events, expected=expected, version_neutral=version_neutral, state_metadata=state_metadata
            )

        return await _call(append)

    async def append_states(self, parts: Sequence[AppendPart]) -> list[AppendResult]:
        """See :meth:`flipbook.Client.append_states`."""
        return await _call(self._sync.append_states, parts)

    async def read_pages(
        self,
        state_id: str,
        *,
        backward: bool = False,
        from_version: int | None = None,
        to_version: int | None = None,
        limit: int | None = None,
        names: Sequence[str] = (),
        as_of: datetime | None = None,
    ) -> AsyncIterator[list[RecordedEvent]]:
        """See :meth:`flipbook.Client.read_pages`."""
        pages = self._sync.read_pages(
            state_id,
            backward=backward,
            from_version=from_version,
            to_version=to_version,
            limit=limit,
            names=names,
            as_of=as_of,
        )
        while (page := await _call(next, pages, None)) is not None:
            yield page

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
    ) -> AsyncIterator[RecordedEvent]:
        """``async for``: see :meth:`flipbook.Client.read` (bounds inclusive, either direction)."""
        return _events(
            self.read_pages(
                state_id,
                backward=backward,
                from_version=from_version,
                to_version=to_version,
                limit=limit,
                names=names,
                as_of=as_of,
            )
        )

    async def _all_pages(self, args: AllArgs) -> AsyncIterator[list[RecordedEvent]]:
        pages = self._sync._native.read_all(*args.native())
        while (page := await _call(pages.next_page)) is not None:
            yield page

    def read_all(
        self,
        *,
        after_position: int = 0,
        until_position: int | None = None,
        prefix: str = "",
        names: Sequence[str] = (),
        limit: int | None = None,
        backward: bool = False,
    ) -> AsyncIterator[RecordedEvent]:
        """``async for event in client.read_all(...)``: see :meth:`flipbook.Client.read_all`."""
        return _events(self._all_pages(AllArgs(after_position, until_position, prefix, list(names), limit, backward)))

    async def log_head(self) -> LogHead:
        return await _call(self._sync.log_head)

    def subscribe(self, *, prefix: str = "", names: Sequence[str] = (), start: Start = "beginning") -> Subscription:
        """``async for event in client.subscribe(...)``: see :meth:`flipbook.Client.subscribe`."""
        kind, after = subscription_start(start)
        return Subscription(self._sync._native.subscribe(kind, after, prefix, list(names)))

    async def head(self, state_id: str) -> StateHead:
        return await _call(self._sync.head, state_id)

    async def put_snapshot(
        self, state_id: str, version: int, reducer_revision: str, payload: bytes, content_type: str = "application/json"
    ) -> None:
        await _call(self._sync.put_snapshot, state_id, version, reducer_revision, payload, content_type)

    async def get_snapshot(
        self, state_id: str, reducer_revision: str, *, max_version: int | None = None
    ) -> Snapshot | None:
        return await _call(lambda: self._sync.get_snapshot(state_id, reducer_revision, max_version=max_version))

    async def delete_snapshots(self, state_id: str) -> int:
        return await _call(self._sync.delete_snapshots, state_id)

    async def flush_snapshots(self) -> None:
        await _call(self._sync.flush_snapshots)

    async def server_info(self) -> ServerInfo:
        return await _call(self._sync.server_info)
