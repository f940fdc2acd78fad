/** Test support: the modes a client runs in (a real server on SQLite or PostgreSQL, embedded). */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { Client } from "../src/index.js";

/** The server binary: FLIPBOOK_BIN, else the workspace's debug build. */
function serverBinary(): string {
  if (process.env.FLIPBOOK_BIN) return process.env.FLIPBOOK_BIN;
  const target = process.env.CARGO_TARGET_DIR ?? join(homedir(), ".cache", "flipbook", "target");
  return join(target, "debug", "flipbook");
}

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "flipbook-node-"));
}

/** `flipbook serve` on a free port; resolves once it says where it serves. */
export class Server {
  private constructor(
    private readonly child: ChildProcess,
    readonly url: string,
  ) {}

  static async start(args: readonly string[]): Promise<Server> {
    const child = spawn(
      serverBinary(),
      ["serve", "--listen", "127.0.0.1:0", "--metrics-listen", "off", "--log-format", "json", ...args],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    const lines = createInterface({ input: child.stderr as NodeJS.ReadableStream });
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("the server did not start within 30 s")), 30_000);
      child.once("exit", (code) => reject(new Error(`the server exited (${code}) before serving`)));
      lines.on("line", (line) => {
        try {
          const record = JSON.parse(line) as { message?: string; addr?: string };
          if (record.message === "flipbook serving" && record.addr) {
            clearTimeout(timer);
            resolve(`http://${record.addr}`);
          }
        } catch {
          // not a JSON line
        }
      });
    });
    return new Server(child, url);
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      if (this.child.exitCode !== null) return resolve();
      this.child.once("exit", () => resolve());
      this.child.kill("SIGTERM");
    });
  }
}

/** Where the clients of a test run: a server on SQLite, one on PostgreSQL, embedded. */
export interface Mode {
  readonly name: string;
  /** A new client over the mode's store. */
  client(): Promise<Client>;
  stop(): Promise<void>;
}

export async function serverSqlite(): Promise<Mode> {
  const server = await Server.start(["--sqlite-path", join(tempDir(), "flipbook.db")]);
  return { name: "server on SQLite", client: () => Client.connect(server.url), stop: () => server.stop() };
}

export async function serverPostgres(): Promise<Mode> {
  const url = process.env.FLIPBOOK_TEST_POSTGRES_URL;
  if (!url) throw new Error("FLIPBOOK_TEST_POSTGRES_URL must name a PostgreSQL database (scripts/test starts one)");
  const server = await Server.start([
    "--event-store",
    "postgres",
    "--snapshot-store",
    "postgres",
    "--postgres-url",
    url,
  ]);
  return { name: "server on PostgreSQL", client: () => Client.connect(server.url), stop: () => server.stop() };
}

export async function embedded(): Promise<Mode> {
  const path = join(tempDir(), "flipbook.db");
  return { name: "embedded", client: () => Client.openEmbedded(path), stop: async () => {} };
}

/** A state id no other test uses. */
export function stateId(what: string): string {
  return `${what}-${crypto.randomUUID()}`;
}

export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}
