/** Test support: the modes a client runs in (a real server on SQLite or PostgreSQL, embedded). */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { type AddressInfo, connect, createServer, type Server as Server_, type Socket } from "node:net";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe } from "node:test";
import { Client, type ClientOptions } from "../src/index.js";

/** The server binary: FLIPBOOK_BIN, else the workspace's build of the first profile built. */
export function serverBinary(profiles: readonly string[] = ["debug"]): string {
  if (process.env.FLIPBOOK_BIN) return process.env.FLIPBOOK_BIN;
  const target = process.env.CARGO_TARGET_DIR ?? join(homedir(), ".cache", "flipbook", "target");
  const built = profiles.map((profile) => join(target, profile, "flipbook")).find((path) => existsSync(path));
  return built ?? join(target, profiles[profiles.length - 1] ?? "debug", "flipbook");
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

  static async start(args: readonly string[], binary = serverBinary()): Promise<Server> {
    const child = spawn(
      binary,
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
  /** The server's URL; `undefined` embedded. */
  readonly url: string | undefined;
  /** A new client over the mode's store. */
  client(options?: ClientOptions): Promise<Client>;
  stop(): Promise<void>;
}

export async function serverSqlite(): Promise<Mode> {
  const server = await Server.start(["--sqlite-path", join(tempDir(), "flipbook.db")]);
  return {
    name: "server on SQLite",
    url: server.url,
    client: (options) => Client.connect(server.url, options),
    stop: () => server.stop(),
  };
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
  return {
    name: "server on PostgreSQL",
    url: server.url,
    client: (options) => Client.connect(server.url, options),
    stop: () => server.stop(),
  };
}

export async function embedded(): Promise<Mode> {
  const path = join(tempDir(), "flipbook.db");
  return {
    name: "embedded",
    url: undefined,
    client: (options) => Client.openEmbedded(path, options),
    stop: async () => {},
  };
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

/**
 * A TCP proxy in front of a server: it can delay every chunk each way and cut every open
 * connection, as a flaky network does. Clients connect to `url`.
 */
export class FlakyProxy {
  readonly #server: Server_;
  readonly #open = new Set<Socket>();
  /** Milliseconds each chunk waits before it is passed on. */
  delayMs = 0;

  private constructor(
    server: Server_,
    readonly url: string,
  ) {
    this.#server = server;
  }

  static async start(upstream: string): Promise<FlakyProxy> {
    const { hostname, port } = new URL(upstream);
    const server = createServer();
    const proxy = await new Promise<FlakyProxy>((resolve) =>
      server.listen(0, "127.0.0.1", () => {
        const address = server.address() as AddressInfo;
        resolve(new FlakyProxy(server, `http://127.0.0.1:${address.port}`));
      }),
    );
    server.on("connection", (client) => {
      const backend = connect(Number(port), hostname);
      for (const [from, to] of [
        [client, backend],
        [backend, client],
      ] as const) {
        proxy.#open.add(from);
        // Chunks pass in their order whatever the delay was when each came.
        const queue: { at: number; chunk: Buffer }[] = [];
        let timer: NodeJS.Timeout | undefined;
        const pump = () => {
          timer = undefined;
          while (queue.length > 0 && (queue[0]?.at ?? 0) <= Date.now())
            to.write(queue.shift()?.chunk ?? Buffer.alloc(0));
          if (queue.length > 0) timer = setTimeout(pump, (queue[0]?.at ?? 0) - Date.now());
        };
        from.on("data", (chunk: Buffer) => {
          queue.push({ at: Date.now() + proxy.delayMs, chunk });
          if (timer === undefined) pump();
        });
        from.on("error", () => to.destroy());
        from.on("close", () => {
          proxy.#open.delete(from);
          clearTimeout(timer);
          to.destroy();
        });
      }
    });
    return proxy;
  }

  /** Cuts every connection open now; new ones are let through. */
  cut(): number {
    const open = [...this.#open];
    for (const socket of open) socket.destroy();
    return open.length;
  }

  stop(): Promise<void> {
    this.cut();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

/** What the tests of one mode share: the mode, and a client of it. */
export interface InMode {
  readonly name: string;
  mode: Mode;
  client: Client;
}

/** Defines the tests `body` defines once per mode, each under a `describe` of the mode's name. */
export function inEveryMode(body: (m: InMode) => void): void {
  for (const start of [serverSqlite, serverPostgres, embedded]) {
    describe(start.name, () => {
      const m = { name: start.name } as InMode;
      before(async () => {
        m.mode = await start();
        m.client = await m.mode.client();
      });
      after(async () => {
        await m.client?.close();
        await m.mode?.stop();
      });
      body(m);
    });
  }
}
