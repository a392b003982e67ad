#!/usr/bin/env bash
# scripts/production-build.sh <empty-or-new-directory>
#
# The Dockerfile's production steps without a container engine (none runs on the development and CI
# machines). KEEP IN SYNC with ../Dockerfile: test/deploy/production-build.test.ts runs this script
# and checks that every RUN command, COPY and ENV of the Dockerfile still appears here.
#
# Conventions that drift check relies on:
#   - container paths are shell variables of the same name in capitals ($BUILD = /build, $APP = /app,
#     $DATA = /data, $KEYS = /keys, $CONFIG = /config) and $NODE_USER stands for node:node;
#   - `run_in DIR CMD...` runs one RUN command, `copy_context FILES...` is a `COPY FILES... ./`
#     from the build context, `copy_from_build PATH` is a `COPY --from=build /build/PATH ./PATH`;
#   - a RUN command that cannot be repeated outside the image is listed on a `# not mirrored:` line.
#
# Then it checks the result the way the container would run it:
#   1. the runtime tree is read-only for the user the node runs as (uid 1000, the image's `node`
#      user, through setpriv when this script runs as root);
#   2. `verinode demo` (four nodes, real exchanges, audit) runs from that tree as that user;
#   3. `verinode serve` starts with the container's environment (/config, /keys read-only, /data the
#      only writable place), the Dockerfile's own HEALTHCHECK command succeeds against it, /readyz
#      answers ready, and SIGTERM shuts it down cleanly (exit 0);
#   4. nothing was written to the runtime tree or the config.
#
# Layout of the directory it fills: build/ (the build stage's /build), app/ (/app), data/, keys/,
# config/ (the volumes and the config mount), work/ (scratch for the checks).
# Expect 1-3 minutes: better-sqlite3 compiles from source during npm ci.
set -euo pipefail

if [ $# -ne 1 ] || [ "${1:0:1}" = "-" ]; then
  echo "usage: scripts/production-build.sh <empty-or-new-directory>" >&2
  exit 2
fi
SRC=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
if [ -n "$(ls -A "$OUT")" ]; then
  echo "production-build: $OUT is not empty" >&2
  exit 2
fi

BUILD=$OUT/build    # /build (build stage)
APP=$OUT/app        # /app (runtime stage)
DATA=$OUT/data      # the /data volume
KEYS=$OUT/keys      # the /keys volume
CONFIG=$OUT/config  # the /config bind mount
WORK=$OUT/work      # scratch for the checks, not part of the image

T0=$SECONDS
phase() { echo "=== $1 ($((SECONDS - T0)) s)"; }
fail() { echo "production-build: FAILED: $*" >&2; exit 1; }
run_in() { local dir=$1; shift; echo "+ (in ${dir#"$OUT"/}) $*"; (cd "$dir" && "$@"); }
copy_context() { local f; for f in "$@"; do echo "+ COPY $f"; cp -R "$SRC/$f" "$BUILD/"; done; }
copy_from_build() { echo "+ COPY --from=build $1"; cp -R "$BUILD/$1" "$APP/$1"; } # keeps modes, as COPY does

# The user the node runs as: the image's `node` user is uid/gid 1000. Running as root, drop to it
# with setpriv (util-linux); without setpriv that part is skipped and said so. Running as another
# user, that user is already unprivileged.
NODE_UID=1000
NODE_GID=1000
AS_NODE=()
if [ "$(id -u)" -eq 0 ]; then
  if command -v setpriv >/dev/null 2>&1; then
    AS_NODE=(setpriv "--reuid=$NODE_UID" "--regid=$NODE_GID" --clear-groups --)
    NODE_USER="$NODE_UID:$NODE_GID"
    NONROOT="uid $NODE_UID via setpriv"
  else
    NODE_USER="0:0"
    NONROOT=""
    echo "production-build: NOTE: running as root and setpriv (util-linux) is not installed:" \
      "the checks run as root, so the non-root and read-only parts are SKIPPED" >&2
  fi
else
  NODE_UID=$(id -u)
  NODE_GID=$(id -g)
  NODE_USER="$NODE_UID:$NODE_GID"
  NONROOT="uid $NODE_UID (the invoking user)"
fi

# A clean environment like a fresh container's: nothing inherited from a parent npm, a test runner's
# loaders or coverage hooks.
unset NODE_ENV NODE_OPTIONS NODE_V8_COVERAGE NODE_PATH
while IFS= read -r v; do unset "$v"; done < <(env | sed -n 's/^\(npm_[A-Za-z0-9_]*\)=.*/\1/p')

# ---------------------------------------------------------------------------------------------------
phase "build stage (FROM node:24-bookworm-slim AS build)"
# not mirrored: apt-get update
# not mirrored: apt-get install -y --no-install-recommends python3 make g++
# not mirrored: rm -rf /var/lib/apt/lists/*
# (this machine's own toolchain stands in for those packages)
for tool in node npm python3 make g++; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is needed (the build stage installs python3, make and g++)"
done
NODE_BIN=$(command -v node)
# The image runs Node 24 LTS (.ci/run puts scripts/node24.sh's runtime first on PATH for this step).
case "$("$NODE_BIN" --version)" in
  v24.*) ;;
  *) echo "production-build: NOTE: the image runs Node 24; this run uses $("$NODE_BIN" --version) ($NODE_BIN)" >&2 ;;
