"""The conformance suite's Python driver (``conformance/README.md``, "The protocol"): reads one
request a line on stdin and answers one line on stdout, using only the ``flipbook`` package's
public API, as an application would."""

from __future__ import annotations

import json
import sys
import threading
from datetime import datetime, timezone
from typing import Any

import flipbook
from flipbook import ANY, NO_STATE, AppendPart, Event, RecordedEvent, Reducer

Json = dict[str, Any]


class DriverError(Exception):
    """A request the driver cannot run (a bug in the case or the runner, not the binding)."""


def expected(value: Any) -> Any:
    if value == "no_state":
        return NO_STATE
    if isinstance(value, int):
        return value
    return ANY


def moment(nanos: int | None) -> datetime | None:
    """A time given in nanoseconds (the cases use whole seconds: a datetime holds microseconds)."""
    return None if nanos is None else datetime.fromtimestamp(nanos / 1e9, tz=timezone.utc)


def event(spec: Json) -> Event:
    common: Json = {
        "event_id": spec.get("id"),
        "metadata": spec.get("metadata"),
        "version": spec.get("version"),
        "timestamp": moment(spec.get("timestamp_nanos")),
    }
    if "payload_size" in spec:
        payload = b"x" * spec["payload_size"]
        return Event(spec.get("name", ""), payload=payload, content_type="application/octet-stream", **common)
    return Event(spec.get("name", ""), spec.get("payload", {}), **common)


def part(args: Json) -> AppendPart:
    return AppendPart(
        args["state"],
        [event(e) for e in args["events"]],
        expected=expected(args.get("expected")),
        version_neutral=bool(args.get("neutral")),
        state_metadata=args.get("state_metadata"),
    )


def outcome(result: flipbook.AppendResult) -> Json:
    return {"last_version": result.last_version, "positions": list(result.global_positions)}


def event_json(e: RecordedEvent) -> Json:
    if e.content_type == "application/json":
        try:
            payload = json.loads(e.payload)
        except ValueError:
            payload = {"size": len(e.payload)}
    else:
        payload = {"size": len(e.payload)}
    return {
        "state": e.state_id,
        "version": e.version,
        "position": e.global_position,
        "id": e.event_id,
        "name": e.name,
        "payload": payload,
        "metadata": dict(e.metadata),
        "timestamp_nanos": e.timestamp_nanos,
    }


# ---- the named reducers and decide functions (conformance/README.md) --------------------------


def amount(e: RecordedEvent) -> int:
    try:
        return int(json.loads(e.payload).get("amount", 0))
    except (ValueError, AttributeError):
        return 0


class Wallet(Reducer[Json]):
    revision = "conformance-wallet-1"

    def initial(self) -> Json:
        return {"balance": 0}

    def apply(self, state: Json, e: RecordedEvent) -> Json:
        change = {"Deposited": amount(e), "Withdrawn": -amount(e)}.get(e.name, 0)
        return {"balance": state["balance"] + change}


class Counter(Reducer[Json]):
    revision = "conformance-counter-1"

    def initial(self) -> Json:
        return {"count": 0}

    def apply(self, state: Json, e: RecordedEvent) -> Json:
        return {"count": state["count"] + 1}


REDUCERS: dict[str, Reducer[Json]] = {"wallet": Wallet(), "counter": Counter()}


class InsufficientFunds(Exception):
    pass


def execute(client: flipbook.Client, args: Json) -> Json:
    state_id, decide = args["state"], args["decide"]
    competitor = [decide["competitor"]] if "competitor" in decide else []

    def decision(state: Json) -> list[Event]:
        # The competing writer appends while the first decision is made, so its append
        # conflicts and the command must decide again on the new state.
        if competitor:
            client.append(state_id, Event("Deposited", {"amount": competitor.pop()}))
        if "deposit" in decide:
            return [Event("Deposited", {"amount": decide["deposit"]})]
        if "withdraw" in decide:
            if state["balance"] < decide["withdraw"]:
                raise InsufficientFunds(f"{state['balance']} < {decide['withdraw']}")
            return [Event("Withdrawn", {"amount": decide["withdraw"]})]
        return []

    executed = client.execute(state_id, REDUCERS[args["reducer"]], decision)
    return {
        "state": executed.state,
        "version": executed.version,
        "tries": executed.tries,
        "appended": executed.appended is not None,
    }


