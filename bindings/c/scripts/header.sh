#!/usr/bin/env bash
# Generates include/flipbook.h with cbindgen from src/ and fails when the committed one
# differs (the header is committed; CI runs this). --write rewrites it instead.
#
#   bindings/c/scripts/header.sh [--write]
#
# cbindgen is installed once into the machine's tool cache (FLIPBOOK_CACHE/tools, as
# scripts/fuzz installs cargo-fuzz): as a dev-dependency its own dependencies' features would
# re-unify the workspace's test build and compile the stack again (5 min on a fresh machine).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
tools="${FLIPBOOK_CACHE:-$HOME/.cache/flipbook}/tools"
version=0.29.4
if [[ "$("$tools/bin/cbindgen" --version 2>/dev/null)" != "cbindgen $version" ]]; then
  cargo install --quiet --locked --root "$tools" "cbindgen@$version"
fi
generated=$(mktemp)
trap 'rm -f "$generated"' EXIT
(cd "$here" && "$tools/bin/cbindgen" --quiet --config cbindgen.toml --crate flipbook-c --output "$generated")
if [[ "${1:-}" == "--write" ]]; then
  cp "$generated" "$here/include/flipbook.h"
elif ! diff -u "$here/include/flipbook.h" "$generated"; then
  echo "bindings/c/include/flipbook.h is not what cbindgen generates from src/: run bindings/c/scripts/header.sh --write and commit it" >&2
  exit 1
fi
