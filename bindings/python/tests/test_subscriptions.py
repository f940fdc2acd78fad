"""Subscriptions, sync and asyncio, on every backend: stored events then live ones, each once and
in order; where they start and resume; filters; checkpoints; errors; threads, cancellation,
fork and exit."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Union

import pytest
from test_fork import in_child

import flipbook
from conftest import Backend
from flipbook import Checkpoint, Event, RecordedEvent, aio

Message = Union[RecordedEvent, Checkpoint]

#: The longest a test waits for what it expects; past it the subscription is closed and the test
#: fails (instead of hanging).
PATIENCE = 60.0


@pytest.fixture
def prefix(new_id: Callable[[str], str]) -> str:
    """A prefix no other test's states have (the PostgreSQL database is shared)."""
    return new_id("sub") + "/"


def append_one_at_a_time(client: flipbook.Client, prefix: str, count: int, name: str = "Happened") -> list[int]:
    """Appends ``count`` events, one per call, to seven states under ``prefix``; their positions."""
    positions: list[int] = []
    for i in range(count):
        positions += client.append(f"{prefix}{i % 7}", Event(name, {"i": i})).global_positions
    return positions


@contextmanager
def watchdog(subscription: flipbook.Subscription | aio.Subscription) -> Iterator[None]:
    """Closes the subscription after PATIENCE seconds: a test waiting on it ends."""
    timer = threading.Timer(PATIENCE, subscription.close)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def receive_until(subscription: flipbook.Subscription, last: int) -> list[Message]:
    """Events and checkpoints until the subscription's position reaches ``last``."""
    messages: list[Message] = []
    with watchdog(subscription):
        for message in subscription.with_checkpoints():
            messages.append(message)
            if subscription.position is not None and subscription.position >= last:
                break
    assert subscription.position is not None and subscription.position >= last, f"{last} not reached: {messages}"
    return messages


def positions(messages: list[Message]) -> list[int]:
    return [m.global_position for m in messages if isinstance(m, RecordedEvent)]


def assert_in_order(messages: list[Message]) -> None:
    """Events strictly increasing; a checkpoint never below what came before it, nor an event
    at or below a checkpoint."""
    floor = 0
    for message in messages:
        if isinstance(message, RecordedEvent):
            assert message.global_position > floor, messages
            floor = message.global_position
        else:
            assert message.position >= floor, messages
            floor = message.position


# ---- the sync API ----------------------------------------------------------------------------


def test_stored_events_then_live_ones_once_in_order(backend: Backend, prefix: str) -> None:
    writer, reader = backend.connect(), backend.connect()
    stored = append_one_at_a_time(writer, prefix, 23)
    stored += writer.append(f"{prefix}batch", [Event("Batched", {"i": i}) for i in range(7)]).global_positions
    live: list[int] = []

    def append_live() -> None:
        live.extend(append_one_at_a_time(writer, prefix, 20, name="Live"))

    received: list[RecordedEvent] = []
    appender = threading.Thread(target=append_live)
    with reader.subscribe(prefix=prefix) as subscription, watchdog(subscription):
        for event in subscription:
            received.append(event)
            assert subscription.position == event.global_position
            if len(received) == len(stored):
                appender.start()  # caught up: what comes next is appended while it waits
            if len(received) == len(stored) + 20:
                break
    appender.join()

    assert [e.global_position for e in received] == stored + live
    assert all(a < b for a, b in zip(stored + live, (stored + live)[1:]))
    assert len(set(e.event_id for e in received)) == len(received)
    assert [e.name for e in received] == ["Happened"] * 23 + ["Batched"] * 7 + ["Live"] * 20
    assert [e.json() for e in received[-20:]] == [{"i": i} for i in range(20)]
    assert all(e.state_id.startswith(prefix) for e in received)
    assert subscription.position == live[-1], "the position to save"