def subscribe(client: flipbook.Client, args: Json) -> list[Json]:
    """The first ``count`` events of a subscription (from the beginning, or after a position),
    or what arrived of them within 10 s (``close`` from another thread ends a waiting iteration)."""
    received: list[Json] = []
    subscription = client.subscribe(prefix=args["prefix"], names=args.get("names", []), start=subscription_start(args))
    patience = threading.Timer(PATIENCE, subscription.close)
    patience.start()
    try:
        for e in subscription:
            received.append(event_json(e))
            if len(received) >= args["count"]:
                break
    finally:
        patience.cancel()
        subscription.close()
    return received


def subscription_start(args: Json) -> Any:
    after = args.get("after")
    return "beginning" if after is None else after


class Consumer:
    """An open subscription consumed on a thread of its own, the way an application's projection
    consumes one (``subscribe_open``, ``subscribe_next``, ``subscribe_close``): it is iterated
    all the time, also while the runner restarts a server."""

    def __init__(self, subscription: flipbook.Subscription) -> None:
        self._subscription = subscription
        self._changed = threading.Condition()
        self._events: list[Json] = []
        self._error: flipbook.FlipbookError | None = None
        self._messages = 0  # of any kind: a subscription from "now" first sends a checkpoint
        self._taken = 0
        self._thread = threading.Thread(target=self._consume, daemon=True)
        self._thread.start()

    def _consume(self) -> None:
        try:
            for message in self._subscription.with_checkpoints():
                with self._changed:
                    self._messages += 1
                    if isinstance(message, RecordedEvent):
                        self._events.append(event_json(message))
                    self._changed.notify_all()
        except flipbook.FlipbookError as error:
            with self._changed:
                self._error = error
                self._changed.notify_all()

    def started(self, patience: float) -> None:
        """Waits for the first message: where a subscription from "now" starts is settled then."""
        with self._changed:
            self._changed.wait_for(lambda: self._messages > 0 or self._error is not None, patience)

    def next(self, count: int, patience: float) -> list[Json]:
        """The next ``count`` events, or what arrived of them within ``patience``; the error that
        ended the subscription once the events before it are taken."""
        wanted = self._taken + count
        with self._changed:
            self._changed.wait_for(lambda: len(self._events) >= wanted or self._error is not None, patience)
            end = min(len(self._events), wanted)
            if end == self._taken and self._error is not None:
                error, self._error = self._error, None
                raise error
            events = self._events[self._taken : end]
            self._taken = end
            return events

    def close(self) -> None:
        self._subscription.close()
        self._thread.join(timeout=10)


class Session:
    """What the driver holds between steps: its client, and the subscription a case opened."""

    def __init__(self) -> None:
        self.client: flipbook.Client | None = None
        self.consumer: Consumer | None = None

    def close_subscription(self) -> None:
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None

    def subscription_step(self, client: flipbook.Client, op: str, args: Json) -> Json:
        if op == "subscribe_open":
            self.close_subscription()
            subscription = client.subscribe(
                prefix=args["prefix"], names=args.get("names", []), start=subscription_start(args)
            )
            self.consumer = Consumer(subscription)
            if args.get("after") == "now":
                self.consumer.started(PATIENCE)
            return {}
        if op == "subscribe_next":
            if self.consumer is None:
                raise DriverError("no subscription is open")
            return {"events": self.consumer.next(args["count"], args.get("wait_ms", PATIENCE * 1000) / 1000)}
        self.close_subscription()
        return {}


#: Seconds a subscription step waits for the events it asks for.
PATIENCE = 10.0


def execute_states(client: flipbook.Client, args: Json) -> Json:
    """``{"transfer": n}`` over two wallets: ``Withdrawn n`` from the first, ``Deposited n`` to
    the second, in one atomic append; refused when the first's balance is below n."""
    amount = args["decide"]["transfer"]

    def transfer(wallets: list[Json]) -> list[list[Event]]:
        if wallets[0]["balance"] < amount:
            raise InsufficientFunds(f"{wallets[0]['balance']} < {amount}")
        return [[Event("Withdrawn", {"amount": amount})], [Event("Deposited", {"amount": amount})]]

    wallet = REDUCERS["wallet"]
    executed = client.execute_states([(state, wallet) for state in args["states"]], transfer)
    results = [{"state": e.state, "version": e.version, "appended": e.appended is not None} for e in executed]
    return {"results": results}


