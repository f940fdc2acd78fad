"""Client.close() and ``with`` / ``async with``: the connection or the embedded file is released,
later calls raise Unavailable (code CLOSED, not retryable), a second close does nothing."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import pytest

import flipbook
from conftest import Backend, Ledger, deposit
from flipbook import AppendPart, Event, aio

#: Every kind of call a closed client must refuse.
CALLS: list[Callable[[flipbook.Client, str], object]] = [
    lambda c, s: c.append(s, Event("A")),
    lambda c, s: c.append_states([AppendPart(s, Event("A"))]),
    lambda c, s: list(c.read(s)),
    lambda c, s: list(c.read_all(limit=1)),
    lambda c, s: c.head(s),
    lambda c, s: c.load(s, Ledger()),
    lambda c, s: c.execute(s, Ledger(), deposit(1)),
    lambda c, s: c.execute_states([(s, Ledger())], lambda states: [[]]),
    lambda c, s: next(c.subscribe()),
    lambda c, s: c.get_snapshot(s, "rev"),
    lambda c, s: c.server_info(),
    lambda c, s: c.cache_usage(),
    lambda c, s: c.flush_snapshots(),
]


def assert_closed(error: flipbook.FlipbookError) -> None:
    assert type(error) is flipbook.Unavailable
    assert error.code == "CLOSED"
    assert not error.retryable, "a closed client does not come back"
    assert "closed" in str(error)


def open_files(path: Path) -> list[str]:
    """This process's open files of the SQLite database at ``path`` (with its -wal and -shm)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile (the listing's own descriptor)
            continue
        if target.startswith(str(path)):
            found.append(target)
    return found


def assert_released(path: Path) -> None:
    # close() returns once the store's writer thread has stopped and its connections are closed.
    assert open_files(path) == []


def test_calls_after_close_raise(backend: Backend, state_id: str) -> None:
    client = backend.connect()
    client.append(state_id, Event("Deposited", {"amount": 1}))
    client.close()
    for call in CALLS:
        with pytest.raises(flipbook.Unavailable) as raised:
            call(client, state_id)
        assert_closed(raised.value)
    client.close()  # harmless
    assert backend.connect().head(state_id).event_count == 1, "other clients are not closed"


def test_close_releases_the_embedded_file(tmp_path: Path, state_id: str) -> None:
    path = tmp_path / "closing.db"
    client = flipbook.Client.open_embedded(path, options=flipbook.Options(snapshot_every=1))
    client.execute(state_id, Ledger(), deposit(5))  # a snapshot write in the background too
    assert open_files(path)
    client.close()
    assert_released(path)
    client.close()

    again = flipbook.Client.open_embedded(path)
    assert again.load(state_id, Ledger()).state.balance == 5
    snapshot = again.get_snapshot(state_id, Ledger.revision)
    assert snapshot is not None and snapshot.version == 1, "the snapshot being written was written"
    again.close()
    assert_released(path)


def test_with_closes_the_client(backend: Backend, state_id: str) -> None:
    with backend.connect() as client:
        client.append(state_id, Event("A"))
    with pytest.raises(flipbook.Unavailable) as raised:
        client.head(state_id)
    assert_closed(raised.value)

    with pytest.raises(ZeroDivisionError), backend.connect() as failing:  # closed on the way out too
        raise ZeroDivisionError
    with pytest.raises(flipbook.Unavailable):
        failing.head(state_id)


def test_with_releases_the_embedded_file(tmp_path: Path, state_id: str) -> None:
    path = tmp_path / "with.db"
    with flipbook.Client.open_embedded(path) as client:
        client.append(state_id, Event("A"))
    assert_released(path)
    with flipbook.Client.open_embedded(path) as client:
        assert [e.name for e in client.read(state_id)] == ["A"]


def test_a_read_begun_before_close_raises_closed_when_it_goes_on(backend: Backend, state_id: str) -> None:
    client = backend.connect()
    for _ in range(2):  # several pages
        client.append(state_id, [Event("E") for _ in range(1000)])
    events = client.read(state_id)
    assert next(events).version == 1
    subscription = client.subscribe(prefix=state_id)
    client.close()
    with pytest.raises(flipbook.Unavailable) as raised:
        list(events)
    assert_closed(raised.value)
    with pytest.raises(flipbook.Unavailable) as raised:
        list(subscription)
    assert_closed(raised.value)


def test_close_in_memory() -> None:
    client = flipbook.Client.in_memory()
    client.append("w", Event("A"))
    client.close()
    with pytest.raises(flipbook.Unavailable) as raised:
        client.head("w")
    assert_closed(raised.value)


def test_asyncio_close_and_async_with(backend: Backend, state_id: str, tmp_path: Path) -> None:
    async def main() -> None:
        async with await backend.connect_aio() as client:
            await client.append(state_id, Event("A"))
        with pytest.raises(flipbook.Unavailable) as raised:
            await client.head(state_id)
        assert_closed(raised.value)
        with pytest.raises(flipbook.Unavailable):
            client.sync.head(state_id)  # the same client
        await client.close()
        with pytest.raises(flipbook.Unavailable):
            [e async for e in client.read(state_id)]

        path = tmp_path / "aio.db"
        embedded = await aio.Client.open_embedded(path)
        await embedded.append(state_id, Event("A"))
        await embedded.close()
        assert_released(path)
        async with await aio.Client.open_embedded(path) as reopened:
            assert [e.name async for e in reopened.read(state_id)] == ["A"]

    asyncio.run(main())