def test_a_subscription_from_now_starts_after_the_stored_events(backend: Backend, prefix: str) -> None:
    client = backend.connect()
    stored = append_one_at_a_time(client, prefix, 5)
    with client.subscribe(prefix=prefix, start="now") as subscription, watchdog(subscription):
        messages = subscription.with_checkpoints()
        start = next(messages)
        assert isinstance(start, Checkpoint), "from now, where it starts comes first"
        assert start.position >= stored[-1]
        assert subscription.position == start.position
        live = append_one_at_a_time(client, prefix, 3)
        received = [next(messages) for _ in live]
    assert [m.global_position for m in received if isinstance(m, RecordedEvent)] == live


def test_a_subscription_resumes_after_a_saved_position(backend: Backend, prefix: str) -> None:
    client = backend.connect()
    stored = client.append(f"{prefix}one", [Event("E", {"i": i}) for i in range(10)]).global_positions
    with client.subscribe(prefix=prefix) as first:
        taken = [next(first) for _ in range(4)]  # one page: the position is the last event taken
        saved = first.position
    assert saved == taken[-1].global_position == stored[3]
    assert list(first) == [], "a closed subscription ends"

    with client.subscribe(prefix=prefix, start=saved) as resumed, watchdog(resumed):
        rest = [next(resumed) for _ in range(6)]
    assert [e.global_position for e in rest] == stored[4:]
    assert [e.json() for e in rest] == [{"i": i} for i in range(4, 10)]

    with client.subscribe(prefix=prefix, start=stored[-1]) as at_the_end, watchdog(at_the_end):
        later = append_one_at_a_time(client, prefix, 1)
        assert next(at_the_end).global_position == later[0]


def test_filters_by_prefix_and_names(backend: Backend, prefix: str) -> None:
    client = backend.connect()
    mine, other = f"{prefix}mine/", f"{prefix}other/"
    subscription = client.subscribe(prefix=mine, names=["Deposited", "Withdrawn"])
    expected: list[int] = []
    last = 0
    for i in range(12):
        name = ["Deposited", "Noted", "Withdrawn"][i % 3]
        outcome = client.append(f"{mine}{i % 2}", Event(name, {"i": i}))
        if name != "Noted":
            expected += outcome.global_positions
        last = client.append(f"{other}{i}", Event("Deposited", {"i": i})).global_positions[-1]

    with subscription:
        messages = receive_until(subscription, last)
    assert_in_order(messages)
    events = [m for m in messages if isinstance(m, RecordedEvent)]
    assert [e.global_position for e in events] == expected
    assert {e.name for e in events} == {"Deposited", "Withdrawn"}
    assert all(e.state_id.startswith(mine) for e in events)


def test_checkpoints_when_nothing_matches(backend: Backend, prefix: str) -> None:
    client = backend.connect()
    with client.subscribe(prefix=f"{prefix}nothing/") as subscription, watchdog(subscription):
        messages = subscription.with_checkpoints()
        caught_up = next(messages)
        assert isinstance(caught_up, Checkpoint), "caught up with the (empty) past"
        elsewhere = append_one_at_a_time(client, f"{prefix}elsewhere/", 5)
        received = receive_until(subscription, elsewhere[-1])
    assert received and all(isinstance(m, Checkpoint) for m in received), received
    assert_in_order([caught_up, *received])
    last = received[-1]
    assert isinstance(last, Checkpoint) and subscription.position == last.position


@pytest.mark.parametrize(
    ("arguments", "field"),
    [({"names": ["Deposited", ""]}, "names[1]"), ({"prefix": "bad\x01prefix"}, "state_id_prefix")],
    ids=["names", "prefix"],
)
def test_an_invalid_filter_raises_invalid_argument(
    client: flipbook.Client, arguments: dict[str, object], field: str
) -> None:
    subscription = client.subscribe(**arguments)  # type: ignore[arg-type]
    with pytest.raises(flipbook.InvalidArgument) as raised:
        next(subscription)
    assert raised.value.field == field
    assert raised.value.code == "INVALID_ARGUMENT"
    assert not raised.value.retryable
    assert subscription.position is None
    assert list(subscription) == [], "the error ended it"

    for start in (-1, "later", True, 1.5):
        with pytest.raises(flipbook.InvalidArgument) as refused:
            client.subscribe(start=start)  # type: ignore[arg-type]
        assert refused.value.field == "start"


