/**
 * Loads the native addon: `flipbook.<platform>.node` beside the package (built from source by
 * `napi build`). The platform packages for users without Rust come in a later step.
 *
 * @internal
 * @module
 */
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import type * as Native from "../native.js";
import { errorMessage } from "./util.js";

export type { NativeClient, NativePages, NativeSession, NativeSubscription } from "../native.js";

const platform = `${process.platform}-${process.arch}${process.platform === "linux" ? "-gnu" : ""}`;
const file = fileURLToPath(new URL(`../../flipbook.${platform}.node`, import.meta.url));

function load(): typeof Native {
  try {
    return createRequire(import.meta.url)(file) as typeof Native;
  } catch (error) {
    throw new Error(
      `flipbook: no native addon for ${platform} at ${file} (build it with \`npm run build:native\`): ${errorMessage(error)}`,
    );
  }
}

export const native: typeof Native = load();
