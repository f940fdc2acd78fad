/** The high level in every mode: load (and as of a time), execute with sync and async decide,
 * conflicts retried, several states at once, the user's errors passed through unchanged,
 * aborts, snapshots; and 32 concurrent deposits through two clients and a flaky proxy. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Client, type Decision, type RecordedEvent, type Reducer } from "../src/index.js";
import { collect, FlakyProxy, inEveryMode, stateId } from "./support.js";

interface Wallet {
  balance: number;
  commands: string[];
}

const wallet: Reducer<Wallet> = {
  revision: "wallet-1",
  initial: () => ({ balance: 0, commands: [] }),
  apply(state, event) {
    const { amount, command } = event.json<{ amount: number; command?: string }>();
    const sign = event.name === "Withdrawn" ? -1 : 1;
    return {
      balance: state.balance + sign * amount,
      commands: command ? [...state.commands, command] : state.commands,
    };
  },
};

const deposit =
  (amount: number, command?: string) =>
  (_: Wallet): Decision => ({ name: "Deposited", data: { amount, command } });

inEveryMode((m) => {
  test("execute appends what decide returns; load folds it back", async () => {
    const id = stateId("wallet");
    const fresh = await m.client.load(id, wallet);
    assert.deepEqual(fresh, { state: { balance: 0, commands: [] }, version: 0n });
    const first = await m.client.execute(id, wallet, deposit(10));
    assert.equal(first.version, 1n);
    assert.equal(first.tries, 1);
    assert.equal(first.appended?.lastVersion, 1n);
    assert.equal(first.state.balance, 10);
    const second = await m.client.execute(id, wallet, async (state) => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      return [
        { name: "Withdrawn", data: { amount: state.balance - 4 } },
        { name: "Deposited", data: { amount: 1 } },
      ];
    });
    assert.equal(second.version, 3n);
    assert.equal(second.state.balance, 5);
    const nothing = await m.client.execute(id, wallet, () => []);
    assert.equal(nothing.appended, undefined);
    assert.equal(nothing.version, 3n);
    const other = await m.mode.client({ cacheEntries: 0 });
    try {
      assert.deepEqual(await other.load(id, wallet), { state: { balance: 5, commands: [] }, version: 3n });
    } finally {
      await other.close();
    }
  });

  test("a conflict is retried: decide sees the new state", async () => {
    const id = stateId("conflict");
    await m.client.execute(id, wallet, deposit(1));
    const other = await m.mode.client();
    try {
      let calls = 0;
      const done = await m.client.execute(id, wallet, async (state) => {
        calls += 1;
        if (calls === 1) await other.execute(id, wallet, deposit(100)); // moves the state under us
        return { name: "Withdrawn", data: { amount: state.balance } };
      });
      assert.equal(calls, 2);
      assert.equal(done.tries, 2);
      assert.equal(done.state.balance, 0);
      assert.equal(done.version, 3n);
    } finally {
      await other.close();
    }
  });

  test("load as of a time counts only the events up to it", async () => {
    const id = stateId("asof");
    const at = (ms: number) => new Date(Date.UTC(2026, 0, 1) + ms);
    await m.client.append(id, [
      { name: "Deposited", data: { amount: 1 }, timestamp: at(0) },
      { name: "Deposited", data: { amount: 2 }, timestamp: at(1000) },
      { name: "Deposited", data: { amount: 4 }, timestamp: at(2000) },
    ]);
    assert.equal((await m.client.load(id, wallet, { asOf: at(1000) })).state.balance, 3);
    assert.equal((await m.client.load(id, wallet, { asOf: at(-1) })).state.balance, 0);
    assert.equal((await m.client.load(id, wallet)).state.balance, 7);
  });

  test("the user's errors reach the caller unchanged, and nothing is appended", async () => {
    const id = stateId("throws");
    const mine = new RangeError("insufficient funds");
    await assert.rejects(
      m.client.execute(id, wallet, () => {
        throw mine;
      }),
      (error) => error === mine,
    );
    await assert.rejects(
      m.client.execute(id, wallet, async () => Promise.reject(mine)),
      (error) => error === mine,
    );
    await m.client.append(id, { name: "Deposited", data: { amount: 1 } });
    const broken: Reducer<number> = {
      revision: "broken-1",
      initial: () => 0,
      apply: function brokenApply() {
        throw new SyntaxError("a bad event");
      },
    };
    await assert.rejects(
      m.client.execute(id, broken, () => ({ name: "Never", data: {} })),
      (error) => error instanceof SyntaxError && error.stack?.includes("brokenApply") === true,
    );
    await assert.rejects(m.client.load(id, broken), SyntaxError);
    assert.equal((await collect(m.client.readState(id))).length, 1);
  });

  test("executeStates decides over several states and appends to them atomically", async () => {
    const from = stateId("from");
    const to = stateId("to");
    await m.client.execute(from, wallet, deposit(10));
    const counter: Reducer<number> = { revision: "count-1", initial: () => 0, apply: (n) => n + 1 };
    const [a, b] = await m.client.executeStates(
      [
        { stateId: from, reducer: wallet },
        { stateId: to, reducer: counter },
      ],
      ([source, count]) => [
        { name: "Withdrawn", data: { amount: source.balance } },
        { name: "Deposited", data: { amount: source.balance, command: `n${count}` } },
      ],
    );
    assert.equal(a.state.balance, 0);
    assert.equal(b.state, 1);
    assert.equal(a.appended?.lastVersion, 2n);
    assert.equal(b.appended?.lastVersion, 1n);
    await assert.rejects(
      m.client.executeStates(
        [
          { stateId: from, reducer: wallet },
          { stateId: to, reducer: wallet },
        ],
        () => [[{ name: "Deposited", data: { amount: 1 } }]],
      ),
      TypeError,
    );
    assert.equal((await m.client.load(from, wallet)).version, 2n);
  });

  test("an AbortSignal cancels an execute while it decides; nothing is appended", async () => {
    const id = stateId("abort");
    const controller = new AbortController();
    const pending = m.client.execute(
      id,
      wallet,
      async (state) => {
        controller.abort(new Error("changed my mind"));
        return deposit(1)(state);
      },
      { signal: controller.signal },
    );
    await assert.rejects(pending, /changed my mind/);
    await assert.rejects(m.client.load(id, wallet, { signal: AbortSignal.abort() }));
    assert.equal((await m.client.load(id, wallet)).version, 0n);
  });

  test("a load past the snapshot interval writes a snapshot the next client starts from", async () => {
    const id = stateId("snap");
    await m.client.append(
      id,
      Array.from({ length: 5 }, () => ({ name: "Deposited", data: { amount: 2 } })),
    );
    const writer = await m.mode.client({ snapshotEvery: 3, cacheEntries: 0 });
    try {
      assert.equal((await writer.load(id, wallet)).state.balance, 10);
    } finally {
      await writer.close(); // waits for the snapshot being written
    }
    const snapshot = await m.client.getSnapshot(id, wallet.revision);
    assert.equal(snapshot?.version, 5n);
    // A snapshot this reducer cannot read is skipped: the load folds from the beginning.
    await m.client.putSnapshot({
      stateId: id,
      version: 5n,
      reducerRevision: "strict-1",
      payload: new Uint8Array([0xff]),
    });
    const strict: Reducer<Wallet> = { ...wallet, revision: "strict-1" };
    const reader = await m.mode.client({ cacheEntries: 0 });
    try {
      assert.equal((await reader.load(id, strict)).state.balance, 10);
    } finally {
      await reader.close();
    }
  });

  test("a state that does not encode is not cached, with a warning; the command stands", async () => {
    const id = stateId("unencodable");
    const big: Reducer<bigint> = { revision: "big-1", initial: () => 0n, apply: (n) => n + 1n }; // JSON has no bigint
    const warnings: Error[] = [];
    const warned = (warning: Error) => warnings.push(warning);
    process.on("warning", warned);
    try {
      const done = await m.client.execute(id, big, () => ({ name: "Counted" }));
      assert.deepEqual([done.state, done.version, done.tries], [1n, 1n, 1]);
      await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
    } finally {
      process.off("warning", warned);
    }
    assert.ok(
      warnings.some((w) => w.name === "FlipbookWarning" && w.message.includes("big-1")),
      String(warnings),
    );
    assert.equal((await collect(m.client.readState(id))).length, 1);
  });

  test("32 concurrent deposits through two clients each land once", async () => {
    const proxy = m.mode.url === undefined ? undefined : await FlakyProxy.start(m.mode.url);
    const clients =
      proxy === undefined
        ? [m.client, m.client]
        : // As an application on a flaky network configures it: conflicts and lost answers are
          // retried long enough to outlast the cuts (the core re-sends with the same event ids).
          await Promise.all(
            [0, 1].map(() => Client.connect(proxy.url, { maxTries: 100, maxResends: 50, firstDelay: 0.005 })),
          );
    const id = stateId("contended");
    let cuts = 0;
    let ticks = 0;
    const chaos =
      proxy === undefined
        ? undefined
        : setInterval(() => {
            proxy.delayMs = proxy.delayMs === 0 ? 3 : 0;
            ticks += 1;
            if (ticks % 5 === 1) cuts += proxy.cut();
          }, 20);
    try {
      const done = await Promise.all(
        Array.from({ length: 32 }, (_, i) => (clients[i % 2] as Client).execute(id, wallet, deposit(i + 1, `c${i}`))),
      );
      assert.ok(
        done.some((d) => d.tries > 1),
        "some commands met a conflict",
      );
    } finally {
      if (chaos) clearInterval(chaos);
      if (proxy) {
        await Promise.all(clients.map((c) => c.close()));
        await proxy.stop();
      }
    }
    const events: RecordedEvent[] = await collect(m.client.readState(id));
    const commands = events.map((e) => e.json<{ command: string }>().command).sort();
    assert.deepEqual(commands, Array.from({ length: 32 }, (_, i) => `c${i}`).sort(), "each command once");
    assert.equal((await m.client.load(id, wallet)).state.balance, (32 * 33) / 2);
    if (proxy) assert.ok(cuts > 0, "the proxy cut connections while the commands ran");
  });
});