def test_a_waiting_thread_blocks_no_other_thread_and_close_ends_its_wait(backend: Backend, prefix: str) -> None:
    client = backend.connect()
    subscription = client.subscribe(prefix=prefix)
    received: list[RecordedEvent] = []
    waiting = threading.Event()

    def subscriber() -> None:
        waiting.set()
        received.extend(subscription)  # waits in native code until closed

    thread = threading.Thread(target=subscriber, daemon=True)
    thread.start()
    waiting.wait()
    time.sleep(0.2)  # it is waiting for events now

    # With the GIL held by the waiting thread, this thread would barely count.
    count, deadline = 0, time.monotonic() + 0.5
    while time.monotonic() < deadline:
        count += 1
    assert count > 200_000, f"counted to {count} in 0.5 s"

    appended = append_one_at_a_time(client, prefix, 3)
    deadline = time.monotonic() + PATIENCE
    while len(received) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [e.global_position for e in received] == appended
    assert thread.is_alive()

    started = time.monotonic()
    subscription.close()
    thread.join(timeout=PATIENCE)
    assert not thread.is_alive(), "close() ended the waiting iteration"
    assert time.monotonic() - started < 5
    assert subscription.position == appended[-1]


def test_a_subscription_begun_before_fork_is_refused_in_the_child(backend: Backend, prefix: str) -> None:
    client = backend.connect()
    first = client.append(f"{prefix}1", Event("First")).global_positions[0]
    subscription = client.subscribe(prefix=prefix)
    assert next(subscription).global_position == first

    def child() -> None:
        try:
            next(subscription)
        except RuntimeError as refused:
            assert "before fork()" in str(refused)
        else:
            raise AssertionError("a subscription of the parent's connection went on in the child")
        # One begun in the child works.
        assert next(client.subscribe(prefix=prefix)).global_position == first

    assert in_child(child) == 0
    with subscription, watchdog(subscription):
        second = client.append(f"{prefix}1", Event("Second")).global_positions[0]
        assert next(subscription).global_position == second, "the parent's subscription goes on"


# ---- asyncio ---------------------------------------------------------------------------------


def test_asyncio_stored_then_live_and_resumed(backend: Backend, prefix: str) -> None:
    async def main() -> None:
        client = await backend.connect_aio()
        stored: list[int] = []
        for i in range(10):
            stored += (await client.append(f"{prefix}{i % 3}", Event("Stored", {"i": i}))).global_positions
        live: list[int] = []

        async def append_live() -> None:
            for i in range(10):
                live.extend((await client.append(f"{prefix}{i % 3}", Event("Live", {"i": i}))).global_positions)

        received: list[RecordedEvent] = []
        appending: asyncio.Task[None] | None = None
        async with client.subscribe(prefix=prefix) as subscription:
            with watchdog(subscription):
                async for event in subscription:
                    received.append(event)
                    if len(received) == len(stored):
                        appending = asyncio.ensure_future(append_live())
                    if len(received) == 20:
                        break
        assert appending is not None
        await appending
        assert [e.global_position for e in received] == stored + live
        assert [e.name for e in received] == ["Stored"] * 10 + ["Live"] * 10
        assert subscription.position == live[-1]

        # Resumed after a saved position, with checkpoints.
        resumed = client.subscribe(prefix=prefix, start=stored[4])
        with watchdog(resumed):
            messages = [m async for m in _take(resumed.with_checkpoints(), 15)]
        resumed.close()
        assert positions(messages) == stored[5:] + live
        assert [m async for m in resumed] == [], "closed"

        # From now: a checkpoint first; then only what is appended later.
        now = client.subscribe(prefix=prefix, start="now")
        with watchdog(now):
            start = await now.with_checkpoints().__anext__()
            assert isinstance(start, Checkpoint) and start.position >= live[-1]
            later = (await client.append(f"{prefix}x", Event("Later"))).global_positions
            assert (await now.__anext__()).global_position == later[0]
        await now.aclose()

        # An invalid filter, at the first step.
        with pytest.raises(flipbook.InvalidArgument) as raised:
            await client.subscribe(names=[""]).__anext__()
        assert raised.value.field == "names[0]"

    asyncio.run(main())


