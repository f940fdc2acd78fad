#!/usr/bin/env bash
# Installs the Node driver as a user's program gets the package: the tarballs
# bindings/node/scripts/pack.sh makes, installed with npm into DIR with no cargo or rustc on
# PATH, and driver.ts compiled there (tsc --strict against the installed package's types).
#
#   conformance/drivers/node/install.sh DIR      (then: node DIR/driver.js)
#
# bindings/node must be built first (npm ci there: its prepare builds the addon).
set -euo pipefail
dir=$(realpath -m "${1:?usage: install.sh DIR}")
here=$(cd "$(dirname "$0")" && pwd)
node_binding="$here/../../../bindings/node"
rm -rf "$dir"
mkdir -p "$dir"
"$node_binding/scripts/pack.sh" "$dir/packs" > /dev/null
cp "$here/package.json" "$here/tsconfig.json" "$here/driver.ts" "$dir/"
no_rust=$(printf %s "$PATH" | tr : '\n' | while read -r p; do
  [[ -e $p/cargo || -e $p/rustc ]] || printf '%s\n' "$p"
done | paste -sd:)
cd "$dir"
PATH="$no_rust" npm install --offline --no-audit --no-fund --loglevel=error ./packs/*.tgz
PATH="$no_rust" node "$node_binding/node_modules/typescript/bin/tsc" -p . --typeRoots "$node_binding/node_modules/@types"
