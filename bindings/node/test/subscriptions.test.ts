/** Subscriptions in every mode: catching up then going live, resuming after a saved position,
 * filters and checkpoints, ending by close, break, abort or the client's close, and (through a
 * proxy) resuming by themselves through cut connections. */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  Checkpoint,
  Client,
  ClosedError,
  InvalidArgumentError,
  type RecordedEvent,
  type Subscription,
} from "../src/index.js";
import { FlakyProxy, inEveryMode, stateId } from "./support.js";

/** The next `count` events of a subscription's loop (which stays open). */
async function take(iterator: AsyncIterator<RecordedEvent>, count: number): Promise<RecordedEvent[]> {
  const out: RecordedEvent[] = [];
  while (out.length < count) {
    const next = await iterator.next();
    if (next.done) break;
    out.push(next.value);
  }
  return out;
}

async function appendNumbered(client: Client, id: string, from: number, count: number): Promise<void> {
  const events = Array.from({ length: count }, (_, i) => ({ name: "Numbered", data: { n: from + i } }));
  await client.append(id, events);
}

const numbers = (events: readonly RecordedEvent[]) => events.map((e) => e.json<{ n: number }>().n);

inEveryMode((m) => {
  test("a subscription catches up, goes live, and its position resumes after what it handed out", async () => {
    const prefix = stateId("sub");
    await appendNumbered(m.client, `${prefix}/a`, 0, 3);
    const subscription = m.client.subscribe({ prefix });
    const loop = subscription[Symbol.asyncIterator]();
    assert.deepEqual(numbers(await take(loop, 3)), [0, 1, 2]);
    await appendNumbered(m.client, `${prefix}/b`, 3, 2);
    const live = await take(loop, 2);
    assert.deepEqual(numbers(live), [3, 4]);
    assert.equal(subscription.position, live[1]?.globalPosition);
    const saved = live[0]?.globalPosition ?? 0n;
    await loop.return?.(undefined);
    const resumed = m.client.subscribe({ prefix, start: saved })[Symbol.asyncIterator]();
    assert.deepEqual(numbers(await take(resumed, 1)), [4]);
    await resumed.return?.(undefined);
  });

  test("names filter the events; from now, a checkpoint says where it starts", async () => {
    const prefix = stateId("filtered");
    await appendNumbered(m.client, `${prefix}/old`, 0, 2);
    const subscription = m.client.subscribe({ prefix, names: ["Wanted"], start: "now" });
    const loop = subscription.withCheckpoints()[Symbol.asyncIterator]();
    const first = await loop.next();
    assert.ok(first.value instanceof Checkpoint, "from now, a checkpoint comes first");
    assert.equal(subscription.position, first.value.position);
    await m.client.append(`${prefix}/new`, [
      { name: "Unwanted", data: {} },
      { name: "Wanted", data: { n: 7 } },
    ]);
    let wanted: RecordedEvent | undefined;
    while (wanted === undefined) {
      const next = await loop.next();
      assert.equal(next.done, false);
      if (!(next.value instanceof Checkpoint)) wanted = next.value;
    }
    assert.equal(wanted.name, "Wanted");
    assert.deepEqual(wanted.json(), { n: 7 });
    await loop.return?.(undefined);
  });

  test("close ends a loop waiting for events; leaving a loop closes the subscription", async () => {
    const subscription = m.client.subscribe({ prefix: stateId("quiet") });
    const seen: RecordedEvent[] = [];
    const loop = (async () => {
      for await (const event of subscription) seen.push(event);
    })();
    await new Promise((resolve) => setTimeout(resolve, 100));
    subscription.close();
    await loop; // ends, without an error
    assert.deepEqual(seen, []);

    const prefix = stateId("left");
    await appendNumbered(m.client, prefix, 0, 3);
    const left = m.client.subscribe({ prefix });
    for await (const _ of left) break;
    assert.deepEqual(
      numbers(await take(left[Symbol.asyncIterator](), 1)),
      [],
      "a closed subscription hands out nothing",
    );
  });

  test("an AbortSignal ends a waiting subscription with its reason", async () => {
    const controller = new AbortController();
    const subscription = m.client.subscribe({ prefix: stateId("aborted"), signal: controller.signal });
    const loop = (async () => {
      for await (const _ of subscription) {
        // nothing comes
      }
    })();
    setTimeout(() => controller.abort(new Error("stop it")), 50);
    await assert.rejects(loop, /stop it/);
  });

  test("a bad start is refused at once; a closed client ends its subscriptions with ClosedError", async () => {
    assert.throws(() => m.client.subscribe({ start: -1n }), InvalidArgumentError);
    assert.throws(() => m.client.subscribe({ start: "tomorrow" as "now" }), InvalidArgumentError);
    const other = await m.mode.client();
    const subscription: Subscription = other.subscribe({ prefix: stateId("closing") });
    const loop = (async () => {
      for await (const _ of subscription) {
        // nothing comes
      }
    })();
    const ended = assert.rejects(loop, ClosedError);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await other.close();
    await ended;
  });

  if (m.name !== "embedded") {
    test("a subscription resumes by itself through cut connections, missing nothing", async () => {
      const proxy = await FlakyProxy.start(m.mode.url ?? "");
      const viaProxy = await Client.connect(proxy.url, { firstDelay: 0.01 });
      try {
        const prefix = stateId("cut");
        const loop = viaProxy.subscribe({ prefix })[Symbol.asyncIterator]();
        const seen: number[] = [];
        for (let round = 0; round < 5; round++) {
          await appendNumbered(m.client, `${prefix}/${round}`, round * 10, 10);
          seen.push(...numbers(await take(loop, 5)));
          assert.ok(proxy.cut() > 0, "the subscription's connection was open");
          seen.push(...numbers(await take(loop, 5)));
        }
        assert.deepEqual(
          seen,
          Array.from({ length: 50 }, (_, i) => i),
        );
        await loop.return?.(undefined);
      } finally {
        await viaProxy.close();
        await proxy.stop();
      }
    });
  }
});
