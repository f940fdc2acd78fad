"""The low-level API on every backend: append, read, read_pages, read_all, head, snapshots,
server_info."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest

import flipbook
from conftest import Backend, events
from flipbook import ANY, NO_STATE, Event

# ---- append ---------------------------------------------------------------------------------


def test_append_assigns_versions_and_positions(client: flipbook.Client, state_id: str) -> None:
    first = client.append(state_id, Event("Opened", {"owner": "ann"}))
    assert first.last_version == 1
    assert len(first.global_positions) == 1
    assert first.recorded_at.tzinfo is not None

    second = client.append(state_id, events("A", "B", "C"))
    assert second.last_version == 4
    assert len(second.global_positions) == 3
    assert second.global_positions == sorted(second.global_positions)
    assert second.global_positions[0] > first.global_positions[0]
    assert second.recorded_at >= first.recorded_at

    recorded = list(client.read(state_id))
    assert [(e.version, e.name) for e in recorded] == [(1, "Opened"), (2, "A"), (3, "B"), (4, "C")]
    assert [e.global_position for e in recorded] == first.global_positions + second.global_positions
    assert recorded[0].json() == {"owner": "ann"}
    assert recorded[0].state_id == state_id


def test_append_keeps_every_field(client: flipbook.Client, state_id: str) -> None:
    event_id = str(uuid.uuid4())
    when = datetime(2024, 2, 29, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    client.append(
        state_id,
        Event(
            "Raw",
            payload=b"\x00\x01binary",
            content_type="application/octet-stream",
            event_id=event_id,
            timestamp=when,
            metadata={"correlation": "c-1", "user": "ann"},
        ),
    )
    client.append(state_id, Event("TimeNeutral", [1, 2, 3]))
    raw, neutral = client.read(state_id)
    assert raw.event_id == event_id
    assert raw.payload == b"\x00\x01binary"
    assert raw.content_type == "application/octet-stream"
    assert raw.timestamp_nanos == int(when.timestamp()) * 1_000_000_000 + 123_456_000
    assert raw.metadata == {"correlation": "c-1", "user": "ann"}
    assert raw.recorded_at_nanos > 0
    assert neutral.timestamp_nanos is None
    assert neutral.content_type == "application/json"
    assert neutral.json() == [1, 2, 3]
    assert neutral.metadata == {}
    uuid.UUID(neutral.event_id)  # made by the SDK
    assert repr(raw).startswith("RecordedEvent(")


def test_expected_any_appends_whatever_the_version(client: flipbook.Client, state_id: str) -> None:
    assert client.append(state_id, Event("A"), expected=ANY).last_version == 1
    assert client.append(state_id, Event("B"), expected=ANY).last_version == 2


def test_expected_no_state(client: flipbook.Client, state_id: str) -> None:
    assert client.append(state_id, Event("Created"), expected=NO_STATE).last_version == 1
    with pytest.raises(flipbook.ConflictError) as conflict:
        client.append(state_id, Event("CreatedAgain"), expected=NO_STATE)
    assert conflict.value.actual_version == 1
    assert client.head(state_id).event_count == 1


def test_expected_exact_version(client: flipbook.Client, state_id: str) -> None:
    assert client.append(state_id, events("A", "B"), expected=0).last_version == 2
    assert client.append(state_id, Event("C"), expected=2).last_version == 3
    for stale in (0, 2, 7):
        with pytest.raises(flipbook.ConflictError) as conflict:
            client.append(state_id, Event("Late"), expected=stale)
        assert conflict.value.actual_version == 3
    assert client.head(state_id).last_version == 3


def test_version_neutral_state(client: flipbook.Client, state_id: str) -> None:
    first = client.append(state_id, events("Seen", "Seen"), version_neutral=True)
    assert first.last_version is None
    second = client.append(state_id, Event("Seen"), version_neutral=True, expected=ANY)
    assert second.last_version is None
    recorded = list(client.read(state_id))
    assert [e.version for e in recorded] == [None, None, None]
    assert [e.global_position for e in recorded] == first.global_positions + second.global_positions

    head = client.head(state_id)
    assert head.version_neutral
    assert head.last_version is None
    assert head.event_count == 3


def test_version_neutral_append_with_no_state(client: flipbook.Client, state_id: str) -> None:
    client.append(state_id, Event("Seen"), version_neutral=True, expected=NO_STATE)
    with pytest.raises(flipbook.ConflictError):
        client.append(state_id, Event("Seen"), version_neutral=True, expected=NO_STATE)


def test_state_metadata_is_merged_into_the_head(client: flipbook.Client, state_id: str) -> None:
    client.append(state_id, Event("A"), state_metadata={"owner": "ann", "tier": "gold"})
    client.append(state_id, Event("B"), state_metadata={"tier": "platinum"})
    client.append(state_id, Event("C"))
    assert client.head(state_id).metadata == {"owner": "ann", "tier": "platinum"}


def test_same_event_id_appended_twice_returns_the_same_result(client: flipbook.Client, state_id: str) -> None:
    event = Event("Deposited", {"amount": 5}, event_id=str(uuid.uuid4()))
    first = client.append(state_id, event)
    again = client.append(state_id, event)
    assert again == first
    assert client.head(state_id).event_count == 1


def test_resent_batch_with_an_exact_expectation_returns_the_original_result(
    client: flipbook.Client, state_id: str
) -> None:
    batch = [Event("A", {"i": i}, event_id=str(uuid.uuid4())) for i in range(3)]
    first = client.append(state_id, batch, expected=0)
    client.append(state_id, Event("Later"))
    # The state moved on, but the same events at the same place are a re-send, not a conflict.
    assert client.append(state_id, batch, expected=0) == first
    assert [e.name for e in client.read(state_id)] == ["A", "A", "A", "Later"]


def test_explicit_versions_round_trip(client: flipbook.Client, state_id: str) -> None:
    first = client.append(state_id, [Event("A", version=1), Event("B", version=2)], expected=NO_STATE)
    assert first.last_version == 2
    assert client.append(state_id, Event("C", version=3), expected=2).last_version == 3
    assert client.append(state_id, Event("D", version=4)).last_version == 4  # under ANY too
    assert [(e.version, e.name) for e in client.read(state_id)] == [(1, "A"), (2, "B"), (3, "C"), (4, "D")]
    assert Event("E", version=5).version == 5


def test_explicit_versions_with_a_gap_are_refused(client: flipbook.Client, state_id: str) -> None:
    client.append(state_id, events("A", "B"))
    with pytest.raises(flipbook.InvalidArgument) as inside:
        client.append(state_id, [Event("C", version=3), Event("E", version=5)])
    assert inside.value.field == "events[1].version"
    with pytest.raises(flipbook.InvalidArgument) as expected:
        client.append(state_id, Event("D", version=4), expected=2)
    assert expected.value.field == "events[0].version"
    # After the stored state: its version is not where the events say they go.
    with pytest.raises(flipbook.ConflictError) as after:
        client.append(state_id, Event("D", version=4))
    assert (after.value.state_id, after.value.actual_version) == (state_id, 2)
    with pytest.raises(flipbook.InvalidArgument) as some:
        client.append(state_id, [Event("C", version=3), Event("D")])
    assert some.value.field == "events[1].version"
    assert client.head(state_id).last_version == 2


# ---- read -----------------------------------------------------------------------------------


@pytest.fixture
def ten(client: flipbook.Client, state_id: str) -> str:
    """A state of ten events: A1, B2, A3, B4 … with versions 1 … 10."""
    client.append(state_id, [Event("A" if v % 2 else "B", {"v": v}) for v in range(1, 11)])
    return state_id


def test_read_forward_and_backward(client: flipbook.Client, ten: str) -> None:
    assert [e.version for e in client.read(ten)] == list(range(1, 11))
    assert [e.version for e in client.read(ten, backward=True)] == list(range(10, 0, -1))


def test_read_bounds_and_limit(client: flipbook.Client, ten: str) -> None:
    assert [e.version for e in client.read(ten, from_version=4)] == [4, 5, 6, 7, 8, 9, 10]
    assert [e.version for e in client.read(ten, to_version=3)] == [1, 2, 3]
    assert [e.version for e in client.read(ten, from_version=3, to_version=6)] == [3, 4, 5, 6]
    assert [e.version for e in client.read(ten, limit=4)] == [1, 2, 3, 4]
    assert [e.version for e in client.read(ten, backward=True, limit=3)] == [10, 9, 8]
    assert [e.version for e in client.read(ten, backward=True, from_version=3, to_version=6)] == [6, 5, 4, 3]
    assert [e.version for e in client.read(ten, from_version=8, limit=2)] == [8, 9]
    assert list(client.read(ten, from_version=11)) == []


def test_read_a_version_range_in_both_directions(client: flipbook.Client, ten: str) -> None:
    # Both bounds inclusive, the same versions either way, in the read's order.
    assert [e.version for e in client.read(ten, from_version=3, to_version=6)] == [3, 4, 5, 6]
    assert [e.version for e in client.read(ten, from_version=3, to_version=6, backward=True)] == [6, 5, 4, 3]
    assert [e.version for e in client.read(ten, from_version=5, to_version=5)] == [5]
    assert [e.version for e in client.read(ten, from_version=5, to_version=5, backward=True)] == [5]
    assert [e.version for e in client.read(ten, from_version=9, to_version=50)] == [9, 10]
    assert [e.version for e in client.read(ten, from_version=9, to_version=50, backward=True)] == [10, 9]
    assert [e.version for e in client.read(ten, to_version=2, backward=True)] == [2, 1]
    # The limit counts from the read's start: the oldest forward, the newest backward.
    assert [e.version for e in client.read(ten, from_version=2, to_version=9, limit=3)] == [2, 3, 4]
    assert [e.version for e in client.read(ten, from_version=2, to_version=9, limit=3, backward=True)] == [9, 8, 7]
    assert [e.version for e in client.read(ten, from_version=3, to_version=8, names=["A"], backward=True)] == [7, 5, 3]
    pages = client.read_pages(ten, from_version=4, to_version=7, backward=True)
    assert [e.version for page in pages for e in page] == [7, 6, 5, 4]


def test_read_a_version_range_across_pages(client: flipbook.Client, state_id: str) -> None:
    for _ in range(3):
        client.append(state_id, [Event("E") for _ in range(500)])
    assert [e.version for e in client.read(state_id, from_version=200, to_version=1400)] == list(range(200, 1401))
    backward = client.read(state_id, from_version=200, to_version=1400, backward=True)
    assert [e.version for e in backward] == list(range(1400, 199, -1))


def test_read_names(client: flipbook.Client, ten: str) -> None:
    assert [e.version for e in client.read(ten, names=["B"])] == [2, 4, 6, 8, 10]
    assert [e.version for e in client.read(ten, names=["A", "B"], limit=3)] == [1, 2, 3]
    assert [e.version for e in client.read(ten, names=["B"], backward=True, limit=2)] == [10, 8]
    assert list(client.read(ten, names=["Nothing"])) == []


def test_read_as_of(client: flipbook.Client, state_id: str) -> None:
    t0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
    client.append(
        state_id,
        [
            Event("Early", timestamp=t0),
            Event("Always"),  # time-neutral events count at any time
            Event("Late", timestamp=t0 + timedelta(days=2)),
            Event("Middle", timestamp=t0 + timedelta(days=1)),
        ],
    )
    assert [e.name for e in client.read(state_id, as_of=t0 - timedelta(seconds=1))] == ["Always"]
    assert [e.name for e in client.read(state_id, as_of=t0)] == ["Early", "Always"]
    as_of_day_one = client.read(state_id, as_of=t0 + timedelta(days=1, hours=1))
    assert [(e.name, e.version) for e in as_of_day_one] == [("Early", 1), ("Always", 2), ("Middle", 4)]
    assert len(list(client.read(state_id, as_of=t0 + timedelta(days=30)))) == 4


def test_read_of_an_unknown_state_is_empty(client: flipbook.Client, state_id: str) -> None:
    assert list(client.read(state_id)) == []
    assert list(client.read_pages(state_id)) == []


def test_read_pages(client: flipbook.Client, state_id: str) -> None:
    client.append(state_id, [Event("E", {"i": i}) for i in range(500)])
    pages = list(client.read_pages(state_id))
    assert len(pages) > 1, "500 events come in several pages"
    assert all(isinstance(page, list) and page for page in pages)
    assert [e.version for page in pages for e in page] == list(range(1, 501))
    backward = [e.version for page in client.read_pages(state_id, backward=True, limit=100) for e in page]
    assert backward == list(range(500, 400, -1))


# ---- read_all -------------------------------------------------------------------------------


def test_read_all_with_prefix_names_and_after_position(client: flipbook.Client, new_id: Callable[[str], str]) -> None:
    prefix = new_id("all") + "/"
    a = client.append(prefix + "a", events("Opened", "Deposited", "Deposited"))
    other = client.append(new_id("elsewhere"), Event("Opened"))
    b = client.append(prefix + "b", events("Opened", "Withdrawn"))
    ours = a.global_positions + b.global_positions

    everything = list(client.read_all(prefix=prefix))
    assert [e.global_position for e in everything] == ours
    assert [e.state_id for e in everything] == [prefix + "a"] * 3 + [prefix + "b"] * 2
    assert other.global_positions[0] not in [e.global_position for e in everything]

    opened = list(client.read_all(prefix=prefix, names=["Opened"]))
    assert [(e.state_id, e.version) for e in opened] == [(prefix + "a", 1), (prefix + "b", 1)]

    after = list(client.read_all(prefix=prefix, after_position=a.global_positions[1]))
    assert [e.global_position for e in after] == ours[2:]
    assert [e.global_position for e in client.read_all(prefix=prefix, limit=2)] == ours[:2]
    assert list(client.read_all(prefix=prefix, after_position=ours[-1])) == []
    upto = client.read_all(prefix=prefix, until_position=a.global_positions[-1])
    assert [e.global_position for e in upto] == a.global_positions


def test_read_all_backward_is_newest_first(client: flipbook.Client, new_id: Callable[[str], str]) -> None:
    prefix = new_id("all") + "/"
    a = client.append(prefix + "a", events("Opened", "Deposited", "Deposited"))
    b = client.append(prefix + "b", events("Opened", "Withdrawn"))
    ours = a.global_positions + b.global_positions
    newest_first = [e.global_position for e in client.read_all(prefix=prefix, backward=True)]
    assert newest_first == ours[::-1]
    last_two = client.read_all(prefix=prefix, backward=True, limit=2)
    assert [(e.state_id, e.name) for e in last_two] == [(prefix + "b", "Withdrawn"), (prefix + "b", "Opened")]
    between = client.read_all(prefix=prefix, backward=True, after_position=ours[0], until_position=ours[3])
    assert [e.global_position for e in between] == [ours[3], ours[2], ours[1]]
    with pytest.raises(flipbook.InvalidArgument) as refused:
        list(client.read_all(until_position=-1))
    assert refused.value.field == "until_position"


def test_log_head_covers_what_was_appended(client: flipbook.Client, state_id: str) -> None:
    appended = client.append(state_id, events("A", "B"))
    head = client.log_head()
    assert head.settled_position >= appended.global_positions[-1]
    assert head.event_count >= 2
    newest = next(client.read_all(backward=True, limit=1))
    assert newest.global_position >= head.settled_position


def test_read_all_without_prefix_sees_every_state(client: flipbook.Client, new_id: Callable[[str], str]) -> None:
    first = client.append(new_id("x"), Event("One"))
    second = client.append(new_id("y"), Event("Two"))
    start = first.global_positions[0] - 1
    found = [e.global_position for e in client.read_all(after_position=start, limit=100_000)]
    assert set(first.global_positions + second.global_positions) <= set(found)
    assert found == sorted(found)


# ---- head -----------------------------------------------------------------------------------


def test_head(client: flipbook.Client, state_id: str) -> None:
    before = datetime.now(timezone.utc) - timedelta(minutes=5)
    client.append(state_id, events("A", "B"), state_metadata={"k": "v"})
    last = client.append(state_id, Event("C"))
    head = client.head(state_id)
    assert head.state_id == state_id
    assert not head.version_neutral
    assert head.last_version == 3
    assert head.event_count == 3
    assert head.last_global_position == last.global_positions[-1]
    assert before <= head.first_recorded_at <= head.last_recorded_at
    assert head.metadata == {"k": "v"}


# ---- snapshots ------------------------------------------------------------------------------


def test_put_get_delete_snapshots(client: flipbook.Client, state_id: str) -> None:
    assert client.get_snapshot(state_id, "rev-1") is None
    client.put_snapshot(state_id, 3, "rev-1", b'{"n":3}')
    client.put_snapshot(state_id, 7, "rev-1", b"seven", content_type="text/plain")
    client.put_snapshot(state_id, 5, "rev-2", b'{"n":5}')

    newest = client.get_snapshot(state_id, "rev-1")
    assert newest is not None
    assert (newest.state_id, newest.version, newest.reducer_revision) == (state_id, 7, "rev-1")
    assert (newest.payload, newest.content_type) == (b"seven", "text/plain")
    assert newest.created_at.tzinfo is not None

    older = client.get_snapshot(state_id, "rev-1", max_version=6)
    assert older is not None
    assert (older.version, older.payload, older.content_type) == (3, b'{"n":3}', "application/json")
    assert client.get_snapshot(state_id, "rev-1", max_version=2) is None

    other = client.get_snapshot(state_id, "rev-2")
    assert other is not None and other.version == 5
    assert client.get_snapshot(state_id, "rev-3") is None

    assert client.delete_snapshots(state_id) == 3
    assert client.get_snapshot(state_id, "rev-1") is None
    assert client.get_snapshot(state_id, "rev-2") is None
    assert client.delete_snapshots(state_id) == 0


# ---- server_info ----------------------------------------------------------------------------


def test_server_info(client: flipbook.Client, backend: Backend) -> None:
    info = client.server_info()
    assert info.server_version
    assert info.event_backend == backend.event_backend
    assert info.snapshot_backend == backend.event_backend
    assert info.durable
    assert info.max_events_per_append >= 1000
    assert info.max_payload_bytes >= 1024 * 1024
    assert info.max_snapshot_bytes > 0
    assert info.max_request_bytes > info.max_payload_bytes
    assert 1 <= info.max_states_per_append <= 64


def test_in_memory_client() -> None:
    client = flipbook.Client.in_memory()
    assert client.append("wallet-1", Event("Deposited", {"amount": 100})).last_version == 1
    assert [e.json() for e in client.read("wallet-1")] == [{"amount": 100}]
    assert client.server_info().event_backend == "memory"
    assert not client.server_info().durable
