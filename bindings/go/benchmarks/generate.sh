#!/usr/bin/env bash
# Generates flipbookv1/ (the plain grpc-go client the benchmark compares against) from
# proto/flipbook/v1/flipbook.proto, with protoc (the one cargo fetched for flipbook-proto) and
# the Go plugins, installed into the tool cache. The generated code is committed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tools="${FLIPBOOK_CACHE:-$HOME/.cache/flipbook}/tools/bin"
GOBIN="$tools" go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
GOBIN="$tools" go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
protoc=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/protoc-bin-vendored-linux-x86_64-*/bin/protoc | head -1)
package=github.com/flipbook-es/flipbook/bindings/go/benchmarks/flipbookv1
PATH="$tools:$PATH" "$protoc" -I "$here/../../../proto" \
  --go_out="$here/flipbookv1" --go_opt=paths=source_relative,Mflipbook/v1/flipbook.proto="$package" \
  --go-grpc_out="$here/flipbookv1" --go-grpc_opt=paths=source_relative,Mflipbook/v1/flipbook.proto="$package" \
  flipbook/v1/flipbook.proto
mv "$here/flipbookv1/flipbook/v1/"*.go "$here/flipbookv1/"
rmdir "$here/flipbookv1/flipbook/v1" "$here/flipbookv1/flipbook"
