"""A client made before fork() works in the child (which gets its own runtime and connection),
and still in the parent afterwards."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable

import flipbook
from conftest import Backend, Ledger, Wallet, deposit
from flipbook import Event, aio


def in_child(work: Callable[[], None]) -> int:
    """Forks; the child runs ``work`` and exits 0 if it returned, 1 if it raised. Returns the
    child's exit status (a child stuck for 60 s is killed)."""
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        status = 1
        try:
            work()
            status = 0
        except BaseException:
            os.write(2, f"in the forked child:\n{traceback.format_exc()}".encode())
        finally:
            sys.stderr.flush()
            os._exit(status)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, wait_status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(wait_status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError("the forked child is stuck")


def test_the_same_client_in_a_forked_child(backend: Backend, state_id: str) -> None:
    ledger = Ledger()
    client = backend.connect()
    client.execute(state_id, ledger, deposit(100))
    assert client.load(state_id, ledger).state.balance == 100
    list(client.read_all(limit=1))

    def child() -> None:
        assert client.load(state_id, ledger) == flipbook.Loaded(Wallet(100, 1), 1)
        assert client.append(state_id, Event("Deposited", {"amount": 20})).last_version == 2
        done = client.execute(state_id, ledger, deposit(3))
        assert (done.state.balance, done.version) == (123, 3)
        assert client.load(state_id, ledger).state.balance == 123

    assert in_child(child) == 0

    # The parent's client is untouched by the child, and sees what the child wrote.
    assert client.load(state_id, ledger) == flipbook.Loaded(Wallet(123, 3), 3)
    done = client.execute(state_id, ledger, deposit(7))
    assert (done.state.balance, done.version) == (130, 4)
    assert client.head(state_id).event_count == 4


def test_the_same_aio_client_in_a_forked_child(backend: Backend, state_id: str) -> None:
    ledger = Ledger()

    async def make() -> aio.Client:
        client = await backend.connect_aio()
        await client.execute(state_id, ledger, deposit(1))  # the module's thread pool is started
        return client

    client = asyncio.run(make())

    def child() -> None:
        async def work() -> None:
            done = await client.execute(state_id, ledger, deposit(10))
            assert (done.state.balance, done.version) == (11, 2)
            assert [e.version async for e in client.read(state_id)] == [1, 2]

        asyncio.run(work())

    assert in_child(child) == 0

    async def after() -> None:
        assert (await client.load(state_id, ledger)).state.balance == 11
        assert (await client.execute(state_id, ledger, deposit(100))).version == 3

    asyncio.run(after())


def test_a_failing_child_is_reported() -> None:
    """The harness itself: a failed assertion in the child is a non-zero exit status."""
    assert in_child(lambda: None) == 0

    def failing() -> None:
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # keep the expected traceback out of the log
        raise AssertionError("expected")

    assert in_child(failing) == 1


def test_a_read_begun_before_fork_is_refused_in_the_child_not_stuck(backend: Backend, state_id: str) -> None:
    client = backend.connect()
    client.append(state_id, [Event("Deposited", {"amount": 1})] * 3)
    pages = client.read_pages(state_id)

    def child() -> None:
        try:
            next(pages)
        except RuntimeError as refused:
            assert "before fork()" in str(refused)
        else:
            raise AssertionError("a read of the parent's connection went on in the child")
        # A read begun in the child works.
        assert len(list(client.read(state_id))) == 3

    assert in_child(child) == 0
    assert len(next(pages)) == 3, "the parent's read goes on"


def test_closing_in_a_forked_child_leaves_the_parent_its_client(backend: Backend, state_id: str) -> None:
    client = backend.connect()
    client.append(state_id, Event("Deposited", {"amount": 1}))

    def child() -> None:
        client.close()  # the parent's connection, inherited: let go of, never shut down here
        try:
            client.head(state_id)
        except flipbook.Unavailable as closed:
            assert closed.code == "CLOSED"
        else:
            raise AssertionError("a closed client answered")

    assert in_child(child) == 0
    assert client.append(state_id, Event("Deposited", {"amount": 2})).last_version == 2
    client.close()
