#!/usr/bin/env bash
# Run the pinned buf CLI (npm package @bufbuild/buf, version pinned in tools/buf/package.json and
# tools/buf/package-lock.json) from the repository root, installing it first when it is absent
# or not the pinned version.
#
#   tools/buf.sh lint
#   tools/buf.sh breaking --against '.git#branch=main,subdir=proto'   (see tools/proto_breaking.sh)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUF_DIR="$ROOT/tools/buf"
PKG_DIR="$BUF_DIR/node_modules/@bufbuild/buf"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "tools/buf.sh: node and npm are required to install the pinned buf CLI" >&2
  exit 127
fi

pinned="$(node -p 'require(process.argv[1]).devDependencies["@bufbuild/buf"]' "$BUF_DIR/package.json")"
installed=""
if [[ -f "$PKG_DIR/package.json" ]]; then
  installed="$(node -p 'require(process.argv[1]).version' "$PKG_DIR/package.json")"
fi

if [[ "$installed" != "$pinned" ]]; then
  echo "tools/buf.sh: installing buf $pinned into tools/buf/node_modules" >&2
  npm ci --prefix "$BUF_DIR" --no-audit --no-fund --loglevel=error >&2
  # The package's postinstall (which npm may skip) resolves the platform binary, fetches it from
  # the npm registry if the lockfile had no entry for this platform, and checks its version.
  node "$PKG_DIR/install.js" >&2
fi

cd "$ROOT"
exec node "$PKG_DIR/bin/buf" "$@"
