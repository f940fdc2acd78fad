/** Resources: the addon works inside worker_threads (beside the main thread's), and 10,000
 * calls leave the process's memory where it was. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { Client } from "../src/index.js";
import { collect, tempDir } from "./support.js";

const index = join(fileURLToPath(new URL(".", import.meta.url)), "..", "src", "index.js");

test("clients work inside worker_threads, beside the main thread's, and a worker ends cleanly", async () => {
  const dir = tempDir();
  const main = await Client.openEmbedded(join(dir, "main.db"));
  const worker = (n: number) =>
    new Promise<number>((resolve, reject) => {
      const script = `
        import { parentPort } from "node:worker_threads";
        import { Client } from ${JSON.stringify(pathToFileURL(index).href)};
        const client = await Client.openEmbedded(${JSON.stringify(join(dir, `worker-${n}.db`))});
        await client.append("worker-${n}", [{ name: "A" }, { name: "B" }]);
        let count = 0;
        for await (const _ of client.readState("worker-${n}")) count += 1;
        const subscription = client.subscribe({ prefix: "worker-${n}" });
        for await (const _ of subscription) { count += 1; if (count === 4) break; }
        await client.close();
        parentPort.postMessage(count);
      `;
      const thread = new Worker(new URL(`data:text/javascript,${encodeURIComponent(script)}`));
      thread.once("message", resolve);
      thread.once("error", reject);
      thread.once("exit", (code) => (code === 0 ? undefined : reject(new Error(`the worker exited ${code}`))));
    });
  try {
    await main.append("main-1", { name: "Here" });
    const counts = await Promise.all([1, 2, 3].map(worker));
    assert.deepEqual(counts, [4, 4, 4]);
    assert.equal((await collect(main.readState("main-1"))).length, 1, "the main thread's client still works");
  } finally {
    await main.close();
  }
});

test("10,000 calls leave RSS where it was", () => {
  // In a process of its own: what other tests (a worker's teardown) free meanwhile is not in it.
  const script = `
    import { Client } from ${JSON.stringify(pathToFileURL(index).href)};
    const client = await Client.inMemory();
    const counter = { revision: "n-1", initial: () => 0, apply: (n) => n + 1 };
    const round = async (i) => {
      switch (i % 4) {
        case 0: return client.append("calls-1", { name: "Counted", data: { i } });
        case 1: return client.head("calls-1");
        case 2: return client.execute("calls-1", counter, () => []);
        default: for await (const _ of client.readState("calls-1", { backward: true, limit: 5 })); // a short read
      }
    };
    const calls = async (count) => { for (let i = 0; i < count; i++) await round(i); };
    await calls(2_000); // warm up: the allocator's and V8's pools reach their size
    const before = process.memoryUsage().rss;
    await calls(10_000);
    console.log((process.memoryUsage().rss - before) / 2 ** 20);
    await client.close();
  `;
  const done = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    encoding: "utf8",
    timeout: 120_000,
  });
  assert.equal(done.status, 0, done.stderr);
  const grown = Number(done.stdout.trim());
  console.log(`RSS grew by ${grown.toFixed(1)} MiB over 10,000 calls`);
  // The events themselves grow the in-memory store by ~1 MiB; a leak of a call's buffers (a
  // page, an error, a session) would be tens of MiB.
  assert.ok(grown < 16, `RSS grew by ${grown.toFixed(1)} MiB`);
});
