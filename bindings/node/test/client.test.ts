/** The low-level API in every mode: appends and expectations, idempotent re-sends, reads and
 * their filters, several states at once, snapshots, the typed errors, closing. */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  ANY,
  type Client,
  ClosedError,
  ConflictError,
  DuplicateEventError,
  FlipbookError,
  InvalidArgumentError,
  NO_STATE,
  NotFoundError,
  StateKindMismatchError,
  TooLargeError,
} from "../src/index.js";
import { collect, inEveryMode, stateId } from "./support.js";

inEveryMode((m) => {
  test("an append stores events in order and the read gives them back", async () => {
    const id = stateId("wallet");
    const first = await m.client.append(id, { name: "Opened", data: { owner: "ada" } }, { expected: NO_STATE });
    assert.equal(first.lastVersion, 1n);
    const second = await m.client.append(
      id,
      [
        { name: "Deposited", data: { amount: 10 }, metadata: { by: "test" } },
        { name: "Blob", payload: new Uint8Array([1, 2, 3]) },
      ],
      { expected: 1n },
    );
    assert.equal(second.lastVersion, 3n);
    assert.equal(second.globalPositions.length, 2);
    assert.ok((second.globalPositions[0] ?? 0n) > (first.globalPositions[0] ?? 0n));
    const events = await collect(m.client.readState(id));
    assert.deepEqual(
      events.map((e) => [e.version, e.name]),
      [
        [1n, "Opened"],
        [2n, "Deposited"],
        [3n, "Blob"],
      ],
    );
    assert.deepEqual(events[1]?.json(), { amount: 10 });
    assert.deepEqual(events[1]?.metadata, { by: "test" });
    assert.equal(events[2]?.contentType, "application/octet-stream");
    assert.deepEqual([...(events[2]?.payload ?? [])], [1, 2, 3]);
    assert.equal(events[0]?.stateId, id);
    assert.match(events[0]?.eventId ?? "", /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    const head = await m.client.head(id);
    assert.equal(head.lastVersion, 3n);
    assert.equal(head.lastGlobalPosition, second.globalPositions[1]);
  });

  test("a stale expectation conflicts with the actual version and stores nothing", async () => {
    const id = stateId("conflict");
    await m.client.append(id, [{ name: "A" }, { name: "B" }]);
    const error = await m.client.append(id, { name: "C" }, { expected: 1 }).catch((e: unknown) => e);
    assert.ok(error instanceof ConflictError, String(error));
    assert.ok(error instanceof FlipbookError);
    assert.equal(error.code, "VERSION_CONFLICT");
    assert.equal(error.actualVersion, 2n);
    assert.equal(error.retryable, false);
    await assert.rejects(m.client.append(id, { name: "C" }, { expected: NO_STATE }), ConflictError);
    assert.equal((await m.client.head(id)).eventCount, 2n);
  });

  test("a re-sent append with the same event ids answers the original outcome", async () => {
    const id = stateId("resend");
    const eventId = crypto.randomUUID();
    const first = await m.client.append(id, { name: "Once", eventId }, { expected: NO_STATE });
    const again = await m.client.append(id, { name: "Once", eventId }, { expected: NO_STATE });
    assert.deepEqual(again, first);
    assert.equal((await collect(m.client.readState(id))).length, 1);
  });

  test("reads filter by version, name and direction, with a limit", async () => {
    const id = stateId("filters");
    await m.client.append(
      id,
      Array.from({ length: 10 }, (_, i) => ({ name: i % 2 ? "Odd" : "Even", data: { i } })),
    );
    const versions = async (options: Parameters<Client["readState"]>[1]) =>
      (await collect(m.client.readState(id, options))).map((e) => e.version);
    assert.deepEqual(await versions({ minVersion: 3, maxVersion: 5 }), [3n, 4n, 5n]);
    assert.deepEqual(await versions({ backward: true, limit: 2 }), [10n, 9n]);
    assert.deepEqual(await versions({ names: ["Odd"], limit: 2 }), [2n, 4n]);
  });

  test("read-all gives the prefix's events in global-position order; the log head covers them", async () => {
    const prefix = `${crypto.randomUUID()}/`;
    const a = await m.client.append(`${prefix}a`, [{ name: "A1" }, { name: "A2" }]);
    const b = await m.client.append(`${prefix}b`, { name: "B1" });
    const all = await collect(m.client.readAll({ prefix }));
    assert.deepEqual(
      all.map((e) => e.name),
      ["A1", "A2", "B1"],
    );
    assert.deepEqual(
      all.map((e) => e.globalPosition),
      [...a.globalPositions, ...b.globalPositions],
    );
    const after = await collect(m.client.readAll({ prefix, after: a.globalPositions[0] ?? 0n }));
    assert.deepEqual(
      after.map((e) => e.name),
      ["A2", "B1"],
    );
    const newest = await collect(m.client.readAll({ prefix, backward: true, limit: 1 }));
    assert.deepEqual(
      newest.map((e) => e.name),
      ["B1"],
    );
    let head = await m.client.logHead();
    for (let i = 0; head.settledPosition < (b.globalPositions[0] ?? 0n) && i < 100; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      head = await m.client.logHead();
    }
    assert.ok(head.settledPosition >= (b.globalPositions[0] ?? 0n));
  });

  test("a read left early is cancelled and the client goes on", async () => {
    const id = stateId("early");
    await m.client.append(
      id,
      Array.from({ length: 50 }, () => ({ name: "E" })),
    );
    let seen = 0;
    for await (const _ of m.client.readState(id)) {
      if (++seen === 3) break;
    }
    assert.equal(seen, 3);
    assert.equal((await m.client.head(id)).eventCount, 50n);
  });

  test("an append to several states stores every part or none", async () => {
    const [from, to] = [stateId("from"), stateId("to")];
    await m.client.append(from, { name: "Deposited", data: { amount: 5 } });
    const outcomes = await m.client.appendStates([
      { stateId: from, events: [{ name: "Withdrawn", data: { amount: 5 } }], expected: 1 },
      { stateId: to, events: [{ name: "Deposited", data: { amount: 5 } }], expected: NO_STATE },
    ]);
    assert.deepEqual(
      outcomes.map((o) => o.lastVersion),
      [2n, 1n],
    );
    const error = await m.client
      .appendStates([
        { stateId: from, events: [{ name: "Withdrawn" }], expected: 2 },
        { stateId: to, events: [{ name: "Deposited" }], expected: NO_STATE },
      ])
      .catch((e: unknown) => e);
    assert.ok(error instanceof ConflictError, String(error));
    assert.equal(error.stateId, to);
    assert.equal((await m.client.head(from)).eventCount, 2n, "the other part was not stored");
  });

  test("snapshots: put, the newest at or below a version, per revision, deleted", async () => {
    const id = stateId("snap");
    const payload = new TextEncoder().encode(JSON.stringify({ balance: 3 }));
    await m.client.putSnapshot({ stateId: id, version: 3, reducerRevision: "r1", payload });
    await m.client.putSnapshot({ stateId: id, version: 7, reducerRevision: "r1", payload });
    assert.equal((await m.client.getSnapshot(id, "r1"))?.version, 7n);
    assert.equal((await m.client.getSnapshot(id, "r1", { maxVersion: 5 }))?.version, 3n);
    assert.equal(await m.client.getSnapshot(id, "r2"), undefined);
    assert.deepEqual(JSON.parse(new TextDecoder().decode((await m.client.getSnapshot(id, "r1"))?.payload)), {
      balance: 3,
    });
    assert.equal(await m.client.deleteSnapshots(id), 2n);
    assert.equal(await m.client.getSnapshot(id, "r1"), undefined);
  });

  test("bad input is refused with a typed error naming the field, and changes nothing", async () => {
    const id = stateId("bad");
    const badId = await m.client.append(id, { name: "A", eventId: "not-a-uuid" }).catch((e: unknown) => e);
    assert.ok(badId instanceof InvalidArgumentError, String(badId));
    assert.equal(badId.field, "events[0].event_id");
    const empty = await m.client.append("", { name: "A" }).catch((e: unknown) => e);
    assert.ok(empty instanceof InvalidArgumentError, String(empty));
    assert.equal(empty.field, "state_id");
    await assert.rejects(m.client.append(id, { name: "A" }, { expected: 1.5 }), InvalidArgumentError);
    await assert.rejects(m.client.head(id), NotFoundError);
  });

  test("each failure of the store has the class of its code", async () => {
    const id = stateId("kinds");
    const eventId = crypto.randomUUID();
    await m.client.append(id, { name: "A", eventId, data: { n: 1 } });
    const duplicate = await m.client.append(id, { name: "A", eventId, data: { n: 2 } }).catch((e: unknown) => e);
    assert.ok(duplicate instanceof DuplicateEventError, String(duplicate));
    const neutral = stateId("neutral");
    await m.client.append(neutral, { name: "Tick" }, { versionNeutral: true });
    await assert.rejects(m.client.append(neutral, { name: "Tick" }), StateKindMismatchError);
    const { maxPayloadBytes } = await m.client.serverInfo();
    const tooLarge = await m.client
      .append(id, { name: "Big", payload: new Uint8Array(Number(maxPayloadBytes) + 1) })
      .catch((e: unknown) => e);
    assert.ok(tooLarge instanceof TooLargeError, String(tooLarge));
    assert.equal(tooLarge.retryable, false);
    assert.equal((await m.client.head(id)).eventCount, 1n, "nothing of them was stored");
  });

  test("an AbortSignal cancels a read in the middle of its pages", async () => {
    const id = stateId("long");
    for (let i = 0; i < 5; i++)
      await m.client.append(
        id,
        Array.from({ length: 1000 }, () => ({ name: "E" })),
      );
    const controller = new AbortController();
    let seen = 0;
    const reading = (async () => {
      for await (const _ of m.client.readState(id, { signal: controller.signal })) {
        seen += 1;
        if (seen === 10) controller.abort(new Error("enough"));
      }
    })();
    await assert.rejects(reading, /enough/);
    assert.ok(seen < 5000, `read on after the abort: ${seen}`);
  });

  test("an aborted signal stops a read and a call", async () => {
    const id = stateId("abort");
    await m.client.append(id, { name: "A" }, { expected: ANY });
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(collect(m.client.readState(id, { signal: controller.signal })), { name: "AbortError" });
    await assert.rejects(m.client.head(id, { signal: controller.signal }), { name: "AbortError" });
    assert.equal((await m.client.head(id)).eventCount, 1n);
  });

  test("server info names the backend and the limits", async () => {
    const info = await m.client.serverInfo();
    assert.ok(info.eventBackend.length > 0);
    assert.ok(info.maxEventsPerAppend > 0);
  });

  test("a closed client refuses every call with ClosedError", async () => {
    const other = await m.mode.client();
    await other.close();
    assert.equal(other.closed, true);
    await assert.rejects(other.head("x"), ClosedError);
    await assert.rejects(collect(other.readAll()), ClosedError);
    await other.close();
  });
});