async def _take(messages: AsyncIterator[Message], count: int) -> AsyncIterator[Message]:
    """The first ``count`` events of ``messages`` (and the checkpoints among them)."""
    events = 0
    async for message in messages:
        yield message
        events += isinstance(message, RecordedEvent)
        if events == count:
            return


def test_asyncio_cancelled_steps_lose_nothing(backend: Backend, prefix: str) -> None:
    async def main() -> None:
        client = await backend.connect_aio()
        subscription = client.subscribe(prefix=prefix)
        appended: list[int] = []

        async def append() -> None:
            for i in range(30):
                appended.extend((await client.append(f"{prefix}{i % 5}", Event("E", {"i": i}))).global_positions)
                await asyncio.sleep(random.uniform(0, 0.02))

        appending = asyncio.ensure_future(append())
        received: list[RecordedEvent] = []
        timeouts = 0
        with watchdog(subscription):
            while len(received) < 30:
                try:
                    # Steps cancelled at random, while waits are running on the pool.
                    received.append(await asyncio.wait_for(subscription.__anext__(), random.uniform(0.001, 0.03)))
                except asyncio.TimeoutError:
                    timeouts += 1
        await appending
        subscription.close()
        assert [e.global_position for e in received] == appended
        assert timeouts > 0, "no step was cancelled: the test proves nothing"

    asyncio.run(main())


def test_asyncio_a_waiting_subscription_leaves_the_loop_free(backend: Backend, prefix: str) -> None:
    async def main() -> None:
        client = await backend.connect_aio()
        subscription = client.subscribe(prefix=prefix)
        waiting = asyncio.ensure_future(subscription.__anext__())
        ticks = 0
        for _ in range(20):
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 20 and not waiting.done()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        # The cancelled step kept its wait: what arrives now is the next step's.
        appended = (await client.append(f"{prefix}1", Event("E"))).global_positions
        with watchdog(subscription):
            assert (await subscription.__anext__()).global_position == appended[0]
        # close() from another task ends a waiting step.
        waiting = asyncio.ensure_future(subscription.__anext__())
        await asyncio.sleep(0.05)
        subscription.close()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(waiting, PATIENCE)

    asyncio.run(main())


# ---- the interpreter's exit ------------------------------------------------------------------

EXIT_SCRIPT = """
import asyncio, sys, threading, time
import flipbook
from flipbook import aio

where, prefix = sys.argv[1:3]
server = where.startswith("http")

def connect():
    return flipbook.Client.connect(where) if server else flipbook.Client.open_embedded(where)

client = connect()
client.append(prefix + "1", flipbook.Event("Tick"))

def forever():
    for event in client.subscribe(prefix=prefix):
        pass

for _ in range(2):  # daemon threads waiting in native code when the interpreter exits
    threading.Thread(target=forever, daemon=True).start()

async def main():
    aclient = await (aio.Client.connect(where) if server else aio.Client.open_embedded(where))
    subscription = aclient.subscribe(prefix=prefix)
    async for event in subscription:
        break
    asyncio.ensure_future(subscription.__anext__())  # pending when the loop ends
    abandoned = aclient.subscribe(prefix=prefix, start="now")
    asyncio.ensure_future(abandoned.__anext__())
    await asyncio.sleep(0.05)

asyncio.run(main())
time.sleep(0.05)
"""


def test_the_interpreter_exits_with_subscriptions_waiting(backend: Backend, prefix: str) -> None:
    where = backend.endpoint or str(backend.path)
    started = time.monotonic()
    process = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", EXIT_SCRIPT, where, prefix],
        capture_output=True,
        text=True,
        timeout=PATIENCE,
    )
    assert process.returncode == 0, process.stderr
    assert "Fatal Python error" not in process.stderr and "panicked" not in process.stderr, process.stderr
    assert time.monotonic() - started < 30