def answer(client: flipbook.Client, op: str, args: Json) -> Json:
    if op == "append":
        return outcome(
            client.append(
                args["state"],
                [event(e) for e in args["events"]],
                expected=expected(args.get("expected")),
                version_neutral=bool(args.get("neutral")),
                state_metadata=args.get("state_metadata"),
            )
        )
    if op == "append_states":
        return {"parts": [outcome(r) for r in client.append_states([part(p) for p in args["parts"]])]}
    if op == "read":
        events = client.read(
            args["state"],
            backward=bool(args.get("backward")),
            from_version=args.get("min_version"),
            to_version=args.get("max_version"),
            limit=args.get("limit"),
            names=args.get("names", []),
            as_of=moment(args.get("as_of_nanos")),
        )
        return {"events": [event_json(e) for e in events]}
    if op == "read_all":
        events = client.read_all(
            prefix=args["prefix"],
            names=args.get("names", []),
            after_position=args.get("after", 0),
            until_position=args.get("until"),
            backward=bool(args.get("backward")),
            limit=args.get("limit"),
        )
        return {"events": [event_json(e) for e in events]}
    if op == "head":
        head = client.head(args["state"])
        return {
            "last_version": head.last_version,
            "event_count": head.event_count,
            "kind": "version-neutral" if head.version_neutral else "versioned",
            "metadata": dict(head.metadata),
            "last_position": head.last_global_position,
        }
    if op == "log_head":
        log = client.log_head()
        return {"settled_position": log.settled_position, "event_count": log.event_count}
    if op == "load":
        loaded = client.load(args["state"], REDUCERS[args["reducer"]], as_of=moment(args.get("as_of_nanos")))
        return {"state": loaded.state, "version": loaded.version}
    if op == "execute":
        return execute(client, args)
    if op == "execute_states":
        return execute_states(client, args)
    if op == "subscribe":
        return {"events": subscribe(client, args)}
    if op == "put_snapshot":
        payload = json.dumps(args["payload"]).encode()
        client.put_snapshot(args["state"], args["version"], args["revision"], payload)
        return {}
    if op == "get_snapshot":
        found = client.get_snapshot(args["state"], args["revision"], max_version=args.get("max_version"))
        if found is None:
            return {"snapshot": None}
        snapshot = {"version": found.version, "revision": found.reducer_revision, "payload": json.loads(found.payload)}
        return {"snapshot": snapshot}
    raise DriverError(f"no op {op}")


def error_json(error: flipbook.FlipbookError) -> Json:
    out: Json = {"code": error.code, "message": str(error)}
    for key, value in (("field", error.field), ("state", error.state_id), ("actual_version", error.actual_version)):
        if value is not None:
            out[key] = value
    return out


def main() -> None:
    session = Session()
    for line in sys.stdin:
        request = json.loads(line)
        op, args = request["op"], request.get("args") or {}
        try:
            if op == "connect":
                # A connect while connected replaces the client (the other server, or a new
                # client of the same embedded file).
                session.close_subscription()
                if session.client is not None:
                    session.client.close()
                    session.client = None
                session.client = (
                    flipbook.Client.connect(args["server"])
                    if "server" in args
                    else flipbook.Client.open_embedded(args["embedded"])
                )
                reply: Json = {"ok": {}}
            elif session.client is None:
                raise DriverError("not connected")
            elif op in ("subscribe_open", "subscribe_next", "subscribe_close"):
                reply = {"ok": session.subscription_step(session.client, op, args)}
            else:
                reply = {"ok": answer(session.client, op, args)}
        except flipbook.FlipbookError as error:
            reply = {"error": error_json(error)}
        except InsufficientFunds as error:
            # The decide function's own error reaches the caller unchanged: the core calls it REJECTED.
            reply = {"error": {"code": "REJECTED", "message": str(error)}}
        except (DriverError, KeyError, TypeError) as error:
            reply = {"error": {"code": "DRIVER", "message": f"{type(error).__name__}: {error}"}}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    session.close_subscription()
    if session.client is not None:
        session.client.close()


if __name__ == "__main__":
    main()
