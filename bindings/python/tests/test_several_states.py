"""Several states at once, on every backend: append_states (every part or none) and
execute_states (one command over several states, retried on a conflict on any of them)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import pytest

import flipbook
from conftest import Backend, InsufficientFunds, Ledger, Wallet, counter, deposit
from flipbook import NO_STATE, AppendPart, Event, Options, aio

# ---- append_states ----------------------------------------------------------------------------


def test_append_states_stores_every_part(client: flipbook.Client, new_id: Callable[[str], str]) -> None:
    a, b, seen = new_id("a"), new_id("b"), new_id("seen")
    client.append(b, Event("Opened"))
    results = client.append_states(
        [
            AppendPart(a, [Event("Opened"), Event("Deposited", {"amount": 5})], expected=NO_STATE),
            AppendPart(b, Event("Deposited", {"amount": 7}), expected=1, state_metadata={"owner": "bo"}),
            AppendPart(seen, Event("Seen"), version_neutral=True),
        ]
    )
    assert [r.last_version for r in results] == [2, 2, None]
    assert [len(r.global_positions) for r in results] == [2, 1, 1]
    # One request: contiguous positions, in part order.
    positions = [p for r in results for p in r.global_positions]
    assert positions == list(range(positions[0], positions[0] + 4))

    assert [(e.version, e.name) for e in client.read(a)] == [(1, "Opened"), (2, "Deposited")]
    assert [e.global_position for e in client.read(a)] == results[0].global_positions
    assert [(e.version, e.name) for e in client.read(b)] == [(1, "Opened"), (2, "Deposited")]
    assert client.head(b).metadata == {"owner": "bo"}
    assert client.head(seen).version_neutral


def test_append_states_is_all_or_nothing(client: flipbook.Client, new_id: Callable[[str], str]) -> None:
    a, b = new_id("a"), new_id("b")
    before = client.append(b, [Event("Opened"), Event("Deposited", {"amount": 1})])
    with pytest.raises(flipbook.ConflictError) as raised:
        client.append_states(
            [AppendPart(a, Event("Opened"), expected=NO_STATE), AppendPart(b, Event("Late"), expected=1)]
        )
    # The error is the second part's: its state and that state's version now.
    assert raised.value.state_id == b
    assert raised.value.actual_version == 2
    assert raised.value.code == "VERSION_CONFLICT"
    # Nothing of the first part was stored, nor anything after b's own events.
    with pytest.raises(flipbook.NotFound):
        client.head(a)
    assert client.head(b).last_global_position == before.global_positions[-1]
    assert list(client.read_all(after_position=before.global_positions[-1], prefix=a)) == []


def test_append_states_sent_again_answers_the_same_results(
    client: flipbook.Client, new_id: Callable[[str], str]
) -> None:
    a, b = new_id("a"), new_id("b")
    parts = [
        AppendPart(a, [Event("Opened", event_id=str(uuid.uuid4())), Event("Named", event_id=str(uuid.uuid4()))]),
        AppendPart(b, Event("Opened", event_id=str(uuid.uuid4())), expected=NO_STATE),
    ]
    first = client.append_states(parts)
    # A replay, not a conflict (b exists now) and not a second copy.
    assert client.append_states(parts) == first
    assert (client.head(a).event_count, client.head(b).event_count) == (2, 1)


def test_append_states_with_explicit_versions(client: flipbook.Client, new_id: Callable[[str], str]) -> None:
    a, b = new_id("a"), new_id("b")
    client.append(a, Event("Opened"))
    results = client.append_states(
        [AppendPart(a, [Event("A", version=2), Event("B", version=3)]), AppendPart(b, Event("Opened", version=1))]
    )
    assert [r.last_version for r in results] == [3, 1]
    assert [e.version for e in client.read(a)] == [1, 2, 3]
    # A gap inside a part is refused before it is sent; one after the stored state, by the store.
    with pytest.raises(flipbook.InvalidArgument) as invalid:
        client.append_states(
            [AppendPart(a, Event("C", version=4)), AppendPart(b, [Event("D", version=2), Event("F", version=4)])]
        )
    assert invalid.value.field == "parts[1].events[1].version"
    with pytest.raises(flipbook.ConflictError) as conflict:
        client.append_states([AppendPart(a, Event("C", version=4)), AppendPart(b, Event("Gap", version=3))])
    assert (conflict.value.state_id, conflict.value.actual_version) == (b, 1)
    assert (client.head(a).last_version, client.head(b).last_version) == (3, 1)


# ---- execute_states ---------------------------------------------------------------------------


def transfer(amount: int) -> Callable[[list[Wallet]], list[list[Event]]]:
    """A command over ``[source, target]``: both events, or none when the source lacks funds."""

    def decide(wallets: list[Wallet]) -> list[list[Event]]:
        source, _ = wallets
        if source.balance < amount:
            raise InsufficientFunds(f"balance {source.balance}, needs {amount}")
        return [[Event("Withdrawn", {"amount": amount})], [Event("Deposited", {"amount": amount})]]

    return decide


def test_execute_states_transfers_between_two_wallets(
    client: flipbook.Client, ledger: Ledger, new_id: Callable[[str], str]
) -> None:
    a, b = new_id("wallet"), new_id("wallet")
    client.execute(a, ledger, deposit(100))
    done = client.execute_states([(a, ledger), (b, ledger)], transfer(30))
    assert [(d.state, d.version, d.tries) for d in done] == [(Wallet(70, 1), 2, 1), (Wallet(30, 1), 1, 1)]
    assert done[0].appended is not None and done[1].appended is not None
    assert (done[0].appended.last_version, done[1].appended.last_version) == (2, 1)
    # One append: contiguous positions, in the targets' order.
    assert done[1].appended.global_positions[0] == done[0].appended.global_positions[-1] + 1
    assert client.load(a, ledger) == flipbook.Loaded(Wallet(70, 1), 2)
    assert client.load(b, ledger) == flipbook.Loaded(Wallet(30, 1), 1)

    refused = InsufficientFunds("nothing")

    def refuse(wallets: list[Wallet]) -> list[list[Event]]:
        raise refused

    with pytest.raises(InsufficientFunds) as raised:
        client.execute_states([(a, ledger), (b, ledger)], refuse)
    assert raised.value is refused
    assert (client.head(a).event_count, client.head(b).event_count) == (2, 1)


@pytest.mark.parametrize("contended", [0, 1], ids=["source-moves", "target-moves"])
def test_execute_states_retries_a_contended_transfer(
    backend: Backend, client: flipbook.Client, ledger: Ledger, new_id: Callable[[str], str], contended: int
) -> None:
    other = backend.connect()
    wallets = [new_id("wallet"), new_id("wallet")]
    client.execute(wallets[0], ledger, deposit(100))  # cached: the first decision is optimistic
    seen: list[list[int]] = []

    def decide(states: list[Wallet]) -> list[list[Event]]:
        seen.append([w.balance for w in states])
        if len(seen) == 1:  # another writer, between this command's load and its append
            other.append(wallets[contended], Event("Deposited", {"amount": 5}))
        return transfer(30)(states)

    done = client.execute_states([(wallets[0], ledger), (wallets[1], ledger)], decide)
    balances, versions = [100, 0], [1, 0]
    balances[contended] += 5
    versions[contended] += 1
    assert seen == [[100, 0], balances], "the retry decides on both states up to date"
    assert [d.tries for d in done] == [2, 2]
    expected = [balances[0] - 30, balances[1] + 30]
    assert [d.state.balance for d in done] == expected
    assert [d.version for d in done] == [v + 1 for v in versions]
    fresh = backend.connect()
    assert [fresh.load(w, ledger).state.balance for w in wallets] == expected
    assert [e.name for e in fresh.read(wallets[0])] == ["Deposited"] * versions[0] + ["Withdrawn"]


def test_execute_states_with_a_reducer_per_state(
    client: flipbook.Client, ledger: Ledger, new_id: Callable[[str], str]
) -> None:
    wallet, audit = new_id("wallet"), new_id("audit")
    client.append(audit, [Event("Checked"), Event("Checked")])
    client.execute(wallet, ledger, deposit(10))
    targets: list[tuple[str, flipbook.Reducer[Any]]] = [(wallet, ledger), (audit, counter())]
    received: list[list[Any]] = []

    def decide(states: list[Any]) -> Sequence[Sequence[Event]]:
        received.append(states)
        return [[Event("Withdrawn", {"amount": 4})], []]  # the audit trail is read, not written

    done = client.execute_states(targets, decide)
    assert received == [[Wallet(10, 1), 2]]
    assert [(d.state, d.version) for d in done] == [(Wallet(6, 1), 2), (2, 2)]
    assert done[0].appended is not None and done[1].appended is None
    assert client.head(audit).event_count == 2

    with pytest.raises(flipbook.InvalidArgument) as raised:
        client.execute_states(targets, lambda states: [[Event("Withdrawn", {"amount": 1})]])
    assert raised.value.field == "decisions"
    with pytest.raises(flipbook.InvalidArgument) as repeated:
        client.execute_states([(wallet, ledger), (wallet, ledger)], transfer(1))
    assert repeated.value.field == "state_ids"
    assert client.head(wallet).event_count == 2


def test_execute_states_gives_up_naming_the_contended_state(
    backend: Backend, ledger: Ledger, new_id: Callable[[str], str]
) -> None:
    client = backend.connect(Options(max_tries=3, first_delay=0.001, max_delay=0.005))
    a, b = new_id("wallet"), new_id("wallet")
    client.execute(a, ledger, deposit(100))
    calls = 0

    def always_overtaken(states: list[Wallet]) -> list[list[Event]]:
        nonlocal calls
        calls += 1
        client.append(b, Event("Deposited", {"amount": 1}))
        return transfer(1)(states)

    with pytest.raises(flipbook.ConflictError) as raised:
        client.execute_states([(a, ledger), (b, ledger)], always_overtaken)
    assert calls == 3
    assert (raised.value.state_id, raised.value.actual_version) == (b, 3)
    assert client.head(a).event_count == 1


# ---- asyncio ----------------------------------------------------------------------------------


def test_asyncio_append_states_and_execute_states(backend: Backend, new_id: Callable[[str], str]) -> None:
    a, b = new_id("wallet"), new_id("wallet")
    ledger = Ledger()

    async def main() -> None:
        client = await backend.connect_aio()
        results = await client.append_states(
            [AppendPart(a, Event("Deposited", {"amount": 50})), AppendPart(b, Event("Deposited", {"amount": 1}))]
        )
        assert [r.last_version for r in results] == [1, 1]
        with pytest.raises(flipbook.ConflictError) as raised:
            await client.append_states(
                [AppendPart(a, Event("Deposited", {"amount": 1})), AppendPart(b, Event("X"), expected=NO_STATE)]
            )
        assert (raised.value.state_id, raised.value.actual_version) == (b, 1)

        other = await backend.connect_aio()
        seen: list[list[int]] = []

        def decide(wallets: list[Wallet]) -> list[list[Event]]:
            seen.append([w.balance for w in wallets])
            if len(seen) == 1:  # another client writes to the target meanwhile
                other.sync.append(b, Event("Deposited", {"amount": 5}))
            return transfer(20)(wallets)

        done = await client.execute_states([(a, ledger), (b, ledger)], decide)
        assert seen == [[50, 1], [50, 6]]
        assert [(d.state, d.version, d.tries) for d in done] == [(Wallet(30, 1), 2, 2), (Wallet(26, 3), 3, 2)]
        assert [(await other.load(w, ledger)).state for w in (a, b)] == [Wallet(30, 1), Wallet(26, 3)]

    asyncio.run(main())


def test_asyncio_execute_states_in_memory() -> None:
    async def main() -> list[flipbook.Executed[Wallet]]:
        client = aio.Client.in_memory()
        await client.execute("a", Ledger(), deposit(5))
        return await client.execute_states([("a", Ledger()), ("b", Ledger())], transfer(5))

    assert [d.state.balance for d in asyncio.run(main())] == [0, 5]
