/** Errors: every code of the core has its own class, an `instanceof FlipbookError`; a server
 * with a token refuses a client without one (UnauthenticatedError) and serves one with it. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { fromNative } from "../src/errors.js";
import { Client, type ErrorCode, FlipbookError, UnauthenticatedError } from "../src/index.js";
import { Server, tempDir } from "./support.js";

const CODES: ErrorCode[] = [
  "INVALID_ARGUMENT",
  "NOT_FOUND",
  "VERSION_CONFLICT",
  "DUPLICATE_EVENT",
  "STATE_KIND_MISMATCH",
  "TOO_LARGE",
  "STORAGE_FULL",
  "READ_ONLY",
  "UNAUTHENTICATED",
  "PERMISSION_DENIED",
  "UNAVAILABLE",
  "CLOSED",
  "FELL_BEHIND",
  "REJECTED",
  "INTERNAL",
];

test("every code the core sends becomes an error of its own class", () => {
  const classes = new Set<unknown>();
  for (const code of CODES) {
    const detail = { code, message: `a ${code}`, field: "f", actualVersion: "18446744073709551615", retryable: true };
    const error = fromNative(new Error(`flipbook:${JSON.stringify(detail)}`));
    assert.ok(error instanceof FlipbookError, code);
    assert.equal(error.code, code);
    assert.equal(error.field, "f");
    assert.equal(error.actualVersion, 2n ** 64n - 1n, "versions are bigints, exact");
    assert.equal(error.name, error.constructor.name);
    classes.add(error.constructor);
  }
  assert.equal(classes.size, CODES.length, "one class per code");
  const other = new TypeError("not the core's");
  assert.equal(fromNative(other), other, "anything else passes unchanged");
});

test("a server with a token refuses a client without it", async () => {
  const server = await Server.start(["--sqlite-path", join(tempDir(), "auth.db"), "--auth-token", "s3cret"]);
  try {
    await assert.rejects(Client.connect(server.url), UnauthenticatedError); // connect asks the server who it is
    await assert.rejects(Client.connect(server.url, { token: "wrong" }), UnauthenticatedError);
    const known = await Client.connect(server.url, { token: "s3cret" });
    await known.append("s", { name: "A" });
    assert.equal((await known.head("s")).eventCount, 1n);
    await known.close();
  } finally {
    await server.stop();
  }
});
