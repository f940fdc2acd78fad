/**
 * Loads the native addon: `flipbook.<platform>.node` at the package's root when it was built
 * from source (`npm run build:native`), else the platform package npm installed with it
 * (`flipbook-<platform>`, an optional dependency), which must be of this package's version.
 *
 * @internal
 * @module
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type * as Native from "../native.js";
import { errorMessage } from "./util.js";

export type { NativeClient, NativePages, NativeSession, NativeSubscription } from "../native.js";

const root = join(__dirname, "..", "..");
/** The napi-rs name of this platform: `linux-x64-gnu`, `darwin-arm64`, `win32-x64-msvc`, … */
const abi: Partial<Record<NodeJS.Platform, string>> = { linux: "-gnu", win32: "-msvc" };
const platform = `${process.platform}-${process.arch}${abi[process.platform] ?? ""}`;

function load(): typeof Native {
  const local = join(root, `flipbook.${platform}.node`);
  if (existsSync(local)) return require(local) as typeof Native;
  const name = `flipbook-${platform}`;
  const { version } = require(join(root, "package.json")) as { version: string };
  let found: string;
  try {
    found = (require(`${name}/package.json`) as { version: string }).version;
  } catch (error) {
    throw new Error(
      `flipbook: no native addon for ${platform}: neither ${local} (built from source) nor the package ${name} ` +
        `(npm installs it with flipbook on ${platform}, unless optional dependencies are omitted): ${errorMessage(error)}`,
    );
  }
  if (found !== version) {
    throw new Error(
      `flipbook: ${name} is version ${found} but flipbook is ${version}: install the same version of both`,
    );
  }
  return require(name) as typeof Native;
}

export const native: typeof Native = load();
