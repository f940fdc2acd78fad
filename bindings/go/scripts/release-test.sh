#!/usr/bin/env bash
# The release path end to end: assembles the module with its library (release.sh), serves it
# from a file-based GOPROXY (proxy.sh), and builds and runs a consumer program (consumer/main.go) with
# `go get` in a fresh module cache and no cargo or rustc on PATH; again after `go mod vendor`;
# and checks that CGO_ENABLED=0 fails with the one message that says why.
#
#   bindings/go/scripts/release-test.sh      (after scripts/lib.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
module=github.com/flipbook-es/flipbook/bindings/go
version=v0.1.0
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

"$here/scripts/proxy.sh" "$work/proxy"

# The user's machine: no Rust on PATH, a module cache of its own (the build cache is shared: it
# is keyed by content, so it cannot stand in for a file the module lacks).
no_rust_path=$(printf %s "$PATH" | tr : '\n' | grep -v -e cargo -e rustup | paste -sd:)
consumer="$work/consumer"
mkdir -p "$consumer"
cp "$here/scripts/consumer/main.go" "$consumer/"
run() {
  env -i PATH="$no_rust_path" HOME="$work/home" GOPATH="$work/gopath" GOCACHE="$(go env GOCACHE)" \
    GOPROXY="file://$work/proxy" GOSUMDB=off GOTOOLCHAIN=local GOFLAGS=-modcacherw "$@"
}
(
  cd "$consumer"
  if run sh -c 'command -v cargo || command -v rustc'; then
    echo "cargo or rustc is still on PATH" >&2
    exit 1
  fi
  run go mod init example.com/consumer >/dev/null 2>&1
  run go get "$module@$version"
  run go build -o consumer .
  [[ "$(./consumer)" == "counted 2 2 <nil>" ]] || { echo "the consumer answered: $(./consumer)" >&2; exit 1; }
  echo "go get: the consumer builds and runs"

  run go mod vendor
  [[ -f "vendor/$module/internal/native/$(go env GOOS)_$(go env GOARCH)/libflipbook.a" && -f "vendor/$module/flipbook.h" ]] ||
    { echo "go mod vendor left out the library or the header" >&2; exit 1; }
  rm consumer
  run go build -mod=vendor -o consumer .
  [[ "$(./consumer)" == "counted 2 2 <nil>" ]] || { echo "vendored, the consumer answered: $(./consumer)" >&2; exit 1; }
  echo "go mod vendor: the consumer builds and runs"

  if output=$(run env CGO_ENABLED=0 go build -mod=vendor -o consumer-nocgo . 2>&1); then
    echo "CGO_ENABLED=0 built" >&2
    exit 1
  fi
  grep -q "flipbook_needs_cgo__build_with_CGO_ENABLED_1_and_a_C_compiler" <<<"$output" ||
    { echo "CGO_ENABLED=0 failed with another message: $output" >&2; exit 1; }
  echo "CGO_ENABLED=0: fails with the message that says why"
)
