#!/usr/bin/env bash
# Builds the Go driver as a user's program gets the package: the released module
# (bindings/go/scripts/proxy.sh) fetched with `go get` from a file GOPROXY into DIR, with no
# cargo or rustc on PATH; gofmt, go vet and staticcheck check the driver there.
#
#   conformance/drivers/go/install.sh DIR      (then: DIR/driver)
#
# bindings/go/scripts/lib.sh must have built the library first.
set -euo pipefail
dir=$(realpath -m "${1:?usage: install.sh DIR}")
here=$(cd "$(dirname "$0")" && pwd)
[[ -d "$dir" ]] && chmod -R u+w "$dir"
rm -rf "$dir"
mkdir -p "$dir/src"
"$here/../../../bindings/go/scripts/proxy.sh" "$dir/proxy"
cp "$here/go.mod" "$here/driver.go" "$dir/src/"
no_rust=$(printf %s "$PATH" | tr : '\n' | grep -v -e cargo -e rustup | paste -sd:)
cd "$dir/src"
# A module cache of its own: the machine's would keep an earlier build of the same version.
export PATH="$no_rust" GOPROXY="file://$dir/proxy" GOSUMDB=off GOFLAGS="-mod=mod -modcacherw" GOMODCACHE="$dir/modcache"
go build -o "$dir/driver" .
unformatted=$(gofmt -l .)
[ -z "$unformatted" ] || { echo "gofmt: $unformatted" >&2; exit 1; }
go vet .
staticcheck="${FLIPBOOK_CACHE:-$HOME/.cache/flipbook}/tools/bin/staticcheck"
"$staticcheck" -checks all .
