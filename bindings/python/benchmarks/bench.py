"""Flipbook for Python against baselines measured in the same run.

    python benchmarks/bench.py [--smoke]

Needs the `flipbook` server binary (FLIPBOOK_BIN, else the shared cargo target dir) and, for the
comparison with the `eventsourcing` library, a PostgreSQL database (FLIPBOOK_TEST_POSTGRES_URL).
Prints one line per figure: Flipbook's rate, the baseline's, the ratio and the target.

1. Loading a 100,000-event state with a Python reducer, through a local server and in embedded
   mode, against the same fold in pure Python over the same events already in memory (what I/O
   and conversion cost). Target: at least 0.7.
2. Against `eventsourcing` (PyPI) on the same PostgreSQL, each library used as its documentation
   shows: commands that load an aggregate and append 1 event, and replays of a 1,000-event
   aggregate. Target: at least 2x.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import flipbook

# Tiny sizes that only prove the benchmark runs: `--smoke`, read by `main`.
SMOKE = False
PAYLOAD = {"account": "acc-0001", "amount": 3, "currency": "EUR", "reference": "invoice 2026-11-27/0042"}


def report(what: str, unit: str, ours: float, baseline_name: str, baseline: float, target: float) -> bool:
    ratio = ours / baseline
    met = ratio >= target
    print(
        f"{what:<44} flipbook {ours:>12.0f} {unit:<9} {baseline_name} {baseline:>12.0f} {unit:<9} "
        f"ratio {ratio:>6.2f} (target >= {target}) {'met' if met else 'MISSED'}",
        flush=True,
    )
    return met


def rates(count: int, ours: Callable[[], Any], baseline: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """The median rates of `repeats` runs each of `ours` and `baseline`, each run doing `count`
    operations. The two alternate, so a noisy neighbour slows both alike."""
    measured: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for run, into in ((ours, measured[0]), (baseline, measured[1])):
            started = time.perf_counter()
            run()
            into.append(count / (time.perf_counter() - started))
    return statistics.median(measured[0]), statistics.median(measured[1])


def server_binary() -> str:
    if "FLIPBOOK_BIN" in os.environ:
        return os.environ["FLIPBOOK_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR", str(Path.home() / ".cache/flipbook/target"))
    for profile in ("release", "debug"):
        path = Path(target) / profile / "flipbook"
        if path.exists():
            return str(path)
    raise SystemExit("no flipbook binary: build it (cargo build -p flipbook) or set FLIPBOOK_BIN")


@contextmanager
def server(*args: str) -> Iterator[str]:
    """A `flipbook serve` on a free port; yields its endpoint. Its log (JSON lines on stderr) is
    read to the end by a thread, so the server never blocks on a full pipe."""
    command = [
        server_binary(),
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "off",
        "--log-format",
        "json",
        *args,
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    serving: queue.Queue[str | None] = queue.Queue()

    def read_log() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            if '"flipbook serving"' in line:
                serving.put(json.loads(line)["addr"])
        serving.put(None)

    threading.Thread(target=read_log, daemon=True).start()
    try:
        addr = serving.get(timeout=60)
        if addr is None:
            raise SystemExit("the server exited before serving")
        yield f"http://{addr}"
    finally:
        process.terminate()
        process.wait(timeout=30)


class Balance(flipbook.Reducer[int]):
    revision = "balance-1"

    def initial(self) -> int:
        return 0

    def apply(self, balance: int, event: Any) -> int:
        change = json.loads(event.payload)["amount"]
        return balance + change if event.name == "Deposited" else balance - change


class InMemoryEvent:
    """What a pure-Python event store would hand the same reducer."""

    __slots__ = ("name", "payload", "version")

    def __init__(self, name: str, payload: bytes, version: int) -> None:
        self.name, self.payload, self.version = name, payload, version


def write_state(client: flipbook.Client, state_id: str, count: int) -> None:
    event = flipbook.Event("Deposited", PAYLOAD)  # no event id: each append gets fresh ones
    for start in range(0, count, 1000):
        client.append(state_id, [event] * min(1000, count - start))


def load_against_pure_python() -> bool:
    """Through a local server (whose work shares the machine's cores with the fold) and in
    embedded mode (the same SQLite read in this process, no gRPC)."""
    events = 5_000 if SMOKE else 100_000
    repeats = 1 if SMOKE else 5
    plain = flipbook.Options(snapshot_every=None, cache_entries=0)
    reducer = Balance()
    in_memory = [InMemoryEvent("Deposited", json.dumps(PAYLOAD).encode(), v) for v in range(1, events + 1)]

    def pure() -> None:
        state = reducer.initial()
        for event in in_memory:
            state = reducer.apply(state, event)
        assert state == 3 * events

    def against_pure(client: flipbook.Client, how: str) -> bool:
        write_state(client, "big", events)

        def loaded() -> None:
            assert client.load("big", reducer).state == 3 * events

        ours, baseline = rates(events, loaded, pure, repeats)
        what = f"load {events:,} events, Python reducer, {how}"
        return report(what, "events/s", ours, "pure Python", baseline, 0.7)

    with tempfile.TemporaryDirectory() as dir:
        with server("--sqlite-path", f"{dir}/bench.db") as endpoint:
            met = against_pure(flipbook.Client.connect(endpoint, options=plain), "server")
        met &= against_pure(flipbook.Client.open_embedded(f"{dir}/embedded.db", options=plain), "embedded")
    return met


def eventsourcing_app(postgres_url: str) -> Any:
    url = urlparse(postgres_url)
    os.environ.update(
        PERSISTENCE_MODULE="eventsourcing.postgres",
        POSTGRES_DBNAME=url.path.lstrip("/") or "postgres",
        POSTGRES_HOST=url.hostname or "127.0.0.1",
        POSTGRES_PORT=str(url.port or 5432),
        POSTGRES_USER=url.username or "postgres",
        POSTGRES_PASSWORD=url.password or "",
    )
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event

    class Wallet(Aggregate):  # type: ignore[misc]
        @event("Opened")  # type: ignore[misc]
        def __init__(self) -> None:
            self.balance = 0

        @event("Deposited")  # type: ignore[misc]
        def deposit(self, amount: int) -> None:
            self.balance += amount

    class Wallets(Application):  # type: ignore[misc]
        def open(self) -> Any:
            wallet = Wallet()
            self.save(wallet)
            return wallet.id

        def deposit(self, wallet_id: Any, amount: int) -> None:
            wallet = self.repository.get(wallet_id)
            wallet.deposit(amount)
            self.save(wallet)

        def balance(self, wallet_id: Any) -> int:
            return int(self.repository.get(wallet_id).balance)

    return Wallets()


def against_eventsourcing() -> bool:
    postgres_url = os.environ.get("FLIPBOOK_TEST_POSTGRES_URL")
    if not postgres_url:
        raise SystemExit("FLIPBOOK_TEST_POSTGRES_URL must name a PostgreSQL database")
    wallets, commands_each = (5, 10) if SMOKE else (50, 20)
    replay_events, replays = (200, 3) if SMOKE else (1_000, 20)
    repeats = 1 if SMOKE else 5
    app = eventsourcing_app(postgres_url)
    met = True
    with server(
        "--event-store", "postgres", "--snapshot-store", "postgres", "--postgres-url", postgres_url
    ) as endpoint:
        client = flipbook.Client.connect(endpoint)
        reducer = Balance()
        deposit = [flipbook.Event("Deposited", PAYLOAD)]

        def flipbook_commands() -> None:
            for _ in range(wallets):
                state_id = f"wallet-{uuid.uuid4()}"
                for _ in range(commands_each):
                    client.execute(state_id, reducer, lambda _balance: deposit)

        def eventsourcing_commands() -> None:
            for _ in range(wallets):
                wallet_id = app.open()
                for _ in range(commands_each - 1):
                    app.deposit(wallet_id, 3)

        count = wallets * commands_each
        ours, baseline = rates(count, flipbook_commands, eventsourcing_commands, repeats)
        met &= report("commands, 1 event each (PostgreSQL)", "cmds/s", ours, "eventsourcing", baseline, 2.0)

        state_id = f"replay-{uuid.uuid4()}"
        write_state(client, state_id, replay_events)
        wallet_id = app.open()
        for _ in range(replay_events - 1):
            app.deposit(wallet_id, 3)
        plain = flipbook.Client.connect(endpoint, options=flipbook.Options(snapshot_every=None, cache_entries=0))

        def flipbook_replays() -> None:
            for _ in range(replays):
                plain.load(state_id, reducer)

        def eventsourcing_replays() -> None:
            for _ in range(replays):
                app.balance(wallet_id)

        ours, baseline = rates(replays, flipbook_replays, eventsourcing_replays, repeats)
        met &= report(f"replay a {replay_events:,}-event aggregate", "loads/s", ours, "eventsourcing", baseline, 2.0)
    return met


def main() -> None:
    global SMOKE
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes: proves the benchmark runs, its figures mean nothing"
    )
    SMOKE = parser.parse_args().smoke
    print(f"Python benchmark ({'smoke' if SMOKE else 'full'} mode)", flush=True)
    met = load_against_pure_python()
    met &= against_eventsourcing()
    if not met and not SMOKE:
        print("some targets were missed", flush=True)


if __name__ == "__main__":
    main()
