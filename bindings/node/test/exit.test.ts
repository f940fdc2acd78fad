/** The native side never keeps the event loop alive: a script that closed its client exits at
 * once, and one that did not close it exits too, without crashing. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { tempDir } from "./support.js";

const index = join(fileURLToPath(new URL(".", import.meta.url)), "..", "src", "index.js");

function run(script: string): { status: number | null; ms: number; stderr: string } {
  const started = Date.now();
  const done = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    encoding: "utf8",
    timeout: 20_000,
  });
  return { status: done.status, ms: Date.now() - started, stderr: done.stderr };
}

for (const close of [true, false]) {
  test(`a script exits promptly when its work is done (client ${close ? "closed" : "left open"})`, () => {
    const path = join(tempDir(), "flipbook.db");
    const script = `
      import { Client } from ${JSON.stringify(index)};
      const client = await Client.openEmbedded(${JSON.stringify(path)});
      await client.append("exit-1", { name: "Done" });
      for await (const e of client.readState("exit-1")) if (e.name !== "Done") process.exit(3);
      ${close ? "await client.close();" : ""}
    `;
    const { status, ms, stderr } = run(script);
    assert.equal(status, 0, stderr);
    assert.ok(ms < 5_000, `exited after ${ms} ms`);
  });
}

test("a script exits promptly once it closes the client under an open subscription and command", () => {
  const path = join(tempDir(), "flipbook.db");
  const script = `
    import { Client } from ${JSON.stringify(index)};
    const client = await Client.openEmbedded(${JSON.stringify(path)});
    const counter = { revision: "c-1", initial: () => 0, apply: (n) => n + 1 };
    await client.execute("exit-2", counter, () => ({ name: "Counted" }));
    const subscription = client.subscribe();
    const loop = (async () => { for await (const _ of subscription); })().catch(() => {});
    await client.close();
    await loop;
  `;
  const { status, ms, stderr } = run(script);
  assert.equal(status, 0, stderr);
  assert.ok(ms < 5_000, `exited after ${ms} ms`);
});

test("examples/wallet.ts runs embedded, refuses the overdraft, and exits", () => {
  const example = join(fileURLToPath(new URL(".", import.meta.url)), "..", "examples", "wallet.js");
  const done = spawnSync(process.execPath, [example], { cwd: tempDir(), encoding: "utf8", timeout: 20_000 });
  assert.equal(done.status, 0, done.stderr);
  assert.match(done.stdout, /^refused: balance 20, needs 50$/m);
  assert.match(done.stdout, /balance 20, 1 payment\(s\), version 3$/m);
});
