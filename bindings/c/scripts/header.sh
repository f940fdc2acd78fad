#!/usr/bin/env bash
# Generates include/flipbook.h with cbindgen from src/ and fails when the committed one
# differs, or its copy in the Go package (bindings/go/flipbook.h: Go's build cache sees a
# header only in the package's own directory, and a module carries no file outside it). Both
# are committed; CI runs this. --write rewrites them instead.
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
copies=("$here/include/flipbook.h" "$here/../go/flipbook.h")
for copy in "${copies[@]}"; do
  if [[ "${1:-}" == "--write" ]]; then
    cp "$generated" "$copy"
  elif ! diff -u "$copy" "$generated"; then
    echo "$copy is not what cbindgen generates from bindings/c/src: run bindings/c/scripts/header.sh --write and commit it" >&2
    exit 1
  fi
done
