#!/usr/bin/env bash
# Serves the released module (scripts/release.sh) from a file-based GOPROXY in DIR: what a
# user's `go get` fetches, for the release test and the conformance suite's Go driver.
#
#   bindings/go/scripts/proxy.sh DIR      (then: GOPROXY=file://DIR GOSUMDB=off go get …@v0.1.0)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dir=$(realpath -m "${1:?usage: proxy.sh DIR}")
module=github.com/flipbook-es/flipbook/bindings/go
version=v0.1.0
rm -rf "$dir"
staged="$dir/.module"
"$here/scripts/release.sh" "$staged"
# A GOPROXY is a directory: <module>/@v/list, and the version's .info, .mod and .zip (whose
# files sit under <module>@<version>/).
versions="$dir/$module/@v"
mkdir -p "$versions"
echo "$version" > "$versions/list"
printf '{"Version":"%s","Time":"2026-12-08T00:00:00Z"}\n' "$version" > "$versions/$version.info"
cp "$staged/go.mod" "$versions/$version.mod"
python3 - "$staged" "$versions/$version.zip" "$module@$version" <<'PY'
import os, sys, zipfile
root, target, prefix = sys.argv[1:]
with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
    for folder, _, files in os.walk(root):
        for name in sorted(files):
            path = os.path.join(folder, name)
            z.write(path, prefix + "/" + os.path.relpath(path, root))
PY
rm -rf "$staged"
