#!/usr/bin/env bash
# Builds the core's static library (bindings/c) from source and puts it where the Go package
# links it: internal/native/<platform>/libflipbook.a, ignored by git. A release ships it there,
# debug-stripped (scripts/release.sh); a checkout runs this first.
#
#   bindings/go/scripts/lib.sh [--release]
#
# The same `cargo build` as ./scripts/test's (the whole workspace: one feature set, so nothing
# is compiled twice), into CARGO_TARGET_DIR (default ~/.cache/flipbook/target).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/flipbook/target}"
profile=debug
flags=()
if [[ "${1:-}" == "--release" ]]; then
  profile=release
  flags=(--release)
fi
(cd "$here/../.." && cargo build --workspace --bins --lib --locked "${flags[@]}")
platform="$(go env GOOS)_$(go env GOARCH)"
cp "$CARGO_TARGET_DIR/$profile/libflipbook.a" "$here/internal/native/$platform/libflipbook.a"
echo "bindings/go/internal/native/$platform/libflipbook.a: the $profile build"
