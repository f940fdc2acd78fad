"""Fixtures of the suite: real `flipbook serve` processes (SQLite, PostgreSQL, one with a token),
embedded clients, and the wallet reducer most tests use.

Every API test runs once per backend through the parametrized ``backend`` / ``client``
fixtures: ``server-sqlite``, ``server-postgres`` (needs FLIPBOOK_TEST_POSTGRES_URL: without it
those tests fail, they are never skipped) and ``embedded`` (a SQLite file of the test).
The server binary is FLIPBOOK_BIN, else $CARGO_TARGET_DIR/debug/flipbook, else
~/.cache/flipbook/target/debug/flipbook (``cargo build -p flipbook``).
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import flipbook
from flipbook import aio

BACKENDS = ["server-sqlite", "server-postgres", "embedded"]
POSTGRES_URL_VARIABLE = "FLIPBOOK_TEST_POSTGRES_URL"
AUTH_TOKEN = "s3cret-token"


# ---- no skips ------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A skipped test is a failed one here: every test must run on every backend."""
    report = yield
    if report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped tests are not allowed in this suite: {report.longrepr}"
    return report


# ---- the server processes --------------------------------------------------------------------


def server_binary() -> Path:
    if explicit := os.environ.get("FLIPBOOK_BIN"):
        candidates = [Path(explicit)]
    else:
        candidates = [Path.home() / ".cache/flipbook/target/debug/flipbook"]
        if target := os.environ.get("CARGO_TARGET_DIR"):
            candidates.insert(0, Path(target) / "debug/flipbook")
    for binary in candidates:
        if binary.is_file() and os.access(binary, os.X_OK):
            return binary
    pytest.fail(f"no flipbook server binary at {', '.join(map(str, candidates))}: run `cargo build -p flipbook`")


class Server:
    """`flipbook serve` on a free port; its log (stderr, JSON lines) is kept for failures."""

    def __init__(self, name: str, workdir: Path, args: Sequence[str]) -> None:
        self.name = name
        self.log: collections.deque[str] = collections.deque(maxlen=200)
        # The server must see only what the test gives it: no FLIPBOOK_* of the caller's shell.
        env = {key: value for key, value in os.environ.items() if not key.startswith("FLIPBOOK_")}
        command = [str(server_binary()), "serve", "--listen", "127.0.0.1:0", "--metrics-listen", "off"]
        command += ["--log-format", "json", *args]
        workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            command, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self._serving = threading.Event()
        self._address = ""
        # Reads the log for as long as the server runs (a full pipe would block it).
        reader = threading.Thread(target=self._read_log, name=f"{name}-log", daemon=True)
        reader.start()
        deadline = time.monotonic() + 30
        while not self._serving.wait(0.05):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                reader.join(timeout=1)
                pytest.fail(f"{name} did not start (exit status {self.process.poll()}):\n{''.join(self.log)}")
        self.address = self._address
        self.endpoint = f"http://{self.address}"

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            if self._serving.is_set():
                continue
            try:
                record: dict[str, Any] = json.loads(line)
            except ValueError:
                continue
            if record.get("message") == "flipbook serving":
                self._address = str(record["addr"])
                self._serving.set()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="session")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("server-sqlite")
    server = Server("server-sqlite", workdir, ["--sqlite-path", str(workdir / "flipbook.db")])
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get(POSTGRES_URL_VARIABLE)
    if not url:
        pytest.fail(f"{POSTGRES_URL_VARIABLE} is not set: the PostgreSQL tests need a running PostgreSQL")
    return url


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[Server]:
    args = ["--event-store", "postgres", "--snapshot-store", "postgres", "--postgres-url", postgres_url]
    server = Server("server-postgres", tmp_path_factory.mktemp("server-postgres"), args)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("server-auth")
    server = Server("server-auth", workdir, ["--sqlite-path", str(workdir / "flipbook.db"), "--auth-token", AUTH_TOKEN])
    yield server
    server.stop()


