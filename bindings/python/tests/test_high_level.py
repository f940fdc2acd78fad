"""load and execute with reducers: as_of, retries, user exceptions, snapshots and the cache."""

from __future__ import annotations

import json
import traceback
from datetime import datetime, timedelta, timezone

import pytest

import flipbook
from conftest import Backend, InsufficientFunds, Ledger, Wallet, counter, deposit, withdraw
from flipbook import Event, Options


def test_load_with_a_reducer_subclass(client: flipbook.Client, ledger: Ledger, state_id: str) -> None:
    assert client.load(state_id, ledger) == flipbook.Loaded(Wallet(), 0)
    client.append(state_id, [Event("Deposited", {"amount": 100}), Event("Withdrawn", {"amount": 30})])
    client.append(state_id, Event("Deposited", {"amount": 5}))
    loaded = client.load(state_id, ledger)
    assert loaded.state == Wallet(balance=75, deposits=2)
    assert loaded.version == 3


def test_load_with_a_function_reducer(client: flipbook.Client, state_id: str) -> None:
    client.append(state_id, [Event("Tick") for _ in range(42)])
    loaded = client.load(state_id, counter())
    assert (loaded.state, loaded.version) == (42, 42)


def test_load_of_many_pages(client: flipbook.Client, state_id: str) -> None:
    for _ in range(3):
        client.append(state_id, [Event("Deposited", {"amount": 1}) for _ in range(1000)])
    loaded = client.load(state_id, Ledger())
    assert (loaded.state.balance, loaded.version) == (3000, 3000)


def test_function_reducer_with_its_own_codec(backend: Backend, state_id: str) -> None:
    names = flipbook.FunctionReducer[list[str]](
        "names-1",
        list,
        lambda seen, event: [*seen, event.name],
        encode=lambda seen: ",".join(seen).encode(),
        decode=lambda data: data.decode().split(","),
    )
    client = backend.connect(Options(snapshot_every=2))
    client.append(state_id, [Event("A"), Event("B"), Event("C")])
    assert client.load(state_id, names).state == ["A", "B", "C"]
    client.flush_snapshots()
    snapshot = client.get_snapshot(state_id, "names-1")
    assert snapshot is not None and snapshot.payload == b"A,B,C"
    assert backend.connect().load(state_id, names) == flipbook.Loaded(["A", "B", "C"], 3)


def test_load_as_of(client: flipbook.Client, ledger: Ledger, state_id: str) -> None:
    t0 = datetime(2031, 6, 1, 12, 0, tzinfo=timezone.utc)
    client.append(
        state_id,
        [
            Event("Deposited", {"amount": 100}, timestamp=t0),
            Event("Deposited", {"amount": 10}),  # time-neutral: always counts
            Event("Withdrawn", {"amount": 50}, timestamp=t0 + timedelta(days=1)),
            Event("Deposited", {"amount": 1}, timestamp=t0 + timedelta(days=2)),
        ],
    )
    assert client.load(state_id, ledger).state.balance == 61
    assert client.load(state_id, ledger, as_of=t0 - timedelta(microseconds=1)).state.balance == 10
    assert client.load(state_id, ledger, as_of=t0).state.balance == 110
    # The same instant in another time zone is the same as_of.
    in_new_york = (t0 + timedelta(days=1)).astimezone(timezone(timedelta(hours=-4)))
    as_of = client.load(state_id, ledger, as_of=in_new_york)
    assert (as_of.state.balance, as_of.version) == (60, 3)
    # A load as of a time neither reads nor replaces the cached current state.
    assert client.load(state_id, ledger) == flipbook.Loaded(Wallet(61, 3), 4)


def test_load_as_of_a_naive_datetime_is_refused(client: flipbook.Client, ledger: Ledger, state_id: str) -> None:
    client.append(state_id, Event("Deposited", {"amount": 1}))
    with pytest.raises(flipbook.InvalidArgument) as raised:
        client.load(state_id, ledger, as_of=datetime(2030, 1, 1))
    assert raised.value.field == "as_of"


def test_execute(client: flipbook.Client, ledger: Ledger, state_id: str) -> None:
    first = client.execute(state_id, ledger, deposit(100))
    assert first.state == Wallet(100, 1)
    assert first.version == 1
    assert first.tries == 1
    assert first.appended is not None and first.appended.last_version == 1

    second = client.execute(state_id, ledger, withdraw(30))
    assert (second.state.balance, second.version) == (70, 2)
    assert [e.name for e in client.read(state_id)] == ["Deposited", "Withdrawn"]
    assert client.load(state_id, ledger).state.balance == 70


