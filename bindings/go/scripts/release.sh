#!/usr/bin/env bash
# Assembles the Go module as a release ships it: the package's files as committed, and for
# each platform a debug-stripped static library in internal/native/<platform>/, where the
# package's build tags select it. `go get` of the release then needs no Rust toolchain.
#
#   bindings/go/scripts/release.sh OUT [PLATFORM=LIBRARY ...]
#
# With no PLATFORM=LIBRARY the one scripts/lib.sh put in place for this machine's platform is
# used; the public workflow passes every platform's (linux_arm64=…, darwin_arm64=…). A release
# commit adds OUT's libraries to a tag (bindings/go/vX.Y.Z) and not to main: binaries stay out
# of main's history.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: release.sh OUT [PLATFORM=LIBRARY ...]}
shift
rm -rf "$out"
mkdir -p "$out"
# The committed files of the package; the checkout's scripts, tests and benchmarks stay out (the
# examples stay: godoc shows them).
(cd "$here" && git ls-files -- . ':!:scripts' ':!:benchmarks' ':!:internal/testserver' ':!:*_test.go' && echo example_test.go) | while read -r file; do
  mkdir -p "$out/$(dirname "$file")"
  cp "$here/$file" "$out/$file"
done
libraries=("$@")
if [[ ${#libraries[@]} -eq 0 ]]; then
  platform="$(go env GOOS)_$(go env GOARCH)"
  libraries=("$platform=$here/internal/native/$platform/libflipbook.a")
fi
for entry in "${libraries[@]}"; do
  platform=${entry%%=*}
  library=${entry#*=}
  [[ -d "$out/internal/native/$platform" ]] || { echo "no package for platform $platform" >&2; exit 1; }
  strip -S -o "$out/internal/native/$platform/libflipbook.a" "$library"
  echo "$platform: $(du -h "$out/internal/native/$platform/libflipbook.a" | cut -f1) stripped"
done
