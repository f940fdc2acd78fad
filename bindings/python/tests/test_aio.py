"""flipbook.aio: the same API as coroutines and async iterators, on every backend."""

from __future__ import annotations

import asyncio
import traceback
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import TypeVar

import pytest

import flipbook
from conftest import Backend, InsufficientFunds, Ledger, Wallet, deposit, withdraw
from flipbook import NO_STATE, Event, aio

T = TypeVar("T")


def run(backend: Backend, test: Callable[[aio.Client], Awaitable[T]]) -> T:
    async def main() -> T:
        return await test(await backend.connect_aio())

    return asyncio.run(main())


def test_low_level(backend: Backend, state_id: str) -> None:
    async def test(client: aio.Client) -> None:
        t0 = datetime(2032, 1, 1, tzinfo=timezone.utc)
        event_id = str(uuid.uuid4())
        first = await client.append(
            state_id, Event("Opened", {"by": "ann"}, event_id=event_id, timestamp=t0), expected=NO_STATE,
            state_metadata={"owner": "ann"},
        )  # fmt: skip
        assert first.last_version == 1
        assert await client.append(state_id, Event("Opened", {"by": "ann"}, event_id=event_id, timestamp=t0)) == first
        await client.append(state_id, [Event("E", {"i": i}) for i in range(199)], expected=1)

        assert [e.version async for e in client.read(state_id)] == list(range(1, 201))
        pages = [page async for page in client.read_pages(state_id)]
        assert len(pages) > 1 and sum(map(len, pages)) == 200
        backward = client.read(state_id, backward=True, from_version=5, to_version=9, limit=3)
        assert [e.version async for e in backward] == [9, 8, 7]
        assert [e.name async for e in client.read(state_id, names=["Opened"])] == ["Opened"]
        assert [e.version async for e in client.read(state_id, as_of=t0 - timedelta(days=1))] == list(range(2, 201))

        everything = [e async for e in client.read_all(prefix=state_id, after_position=first.global_positions[0])]
        assert [e.version for e in everything] == list(range(2, 201))
        assert len([e async for e in client.read_all(prefix=state_id, names=["E"], limit=10)]) == 10
        newest = [e.version async for e in client.read_all(prefix=state_id, backward=True, limit=2)]
        assert newest == [200, 199]
        assert (await client.log_head()).settled_position >= everything[-1].global_position

        head = await client.head(state_id)
        assert (head.last_version, head.event_count, head.metadata) == (200, 200, {"owner": "ann"})

        await client.put_snapshot(state_id, 200, "rev", b"{}")
        snapshot = await client.get_snapshot(state_id, "rev", max_version=200)
        assert snapshot is not None and snapshot.version == 200
        assert await client.get_snapshot(state_id, "rev", max_version=199) is None
        assert await client.delete_snapshots(state_id) == 1

        assert (await client.server_info()).event_backend == backend.event_backend
        assert client.sync.head(state_id) == head

    run(backend, test)


def test_read_a_version_range_in_both_directions(backend: Backend, state_id: str) -> None:
    async def test(client: aio.Client) -> None:
        await client.append(state_id, [Event("A" if v % 2 else "B") for v in range(1, 11)])
        forward = client.read(state_id, from_version=3, to_version=6)
        assert [e.version async for e in forward] == [3, 4, 5, 6]
        backward = client.read(state_id, from_version=3, to_version=6, backward=True)
        assert [e.version async for e in backward] == [6, 5, 4, 3]
        assert [e.version async for e in client.read(state_id, from_version=7, to_version=7, backward=True)] == [7]
        newest = client.read(state_id, from_version=2, to_version=9, limit=2, backward=True)
        assert [e.version async for e in newest] == [9, 8]
        pages = client.read_pages(state_id, from_version=8, to_version=40, backward=True)
        assert [e.version async for page in pages for e in page] == [10, 9, 8]

    run(backend, test)


def test_errors(backend: Backend, state_id: str) -> None:
    async def test(client: aio.Client) -> None:
        with pytest.raises(flipbook.NotFound):
            await client.head(state_id)
        await client.append(state_id, Event("A"))
        with pytest.raises(flipbook.ConflictError) as conflict:
            await client.append(state_id, Event("B"), expected=NO_STATE)
        assert conflict.value.actual_version == 1
        with pytest.raises(flipbook.InvalidArgument) as invalid:
            [e async for e in client.read(state_id, from_version=3, to_version=1)]
        assert invalid.value.field == "min_version"
        with pytest.raises(flipbook.InvalidArgument) as naive:
            await client.load(state_id, Ledger(), as_of=datetime(2030, 1, 1))
        assert naive.value.field == "as_of"

    run(backend, test)


def test_load_and_execute(backend: Backend, state_id: str) -> None:
    ledger = Ledger()

    async def test(client: aio.Client) -> None:
        done = await client.execute(state_id, ledger, deposit(50))
        assert (done.state, done.version, done.tries) == (Wallet(50, 1), 1, 1)
        done = await client.execute(state_id, ledger, withdraw(20))
        assert (done.state.balance, done.version) == (30, 2)
        assert await client.load(state_id, ledger) == flipbook.Loaded(Wallet(30, 1), 2)
        await asyncio.gather(*(client.execute(state_id, ledger, deposit(1)) for _ in range(8)))
        assert (await client.load(state_id, ledger)).state.balance == 38

        refusal = InsufficientFunds("never")

        def refuse(wallet: Wallet) -> list[Event]:
            raise refusal

        with pytest.raises(InsufficientFunds) as raised:
            await client.execute(state_id, ledger, refuse)
        assert raised.value is refusal
        assert traceback.extract_tb(raised.value.__traceback__)[-1].name == "refuse"
        assert (await client.head(state_id)).event_count == 10

    run(backend, test)


def test_in_memory() -> None:
    async def main() -> None:
        client = aio.Client.in_memory()
        await client.execute("w", Ledger(), deposit(7))
        assert (await client.load("w", Ledger())).state.balance == 7

    asyncio.run(main())