def test_execute_deciding_nothing_appends_nothing(client: flipbook.Client, ledger: Ledger, state_id: str) -> None:
    client.execute(state_id, ledger, deposit(5))
    done = client.execute(state_id, ledger, lambda wallet: [])
    assert done.appended is None
    assert (done.state.balance, done.version) == (5, 1)
    assert client.head(state_id).event_count == 1


def test_execute_retries_a_conflict_with_the_new_state(
    backend: Backend, client: flipbook.Client, ledger: Ledger, state_id: str
) -> None:
    other = backend.connect()
    client.execute(state_id, ledger, deposit(10))  # cached by this client
    seen: list[int] = []

    def double(wallet: Wallet) -> list[Event]:
        seen.append(wallet.balance)
        if len(seen) == 1:  # someone else deposits while this command decides
            other.append(state_id, Event("Deposited", {"amount": 5}))
        return [Event("Deposited", {"amount": wallet.balance})]

    done = client.execute(state_id, ledger, double)
    assert seen == [10, 15]
    assert done.tries == 2
    assert (done.state.balance, done.version) == (30, 3)
    assert other.load(state_id, ledger).state.balance == 30


def test_execute_gives_up_after_max_tries(backend: Backend, ledger: Ledger, state_id: str) -> None:
    client = backend.connect(Options(max_tries=3, first_delay=0.001, max_delay=0.005))
    calls = 0

    def always_overtaken(wallet: Wallet) -> list[Event]:
        nonlocal calls
        calls += 1
        client.append(state_id, Event("Deposited", {"amount": 1}))
        return [Event("Withdrawn", {"amount": 1})]

    with pytest.raises(flipbook.ConflictError) as raised:
        client.execute(state_id, ledger, always_overtaken)
    assert calls == 3
    assert raised.value.actual_version == 3
    assert [e.name for e in client.read(state_id)] == ["Deposited"] * 3


# ---- the user's exceptions ------------------------------------------------------------------


def test_an_exception_from_decide_comes_back_unchanged(client: flipbook.Client, ledger: Ledger, state_id: str) -> None:
    client.execute(state_id, ledger, deposit(10))
    refusal = InsufficientFunds("no")

    def refuse(wallet: Wallet) -> list[Event]:
        raise refusal

    with pytest.raises(InsufficientFunds) as raised:
        client.execute(state_id, ledger, refuse)
    assert raised.value is refusal
    assert raised.value.__cause__ is None and raised.value.__context__ is None
    assert traceback.extract_tb(raised.value.__traceback__)[-1].name == "refuse"
    assert client.head(state_id).event_count == 1

    with pytest.raises(InsufficientFunds) as raised_again:
        client.execute(state_id, ledger, withdraw(1000))
    assert traceback.extract_tb(raised_again.value.__traceback__)[-1].name == "decide"
    assert client.head(state_id).event_count == 1


class Poisoned(flipbook.Reducer[int]):
    """Raises its own exception on a "Poison" event."""

    revision = "poisoned-1"

    def __init__(self) -> None:
        self.raised: list[Exception] = []

    def initial(self) -> int:
        return 0

    def apply(self, state: int, event: flipbook.RecordedEvent) -> int:
        if event.name == "Poison":
            error = LookupError(f"poison at version {event.version}")
            self.raised.append(error)
            raise error
        return state + 1


def test_an_exception_from_apply_comes_back_unchanged(client: flipbook.Client, state_id: str) -> None:
    client.append(state_id, [Event("Fine"), Event("Poison"), Event("Fine")])
    reducer = Poisoned()
    decided = False

    def decide(state: int) -> list[Event]:
        nonlocal decided
        decided = True
        return [Event("Fine")]

    with pytest.raises(LookupError) as raised:
        client.execute(state_id, reducer, decide)
    assert raised.value is reducer.raised[-1]
    assert traceback.extract_tb(raised.value.__traceback__)[-1].name == "apply"
    assert not decided
    assert client.head(state_id).event_count == 3

    with pytest.raises(LookupError) as raised_on_load:
        client.load(state_id, reducer)
    assert raised_on_load.value is reducer.raised[-1]
    assert traceback.extract_tb(raised_on_load.value.__traceback__)[-1].name == "apply"


class Exhausted(flipbook.Reducer[int]):
    """Raises ``StopIteration``, which Python would turn into ``RuntimeError`` inside a generator."""

    revision = "exhausted-1"

    def initial(self) -> int:
        return 0

    def apply(self, state: int, event: flipbook.RecordedEvent) -> int:
        raise StopIteration(event.version)