# ---- one backend, as the tests see it ------------------------------------------------------------


@dataclass
class Backend:
    """Where a test's clients go: a server's endpoint, or the test's embedded SQLite file.
    Every client made by :meth:`connect` sees the same store."""

    name: str
    endpoint: str | None = None
    path: Path | None = None

    @property
    def event_backend(self) -> str:
        return "postgres" if self.name == "server-postgres" else "sqlite"

    def connect(self, options: flipbook.Options | None = None) -> flipbook.Client:
        if self.endpoint is not None:
            return flipbook.Client.connect(self.endpoint, options=options)
        assert self.path is not None
        return flipbook.Client.open_embedded(self.path, options=options)

    async def connect_aio(self, options: flipbook.Options | None = None) -> aio.Client:
        if self.endpoint is not None:
            return await aio.Client.connect(self.endpoint, options=options)
        assert self.path is not None
        return await aio.Client.open_embedded(self.path, options=options)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    name: str = request.param
    if name == "server-sqlite":
        return Backend(name, endpoint=request.getfixturevalue("sqlite_server").endpoint)
    if name == "server-postgres":
        return Backend(name, endpoint=request.getfixturevalue("postgres_server").endpoint)
    return Backend(name, path=tmp_path / "embedded.db")


@pytest.fixture
def client(backend: Backend) -> flipbook.Client:
    return backend.connect()


@pytest.fixture
def new_id() -> Callable[[str], str]:
    """Unique state ids (the PostgreSQL database is shared with other runs and people)."""

    def new_id(kind: str = "state") -> str:
        return f"{kind}-{uuid.uuid4()}"

    return new_id


@pytest.fixture
def state_id(new_id: Callable[[str], str]) -> str:
    return new_id("state")


# ---- the wallet -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Wallet:
    balance: int = 0
    deposits: int = 0


class Ledger(flipbook.Reducer[Wallet]):
    """Deposits and withdrawals folded into a balance."""

    revision = "wallet-1"

    def initial(self) -> Wallet:
        return Wallet()

    def apply(self, wallet: Wallet, event: flipbook.RecordedEvent) -> Wallet:
        data: dict[str, Any] = event.json()  # type: ignore[assignment]
        if event.name == "Deposited":
            return Wallet(wallet.balance + int(data["amount"]), wallet.deposits + 1)
        if event.name == "Withdrawn":
            return Wallet(wallet.balance - int(data["amount"]), wallet.deposits)
        raise ValueError(f"unknown event {event.name!r}")

    def encode(self, wallet: Wallet) -> bytes:
        return json.dumps({"balance": wallet.balance, "deposits": wallet.deposits}).encode()

    def decode(self, data: bytes) -> Wallet:
        return Wallet(**json.loads(data))


class InsufficientFunds(Exception):
    pass


def deposit(amount: int, command: str | None = None) -> Callable[[Wallet], list[flipbook.Event]]:
    """The decide function of a deposit; ``command`` tags its event to count it later."""

    def decide(wallet: Wallet) -> list[flipbook.Event]:
        return [flipbook.Event("Deposited", {"amount": amount, "command": command})]

    return decide


def withdraw(amount: int) -> Callable[[Wallet], list[flipbook.Event]]:
    def decide(wallet: Wallet) -> list[flipbook.Event]:
        if wallet.balance < amount:
            raise InsufficientFunds(f"balance {wallet.balance}, needs {amount}")
        return [flipbook.Event("Withdrawn", {"amount": amount})]

    return decide


def counter() -> flipbook.FunctionReducer[int]:
    """A reducer from functions: the number of events."""
    return flipbook.FunctionReducer("counter-1", lambda: 0, lambda n, _event: n + 1)


def events(*names: str) -> list[flipbook.Event]:
    return [flipbook.Event(name, {"n": i}) for i, name in enumerate(names)]


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()
