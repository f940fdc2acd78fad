"""Calls that wait release the GIL: other Python threads keep running meanwhile."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

import flipbook
from conftest import Backend
from flipbook import Event


class Counter:
    """Counts in a tight loop on its own thread, as fast as it is let."""

    def __init__(self) -> None:
        self.value = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop:
            self.value += 1

    @contextmanager
    def running(self) -> Iterator[Counter]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop = True
            self._thread.join()


def progress_during(call: Callable[[], object]) -> tuple[int, float]:
    """How far the counter got while ``call`` ran in this thread, and how long it ran."""
    with Counter().running() as counter:
        time.sleep(0.01)  # the counter is up to speed
        before, started = counter.value, time.monotonic()
        call()
        return counter.value - before, time.monotonic() - started


def test_a_call_waiting_on_a_silent_server_does_not_hold_the_gil() -> None:
    # A server that accepts connections (the kernel's backlog) and never answers: the client
    # waits the whole request timeout in native code.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        endpoint = "http://{}:{}".format(*silent.getsockname())

        def connect() -> None:
            with pytest.raises(flipbook.Unavailable):
                flipbook.Client.connect(endpoint, connect_timeout=1.0, request_timeout=1.0)

        progress, seconds = progress_during(connect)
    assert seconds >= 0.9
    # Were the GIL held while waiting, the counter would get one switch interval (5 ms) at most.
    assert progress > 200_000, f"the counter advanced {progress} times in {seconds:.2f} s"


def test_reading_a_large_state_does_not_block_other_threads(backend: Backend, state_id: str) -> None:
    client = backend.connect()
    for _ in range(20):
        client.append(state_id, [Event("Deposited", {"amount": 1}) for _ in range(1000)])

    read: list[int] = []

    def read_everything() -> None:
        reader = threading.Thread(target=lambda: read.extend(len(page) for page in client.read_pages(state_id)))
        reader.start()
        reader.join()

    progress, seconds = progress_during(read_everything)
    assert sum(read) == 20_000
    assert len(read) > 1
    assert progress > 100_000, f"the counter advanced {progress} times in {seconds:.2f} s"
