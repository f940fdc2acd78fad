#!/usr/bin/env bash
# Packs the npm packages users install: `flipbook` (the TypeScript build, with an optional
# dependency on each platform package) and `flipbook-<platform>` (the addon, debug info
# stripped) for the addon built here, as `npm pack` tarballs in the directory given.
#
#   scripts/pack.sh OUT_DIR
#
# Run `npm run build:native` (or `napi build --release`) and `npm run build` first. The public
# CI workflow builds the other targets' addons and packs them the same way.
set -euo pipefail
out=$(realpath -m "${1:?usage: scripts/pack.sh OUT_DIR}")
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
mkdir -p "$out"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

version=$(node -p 'require("./package.json").version')
platforms=()
for dir in npm/*/; do
  platform=$(basename "$dir")
  addon="flipbook.$platform.node"
  [[ -f $addon ]] || continue
  mkdir -p "$stage/$platform"
  cp "$dir/package.json" "$stage/$platform/"
  if [[ $(head -c 4 "$addon" | tr -d '\177') == ELF ]]; then
    strip --strip-debug -o "$stage/$platform/$addon" "$addon"
  else
    cp "$addon" "$stage/$platform/" # Mach-O and PE addons come stripped from CI (napi build --strip)
  fi
  node -e '
    const fs = require("fs"), [file, version] = process.argv.slice(1);
    const pkg = JSON.parse(fs.readFileSync(file, "utf8"));
    if (pkg.version !== version) throw new Error(`${file}: version ${pkg.version}, the root is ${version}`);
  ' "$stage/$platform/package.json" "$version"
  (cd "$stage/$platform" && npm pack --silent --pack-destination "$out" > /dev/null)
  platforms+=("$platform")
done
[[ ${#platforms[@]} -gt 0 ]] || { echo "no addon built here: run npm run build:native first" >&2; exit 1; }

mkdir -p "$stage/root/build"
cp package.json README.md "$stage/root/"
cp -r build/src "$stage/root/build/"
rm -f "$stage/root/build/src/"*.map
cp build/native.d.ts "$stage/root/build/"
# The published manifest: an optional dependency per platform package npm/ describes (npm
# installs the one whose os, cpu and libc match), and nothing of development.
node -e '
  const fs = require("fs"), path = require("path"), [file, npmDir] = process.argv.slice(1);
  const pkg = JSON.parse(fs.readFileSync(file, "utf8"));
  pkg.optionalDependencies = {};
  for (const platform of fs.readdirSync(npmDir).sort()) {
    const sub = JSON.parse(fs.readFileSync(path.join(npmDir, platform, "package.json"), "utf8"));
    pkg.optionalDependencies[sub.name] = pkg.version;
  }
  delete pkg.devDependencies;
  delete pkg.scripts;
  fs.writeFileSync(file, JSON.stringify(pkg, null, 2) + "\n");
' "$stage/root/package.json" npm
(cd "$stage/root" && npm pack --silent --pack-destination "$out" > /dev/null)
ls "$out"
