"""Many writers on one wallet through execute: conflicts are retried until every command is in,
each exactly once, from threads (the sync client) and from asyncio tasks (flipbook.aio)."""

from __future__ import annotations

import asyncio
import collections
import threading

import flipbook
from conftest import Backend, Ledger, Wallet, deposit

WRITERS = 16
COMMANDS = 20
#: Enough tries for the unluckiest writer, short waits between them.
PATIENT = flipbook.Options(max_tries=10_000, first_delay=0.0005, max_delay=0.01)


def amount(writer: int, command: int) -> int:
    return writer * 100 + command + 1


def assert_every_command_once(client: flipbook.Client, state_id: str) -> None:
    total = WRITERS * COMMANDS
    loaded = client.load(state_id, Ledger())
    expected_balance = sum(amount(w, c) for w in range(WRITERS) for c in range(COMMANDS))
    assert loaded.state == Wallet(expected_balance, total)
    assert loaded.version == total
    assert client.head(state_id).last_version == total
    recorded = list(client.read(state_id))
    assert [e.version for e in recorded] == list(range(1, total + 1))
    commands = collections.Counter(str(e.json()["command"]) for e in recorded)  # type: ignore[index]
    assert commands == collections.Counter(f"{w}/{c}" for w in range(WRITERS) for c in range(COMMANDS))


def test_threads_contending_on_one_wallet(backend: Backend, state_id: str) -> None:
    client = backend.connect(PATIENT)
    ledger = Ledger()
    failures: list[BaseException] = []
    tries: list[int] = []
    start = threading.Barrier(WRITERS)

    def writer(w: int) -> None:
        try:
            start.wait()
            for c in range(COMMANDS):
                done = client.execute(state_id, ledger, deposit(amount(w, c), f"{w}/{c}"))
                tries.append(done.tries)
        except BaseException as error:  # reported by the test's thread
            failures.append(error)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a writer is stuck"
    assert failures == []
    assert len(tries) == WRITERS * COMMANDS
    assert max(tries) > 1, "the writers never conflicted: the test proves nothing"
    assert_every_command_once(backend.connect(), state_id)


def test_asyncio_tasks_contending_on_one_wallet(backend: Backend, state_id: str) -> None:
    ledger = Ledger()

    async def main() -> list[int]:
        client = await backend.connect_aio(PATIENT)

        async def writer(w: int) -> list[int]:
            tries = []
            for c in range(COMMANDS):
                done = await client.execute(state_id, ledger, deposit(amount(w, c), f"{w}/{c}"))
                tries.append(done.tries)
            return tries

        results = await asyncio.wait_for(asyncio.gather(*(writer(w) for w in range(WRITERS))), timeout=120)
        return [t for tries in results for t in tries]

    tries = asyncio.run(main())
    assert len(tries) == WRITERS * COMMANDS
    assert max(tries) > 1, "the writers never conflicted: the test proves nothing"
    assert_every_command_once(backend.connect(), state_id)