esac
# ENV npm_config_nodedir: the headers of the Node that runs here (the image's are in /usr/local).
NODE_PREFIX=$(dirname "$(dirname "$(readlink -f "$NODE_BIN")")")
if [ -z "${npm_config_nodedir:-}" ] && [ -f "$NODE_PREFIX/include/node/node.h" ]; then
  export npm_config_nodedir=$NODE_PREFIX
fi
export JOBS=max
mkdir -p "$BUILD"
copy_context package.json package-lock.json
run_in "$BUILD" npm ci --prefer-offline --no-audit --no-fund
copy_context tsconfig.json tsconfig.build.json
copy_context src
copy_context console
copy_context scripts
run_in "$BUILD" npm run build
run_in "$BUILD" npm prune --omit=dev --no-audit --no-fund
run_in "$BUILD" chmod -R a-w dist node_modules package.json

# ---------------------------------------------------------------------------------------------------
phase "runtime stage (FROM node:24-bookworm-slim AS runtime)"
mkdir -p "$APP"
copy_from_build package.json
copy_from_build node_modules
copy_from_build dist
chmod a-w "$APP" # WORKDIR /app belongs to root: not writable by the node's user either
mkdir -p "$DATA" "$KEYS" "$CONFIG"
chown "$NODE_USER" "$DATA" "$KEYS"
chmod 0700 "$DATA" "$KEYS"
# USER node: the checks below run through "${AS_NODE[@]}" with the runtime stage's environment.
NODE_DIR=$(dirname "$NODE_BIN")
# The environment the checks run with: only the runtime stage's, nothing inherited.
BASE_ENV=(env -i "PATH=$NODE_DIR:/usr/local/bin:/usr/bin:/bin" "HOME=$WORK/home" "TMPDIR=$WORK/tmp" NODE_ENV=production "NODE_OPTIONS=--max-old-space-size=128")
# `verinode demo` runs four nodes from their own folders, which one shared override would break: it
# runs with the VERINODE_* overrides emptied, as `docker run -e VERINODE_DATA_DIR= ...` does.
DEMO_ENV=("${BASE_ENV[@]}" VERINODE_DATA_DIR= VERINODE_KEYS_DIR= VERINODE_LISTEN_HOST= VERINODE_LISTEN_PORT= VERINODE_LOCAL_HOST= VERINODE_LOCAL_PORT=)
free_port() { "$NODE_BIN" -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }

# ---------------------------------------------------------------------------------------------------
phase "checks"
mkdir -p "$WORK/tmp" "$WORK/home"
chmod 0555 "$WORK/home" # like /home/node under a read-only root filesystem
chown "$NODE_USER" "$WORK" "$WORK/tmp"
touch "$WORK/.t0"

# 1. the runtime tree is read-only for the node's user, and readable
if [ -n "$NONROOT" ]; then
  "${AS_NODE[@]}" test -r "$APP/dist/cli/bin.js" || fail "the node's user cannot read $APP (a parent folder is not traversable?)"
  if "${AS_NODE[@]}" sh -c 'touch "$1/dist/.probe" 2>/dev/null || touch "$1/.probe" 2>/dev/null' _ "$APP"; then
    fail "the runtime tree is writable by the node's user"
  fi
  echo "check: read-only app tree, non-root user: ok ($NONROOT)"
else
  echo "check: read-only app tree, non-root user: SKIPPED (running as root without setpriv)"
fi

# 2. the demo: four nodes exchanging over loopback, each log audited
DEMO=$WORK/demo
(cd "$APP" && exec "${DEMO_ENV[@]}" "${AS_NODE[@]}" node "$APP/dist/cli/bin.js" demo --dir "$DEMO" --residents 300 --enterprises 200) \
  >"$WORK/demo.log" 2>&1 || { tail -n 40 "$WORK/demo.log" >&2; fail "verinode demo exited non-zero"; }
grep -q 'All verifications behaved as expected' "$WORK/demo.log" || { tail -n 40 "$WORK/demo.log" >&2; fail "verinode demo did not report success"; }
echo "check: verinode demo from the built tree: ok"