def test_a_stop_iteration_from_user_code_comes_back_unchanged(client: flipbook.Client, state_id: str) -> None:
    client.append(state_id, [Event("Fine"), Event("Fine")])
    with pytest.raises(StopIteration) as raised:
        client.load(state_id, Exhausted())
    assert raised.value.value == 1

    def decide(state: int) -> list[Event]:
        raise StopIteration("decided")

    with pytest.raises(StopIteration) as raised_by_decide:
        client.execute(state_id + "-empty", Exhausted(), decide)
    assert raised_by_decide.value.value == "decided"
    assert client.head(state_id).event_count == 2


# ---- snapshots and the cache ----------------------------------------------------------------


def test_snapshot_policy_writes_snapshots(backend: Backend, ledger: Ledger, state_id: str) -> None:
    client = backend.connect(Options(snapshot_every=5))
    for amount in range(1, 13):
        client.execute(state_id, ledger, deposit(amount))
    client.flush_snapshots()  # commands write snapshots in the background
    snapshot = client.get_snapshot(state_id, ledger.revision)
    assert snapshot is not None
    assert snapshot.version == 10
    assert json.loads(snapshot.payload) == {"balance": 55, "deposits": 10}
    assert snapshot.content_type == "application/json"
    first = client.get_snapshot(state_id, ledger.revision, max_version=9)
    assert first is not None and first.version == 5

    fresh = backend.connect()
    assert fresh.cache_usage() == (0, 0)
    assert fresh.load(state_id, ledger) == flipbook.Loaded(Wallet(78, 12), 12)
    assert client.load(state_id, ledger) == flipbook.Loaded(Wallet(78, 12), 12)


def test_load_starts_from_the_snapshot_of_its_revision(backend: Backend, ledger: Ledger, state_id: str) -> None:
    client = backend.connect(Options(snapshot_every=None))
    client.append(state_id, [Event("Deposited", {"amount": 1}) for _ in range(4)])
    # Snapshots are trusted: a (deliberately wrong) one of this revision is where loads start.
    client.put_snapshot(state_id, 3, ledger.revision, json.dumps({"balance": 1000, "deposits": 3}).encode())
    assert backend.connect().load(state_id, ledger) == flipbook.Loaded(Wallet(1001, 4), 4)


def test_a_snapshot_of_another_revision_is_ignored(backend: Backend, ledger: Ledger, state_id: str) -> None:
    client = backend.connect(Options(snapshot_every=None))
    client.append(state_id, [Event("Deposited", {"amount": 1}) for _ in range(4)])
    client.put_snapshot(state_id, 4, "wallet-0", json.dumps({"balance": 1000, "deposits": 4}).encode())
    assert backend.connect().load(state_id, ledger) == flipbook.Loaded(Wallet(4, 4), 4)


def test_an_undecodable_snapshot_is_ignored(backend: Backend, ledger: Ledger, state_id: str) -> None:
    client = backend.connect(Options(snapshot_every=None))
    client.append(state_id, [Event("Deposited", {"amount": 2}) for _ in range(4)])
    client.put_snapshot(state_id, 3, ledger.revision, b"not json at all")
    assert backend.connect().load(state_id, ledger) == flipbook.Loaded(Wallet(8, 4), 4)
    done = backend.connect().execute(state_id, ledger, deposit(1))
    assert (done.state, done.version) == (Wallet(9, 5), 5)


def test_the_local_cache(backend: Backend, ledger: Ledger, state_id: str) -> None:
    client = backend.connect(Options(snapshot_every=None))
    client.execute(state_id, ledger, deposit(3))
    entries, size = client.cache_usage()
    assert entries == 1 and size > 0
    backend.connect().append(state_id, Event("Deposited", {"amount": 4}))
    # A cache hit still reads the events after the cached version.
    assert client.load(state_id, ledger) == flipbook.Loaded(Wallet(7, 2), 2)

    uncached = backend.connect(Options(cache_entries=0, snapshot_every=None))
    uncached.execute(state_id, ledger, deposit(5))
    assert uncached.cache_usage() == (0, 0)
    assert uncached.load(state_id, ledger).state.balance == 12


def test_a_state_that_does_not_encode_is_not_cached_and_the_command_stands(backend: Backend, state_id: str) -> None:
    def refuse(_: int) -> bytes:
        raise TypeError("no encoding for this state")

    unencodable = flipbook.FunctionReducer("unencodable-1", lambda: 0, lambda n, _: n + 1, encode=refuse)
    client = backend.connect()
    with pytest.warns(RuntimeWarning, match="not cached"):
        done = client.execute(state_id, unencodable, lambda _: [Event("Counted", {})])
    assert (done.state, done.version, done.tries) == (1, 1, 1)
    assert client.cache_usage() == (0, 0)
    assert [e.name for e in client.read(state_id)] == ["Counted"]
