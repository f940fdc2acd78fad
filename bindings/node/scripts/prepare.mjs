// Builds the package from source: the addon (napi build, which needs a Rust toolchain) and the
// TypeScript. npm runs it as `prepare` on `npm install` or `npm ci` in this folder, and when
// another project installs the folder (`npm install /path/to/flipbook/bindings/node`), where npm
// has not installed this package's devDependencies: then they are installed here first.
import { execSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL("..", import.meta.url));
const run = (command) => execSync(command, { cwd: here, stdio: "inherit" });

if (!existsSync(join(here, "node_modules", "@napi-rs", "cli"))) {
  run("npm ci --ignore-scripts --no-audit --no-fund --loglevel=error");
}
run("npm run build:native");
run("npm run build");