# 3. serve one node as the container would: its folder mounted at /config (read-only), its keys at
#    /keys (read-only), an empty /data volume
cp -R "$DEMO/fj-psb/verinode.json" "$DEMO/fj-psb/federation" "$DEMO/fj-psb/keys" "$CONFIG/"
cp -R "$DEMO/fj-psb/keys/." "$KEYS/"
chown -R "$NODE_USER" "$CONFIG" "$KEYS"
chmod -R a-w "$CONFIG"
chmod 0500 "$KEYS"
touch "$WORK/.t1"
PORT=$(free_port)
LPORT=$(free_port)
# The runtime stage's ENV, except that the check listens on loopback and free ports (the image:
# 0.0.0.0, 7100 and 7180).
RUNTIME_ENV=("${BASE_ENV[@]}"
  "VERINODE_DATA_DIR=$DATA"
  "VERINODE_KEYS_DIR=$KEYS"
  VERINODE_LISTEN_HOST=127.0.0.1
  "VERINODE_LISTEN_PORT=$PORT"
  VERINODE_LOCAL_HOST=127.0.0.1
  "VERINODE_LOCAL_PORT=$LPORT"
  VERINODE_LOG_LEVEL=info) # the demo's configs say warn; the shutdown line is at info
# the Dockerfile's HEALTHCHECK command, exactly (its exec-form JSON array)
mapfile -d '' HEALTHCHECK < <("$NODE_BIN" -e '
  const line = require("fs").readFileSync(process.argv[1], "utf8").split("\n").find((l) => /^HEALTHCHECK\s/.test(l))
  const m = line && line.match(/\sCMD\s+(\[.*\])\s*$/)
  if (!m) { console.error("no exec-form HEALTHCHECK in the Dockerfile"); process.exit(1) }
  for (const a of JSON.parse(m[1])) process.stdout.write(a + "\0")' "$SRC/Dockerfile")
[ "${#HEALTHCHECK[@]}" -gt 0 ] || fail "could not read the Dockerfile's HEALTHCHECK"
healthcheck() { (cd "$APP" && exec "${RUNTIME_ENV[@]}" "${AS_NODE[@]}" "${HEALTHCHECK[@]}"); }

if healthcheck 2>/dev/null; then fail "HEALTHCHECK succeeded before the node started (port $PORT taken?)"; fi
(cd "$APP" && exec "${RUNTIME_ENV[@]}" "${AS_NODE[@]}" node "$APP/dist/cli/bin.js" serve --config "$CONFIG/verinode.json") \
  >"$WORK/serve.log" 2>&1 &
SERVE_PID=$!
trap 'kill "$SERVE_PID" 2>/dev/null || true' EXIT
healthy=""
for _ in $(seq 1 120); do
  kill -0 "$SERVE_PID" 2>/dev/null || { tail -n 40 "$WORK/serve.log" >&2; fail "verinode serve exited during start-up"; }
  if healthcheck 2>/dev/null; then healthy=yes; break; fi
  sleep 0.5
done
[ -n "$healthy" ] || { tail -n 40 "$WORK/serve.log" >&2; fail "the HEALTHCHECK command did not succeed within 60 s"; }
echo "check: Dockerfile HEALTHCHECK against verinode serve: ok"
# the demo's nodes serve mutual TLS; /readyz needs no client certificate (https, else plain http)
"$NODE_BIN" -e '
  const o = { host: "127.0.0.1", port: process.argv[1], path: "/readyz", rejectUnauthorized: false }
  const check = (r) => { let b = ""; r.setEncoding("utf8").on("data", (c) => { b += c }).on("end", () => {
    let j = {}; try { j = JSON.parse(b) } catch {}
    if (r.statusCode !== 200 || j.status !== "ready") { console.error(r.statusCode, b); process.exit(1) } }) }
  require("https").get(o, check).on("error", () => require("http").get(o, check).on("error", (e) => { console.error(e.message); process.exit(1) }))' "$PORT" \
  || { tail -n 40 "$WORK/serve.log" >&2; fail "/readyz did not answer ready"; }
echo "check: /readyz: ok"
kill -TERM "$SERVE_PID"
code=""
for _ in $(seq 1 40); do
  if ! kill -0 "$SERVE_PID" 2>/dev/null; then
    set +e; wait "$SERVE_PID"; code=$?; set -e
    break
  fi
  sleep 0.5
done
trap - EXIT
[ -n "$code" ] || { kill -KILL "$SERVE_PID" 2>/dev/null || true; fail "verinode serve did not stop within 20 s of SIGTERM"; }
[ "$code" -eq 0 ] || { tail -n 40 "$WORK/serve.log" >&2; fail "verinode serve exited with $code after SIGTERM"; }
grep -q 'shutting down' "$WORK/serve.log" || fail "no graceful shutdown in the serve log"
echo "check: graceful shutdown on SIGTERM: ok"

# 4. writes went to /data only
[ -f "$DATA/log.db" ] || fail "no log.db in the data volume"
if [ -n "$NONROOT" ] && [ "$(stat -c %u "$DATA/log.db")" != "$NODE_UID" ]; then fail "log.db is not owned by the node's user"; fi
changed=$(find "$APP" "$CONFIG" "$KEYS" -newer "$WORK/.t1" -print | head -n 5)
[ -z "$changed" ] || fail "written outside the data volume: $changed"
echo "check: writes only in the data volume: ok"

phase "done"
echo "production-build: ok: runtime tree in $APP, $(du -sh "$APP" | cut -f1); ran as ${NONROOT:-root (non-root run skipped)}"
