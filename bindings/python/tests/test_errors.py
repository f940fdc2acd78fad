"""Every error class, with its attributes, from the backend that raises it."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

import flipbook
from conftest import AUTH_TOKEN, Server, events
from flipbook import ANY, AppendPart, Event, errors


def assert_error(error: flipbook.FlipbookError, cls: type[flipbook.FlipbookError], code: str) -> None:
    assert type(error) is cls
    assert isinstance(error, flipbook.FlipbookError)
    assert error.code == code
    assert error.retryable is (code in ("UNAVAILABLE", "READ_ONLY", "FELL_BEHIND"))
    assert str(error)


def test_every_class_is_a_flipbook_error_named_by_its_code() -> None:
    expected = {
        "INVALID_ARGUMENT": flipbook.InvalidArgument,
        "NOT_FOUND": flipbook.NotFound,
        "VERSION_CONFLICT": flipbook.ConflictError,
        "DUPLICATE_EVENT": flipbook.DuplicateEvent,
        "STATE_KIND_MISMATCH": flipbook.StateKindMismatch,
        "TOO_LARGE": flipbook.TooLarge,
        "STORAGE_FULL": flipbook.StorageFull,
        "READ_ONLY": flipbook.ReadOnly,
        "UNAUTHENTICATED": flipbook.Unauthenticated,
        "PERMISSION_DENIED": flipbook.PermissionDenied,
        "UNAVAILABLE": flipbook.Unavailable,
        "FELL_BEHIND": flipbook.FellBehind,
        "INTERNAL": flipbook.InternalError,
    }
    for code, cls in expected.items():
        assert issubclass(cls, flipbook.FlipbookError)
        assert issubclass(flipbook.FlipbookError, Exception)
        assert errors.class_for_code(code) is cls
        error = cls("message", code=code)
        assert (error.code, error.field, error.state_id, error.actual_version) == (code, None, None, None)
        assert error.retryable is (cls in (flipbook.Unavailable, flipbook.ReadOnly, flipbook.FellBehind))
    assert errors.class_for_code("SOMETHING_NEW") is flipbook.FlipbookError
    assert issubclass(flipbook.ReadOnly, flipbook.Unavailable)  # caught where Unavailable is
    # The binding's own code, for a closed client: unavailable for good.
    assert errors.class_for_code("CLOSED") is flipbook.Unavailable
    assert not flipbook.Unavailable("closed", code="CLOSED").retryable


# ---- from every backend ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c, s: c.append("", Event("A")), "state_id"),
        (lambda c, s: c.append(s, Event("")), "events[0].name"),
        (lambda c, s: c.append(s, []), "events"),
        (lambda c, s: c.append(s, Event("A", event_id="not-a-uuid")), "events[0].event_id"),
        (lambda c, s: c.append(s, [Event("A", event_id=str(uuid.UUID(int=1)))] * 2), "events[1].event_id"),
        (lambda c, s: c.append(s, Event("A"), version_neutral=True, expected=3), "expected"),
        (lambda c, s: c.append(s, Event("A"), expected=-1), "expected"),
        (lambda c, s: c.append(s, Event("A", timestamp=datetime(2024, 1, 1))), "timestamp"),
        (lambda c, s: c.append(s, Event("A"), state_metadata={"": "empty key"}), 'state_metadata[""]'),
        (lambda c, s: c.append(s, Event("A", version=0)), "events[0].version"),
        (lambda c, s: c.append(s, Event("A", version=-1)), "events[0].version"),
        (lambda c, s: c.append(s, [Event("A", version=1), Event("B", version=3)]), "events[1].version"),
        (lambda c, s: c.append_states([]), "parts"),
        (
            lambda c, s: c.append_states([AppendPart(s, Event("A")), AppendPart(s + "-2", Event(""))]),
            "parts[1].events[0].name",
        ),
        (lambda c, s: c.append_states([AppendPart(s, Event("A")), AppendPart(s, Event("B"))]), "parts[1].state_id"),
        (lambda c, s: c.append_states([AppendPart(s, Event("A"), expected=-1)]), "parts[0].expected"),
        (lambda c, s: c.append_states([AppendPart(s, [])]), "parts[0].events"),
        (
            lambda c, s: c.append_states([AppendPart(s, Event("A")), AppendPart(s + "-2", Event("B", event_id="x"))]),
            "parts[1].events[0].event_id",
        ),
        (
            lambda c, s: c.append_states([AppendPart(s + "-2", Event("A")), AppendPart(s, Event("B", version=-1))]),
            "parts[1].events[0].version",
        ),
        (lambda c, s: list(c.read(s, from_version=5, to_version=2)), "min_version"),
        (lambda c, s: list(c.read(s, as_of=datetime(2024, 1, 1))), "as_of"),
        (lambda c, s: list(c.read_all(names=[""])), "names[0]"),
        (lambda c, s: c.head(""), "state_id"),
        (lambda c, s: c.get_snapshot(s, ""), "reducer_revision"),
        (lambda c, s: c.put_snapshot(s, 0, "rev", b"{}"), "snapshot.version"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_invalid_argument_names_the_field(
    client: flipbook.Client, state_id: str, call: Callable[[flipbook.Client, str], object], field: str
) -> None:
    with pytest.raises(flipbook.InvalidArgument) as raised:
        call(client, state_id)
    assert_error(raised.value, flipbook.InvalidArgument, "INVALID_ARGUMENT")
    assert raised.value.field == field
    assert raised.value.actual_version is None
    with pytest.raises(flipbook.NotFound):
        client.head(state_id)  # nothing was stored


def test_conflict_error_carries_the_actual_version(client: flipbook.Client, state_id: str) -> None:
    client.append(state_id, events("A", "B", "C"))
    with pytest.raises(flipbook.ConflictError) as raised:
        client.append(state_id, Event("D"), expected=1)
    assert_error(raised.value, flipbook.ConflictError, "VERSION_CONFLICT")
    assert raised.value.actual_version == 3
    assert raised.value.state_id == state_id
    assert raised.value.field is None


def test_not_found(client: flipbook.Client, state_id: str) -> None:
    with pytest.raises(flipbook.NotFound) as raised:
        client.head(state_id)
    assert_error(raised.value, flipbook.NotFound, "NOT_FOUND")
    assert raised.value.field is None and raised.value.actual_version is None


def test_duplicate_event(client: flipbook.Client, state_id: str) -> None:
    event_id = str(uuid.uuid4())
    client.append(state_id, Event("Deposited", {"amount": 1}, event_id=event_id))
    with pytest.raises(flipbook.DuplicateEvent) as raised:
        client.append(state_id, Event("Deposited", {"amount": 2}, event_id=event_id))
    assert_error(raised.value, flipbook.DuplicateEvent, "DUPLICATE_EVENT")
    assert event_id in str(raised.value)
    assert raised.value.state_id == state_id
    assert client.head(state_id).event_count == 1


def test_state_kind_mismatch(client: flipbook.Client, state_id: str, new_id: Callable[[str], str]) -> None:
    client.append(state_id, Event("Versioned"))
    with pytest.raises(flipbook.StateKindMismatch) as raised:
        client.append(state_id, Event("Neutral"), version_neutral=True)
    assert_error(raised.value, flipbook.StateKindMismatch, "STATE_KIND_MISMATCH")
    assert raised.value.state_id == state_id

    neutral = new_id("neutral")
    client.append(neutral, Event("Neutral"), version_neutral=True)
    with pytest.raises(flipbook.StateKindMismatch):
        client.append(neutral, Event("Versioned"), expected=ANY)


# ---- from servers and the network -----------------------------------------------------------


def test_too_large_request(sqlite_server: Server, state_id: str) -> None:
    client = flipbook.Client.connect(sqlite_server.endpoint)
    limit = client.server_info().max_request_bytes
    payload = b"x" * client.server_info().max_payload_bytes
    count = limit // len(payload) + 1  # every event is allowed, the request as a whole is not
    with pytest.raises(flipbook.TooLarge) as raised:
        client.append(state_id, [Event("Big", payload=payload) for _ in range(count)])
    assert_error(raised.value, flipbook.TooLarge, "TOO_LARGE")
    assert raised.value.field is None  # the request as a whole
    with pytest.raises(flipbook.NotFound):
        client.head(state_id)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c, s, big: c.append(s, [Event("A"), Event("Big", payload=big)]), "events[1].payload"),
        (lambda c, s, big: c.append(s, [Event("A")] * 1001), "events"),
        (lambda c, s, big: c.append(s, Event("A", metadata={"k": "v" * 70_000})), "events[0].metadata"),
        (lambda c, s, big: c.append(s, Event("A"), state_metadata={"k": "v" * 70_000}), "state_metadata"),
        (
            lambda c, s, big: c.append_states(
                [AppendPart(s, Event("A")), AppendPart(s + "-2", Event("B", payload=big))]
            ),
            "parts[1].events[0].payload",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_data_over_a_limit_is_too_large_naming_the_field(
    client: flipbook.Client, state_id: str, call: Callable[[flipbook.Client, str, bytes], object], field: str
) -> None:
    big = b"x" * (client.server_info().max_payload_bytes + 1)
    with pytest.raises(flipbook.TooLarge) as raised:
        call(client, state_id, big)
    assert_error(raised.value, flipbook.TooLarge, "TOO_LARGE")
    assert raised.value.field == field
    with pytest.raises(flipbook.NotFound):
        client.head(state_id)  # nothing was stored


@pytest.mark.parametrize("token", [None, "not-the-token"])
def test_unauthenticated(auth_server: Server, token: str | None) -> None:
    with pytest.raises(flipbook.Unauthenticated) as raised:
        flipbook.Client.connect(auth_server.endpoint, token=token)
    assert_error(raised.value, flipbook.Unauthenticated, "UNAUTHENTICATED")


def test_the_right_token_is_accepted(auth_server: Server, state_id: str) -> None:
    client = flipbook.Client.connect(auth_server.endpoint, token=AUTH_TOKEN)
    assert client.append(state_id, Event("Authorized")).last_version == 1
    assert client.head(state_id).event_count == 1


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_unavailable_where_nothing_listens() -> None:
    with pytest.raises(flipbook.Unavailable) as raised:
        flipbook.Client.connect(f"http://127.0.0.1:{free_port()}", connect_timeout=2.0)
    assert_error(raised.value, flipbook.Unavailable, "UNAVAILABLE")
    assert raised.value.retryable


def test_unavailable_when_the_server_goes_away(tmp_path: Path, state_id: str) -> None:
    server = Server("server-short-lived", tmp_path, ["--sqlite-path", str(tmp_path / "flipbook.db")])
    try:
        options = flipbook.Options(max_resends=1, first_delay=0.001, max_delay=0.01)
        client = flipbook.Client.connect(server.endpoint, options=options, request_timeout=5.0)
        client.append(state_id, Event("BeforeTheEnd"))
    finally:
        server.stop()
    for call in (lambda: client.head(state_id), lambda: client.append(state_id, Event("AfterTheEnd"))):
        with pytest.raises(flipbook.Unavailable) as raised:
            call()
        assert raised.value.retryable


def test_a_subscription_ends_once_its_resume_window_passes(tmp_path: Path, state_id: str) -> None:
    # The core resumes a subscription while the server is away, for `resume_for` seconds.
    server = Server("server-resume-window", tmp_path, ["--sqlite-path", str(tmp_path / "flipbook.db")])
    try:
        client = flipbook.Client.connect(server.endpoint, options=flipbook.Options(resume_for=0.3))
        client.append(state_id, Event("BeforeTheEnd"))
        subscription = client.subscribe(prefix=state_id)
        assert next(subscription).name == "BeforeTheEnd"
    finally:
        server.stop()
    started = time.monotonic()
    with pytest.raises(flipbook.Unavailable):
        next(subscription)
    assert 0.3 <= time.monotonic() - started < 10, "the window the options give, not the default 30 s"
    assert subscription.position is not None


def test_invalid_endpoint() -> None:
    with pytest.raises(flipbook.InvalidArgument) as raised:
        flipbook.Client.connect("http://bad host:1")
    assert raised.value.field == "endpoint"
