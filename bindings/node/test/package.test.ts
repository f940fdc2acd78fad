/** The packages as users get them: `scripts/pack.sh` packs `flipbook` and the platform
 * package, a fresh project installs the tarballs with no `cargo` or `rustc` on PATH, type-checks
 * and runs the README's example against a server (ESM), requires the package (CommonJS: the
 * same classes), and refuses a platform package of another version. */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Server, tempDir } from "./support.js";

const root = join(fileURLToPath(new URL(".", import.meta.url)), "..", "..");
const packs = tempDir();
const project = tempDir();
let server: Server;

/** PATH without any directory that holds a Rust toolchain. */
const withoutRust = (process.env.PATH ?? "")
  .split(delimiter)
  .filter((dir) => !existsSync(join(dir, "cargo")) && !existsSync(join(dir, "rustc")))
  .join(delimiter);
const env = { ...process.env, PATH: withoutRust, npm_config_update_notifier: "false" };

function node(args: readonly string[]): { status: number | null; stdout: string; stderr: string } {
  const done = spawnSync(process.execPath, args, { cwd: project, env, encoding: "utf8", timeout: 60_000 });
  return { status: done.status, stdout: done.stdout, stderr: done.stderr };
}

/** The README's first TypeScript block, as written, with the URL of the test's server. */
function readmeExample(url: string): string {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const block = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(block, "the README has a ts block");
  assert.ok(block.includes("http://127.0.0.1:7420"), "the example connects to a server");
  return block.replaceAll("http://127.0.0.1:7420", url);
}

before(async () => {
  execFileSync("bash", [join(root, "scripts", "pack.sh"), packs], { cwd: root, stdio: "pipe" });
  server = await Server.start(["--sqlite-path", join(tempDir(), "flipbook.db")]);
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
  const tarballs = ["flipbook-linux-x64-gnu-0.1.0.tgz", "flipbook-0.1.0.tgz"].map((t) => join(packs, t));
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--offline", ...tarballs], {
    cwd: project,
    env,
    stdio: "pipe",
  });
});

after(() => server.stop());

test("no Rust toolchain is on the PATH the project uses", () => {
  const which = spawnSync("sh", ["-c", "command -v cargo || command -v rustc"], { env, encoding: "utf8" });
  assert.notEqual(which.status, 0, `found ${which.stdout}`);
});

test("the README example type-checks under --strict and runs (ESM)", () => {
  writeFileSync(join(project, "readme.ts"), readmeExample(server.url));
  writeFileSync(
    join(project, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        target: "es2022",
        lib: ["es2022", "esnext.disposable"],
        module: "nodenext",
        strict: true,
        typeRoots: [join(root, "node_modules", "@types")],
        types: ["node"],
      },
      files: ["readme.ts"],
    }),
  );
  const tsc = node([join(root, "node_modules", "typescript", "bin", "tsc"), "-p", "."]);
  assert.equal(tsc.status, 0, tsc.stdout + tsc.stderr);
  const run = node(["readme.js"]);
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /the wallet is at version 1n$/m);
  assert.match(run.stdout, /^1n Deposited \{ amount: 10 \}$/m);
});

test("require works (CommonJS) and shares its classes with import", () => {
  writeFileSync(
    join(project, "main.cjs"),
    `const flipbook = require("flipbook");
    (async () => {
      const esm = await import("flipbook");
      if (esm.ConflictError !== flipbook.ConflictError) throw new Error("two copies of the classes");
      const client = await flipbook.Client.inMemory();
      await client.append("s-1", { name: "A" }, { expected: flipbook.NO_STATE });
      await client.append("s-1", { name: "B" }, { expected: 0n }).catch((e) => {
        if (!(e instanceof esm.ConflictError)) throw e;
        console.log("conflict at", e.actualVersion);
      });
      await client.close();
    })();`,
  );
  const run = node(["main.cjs"]);
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /conflict at 1n/);
});

test("a platform package of another version is refused with a clear error", () => {
  const manifest = join(project, "node_modules", "flipbook-linux-x64-gnu", "package.json");
  const original = readFileSync(manifest, "utf8");
  writeFileSync(manifest, original.replace('"version": "0.1.0"', '"version": "0.0.9"'));
  try {
    const run = node(["--input-type=module", "-e", 'import("flipbook")']);
    assert.notEqual(run.status, 0);
    assert.match(run.stderr, /flipbook-linux-x64-gnu is version 0\.0\.9 but flipbook is 0\.1\.0/);
  } finally {
    writeFileSync(manifest, original);
  }
});
