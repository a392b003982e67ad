# syntax=docker/dockerfile:1
#
# verinode container image: one department's exchange node (docs/OPERATIONS.md "Container").
#
#   docker build -t verinode:0.1.0 .
#   docker run --read-only --tmpfs /tmp \
#     -v "$PWD/node:/config:ro" -v "$PWD/node/keys:/keys:ro" -v verinode-data:/data \
#     -p 7100:7100 -p 127.0.0.1:7180:7180 verinode:0.1.0
#
# KEEP IN SYNC with scripts/production-build.sh. No container engine runs on the development and CI
# machines, so that script performs these exact steps in a plain directory (same COPY set, same RUN
# commands, same runtime environment, started as a non-root user from a read-only tree, probed with
# this file's HEALTHCHECK command), and test/deploy/production-build.test.ts runs it and checks that
# every RUN command, COPY and ENV below still appears in it.

ARG NODE_IMAGE=node:24-bookworm-slim

# ---------------------------------------------------------------------------------------------------
# Build stage: full install (better-sqlite3 compiles its native addon here), compile TypeScript, then
# drop the devDependencies in place. Pruning keeps the addon compiled against this very image's Node
# and glibc, which the runtime stage shares (same base image).
FROM ${NODE_IMAGE} AS build
# node-gyp's toolchain for the better-sqlite3 addon (slim images have none).
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /build
# node-gyp: use the headers that ship with the image's Node instead of downloading them, and compile
# SQLite and the binding in parallel.
ENV npm_config_nodedir=/usr/local \
    JOBS=max
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --prefer-offline --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY console ./console
# scripts/build-wasm.mjs: `npm run build` compiles the SM2 WebAssembly (src/crypto/wasm) into dist
COPY scripts ./scripts
RUN npm run build
RUN npm prune --omit=dev --no-audit --no-fund
# Read-only for everyone; COPY --from keeps the modes, so the runtime stage needs no chmod layer
# (which would duplicate the whole tree in the image).
RUN chmod -R a-w dist node_modules package.json

# ---------------------------------------------------------------------------------------------------
# Runtime stage: compiled JavaScript and production node_modules only (no sources, no compiler, no
# tests, no keys). The app tree belongs to root and is not writable; the node runs as the image's
# unprivileged `node` user (uid 1000) and writes only to the /data volume. It works with
# `--read-only` (compose: read_only: true) plus a tmpfs on /tmp.
FROM ${NODE_IMAGE} AS runtime
# NODE_OPTIONS: a 128 MB old generation keeps the resident set under 300 MB at sustained load (V8
# otherwise lets garbage pile up far beyond the live heap before a full collection); it holds the
# default replay memory (300,000 exchanges), and the node warns at start-up when limits.replayMaxEntries
# would not fit (docs/OPERATIONS.md "Memory and latency under sustained load").
ENV NODE_ENV=production \
    NODE_OPTIONS=--max-old-space-size=128 \
    VERINODE_DATA_DIR=/data \
    VERINODE_KEYS_DIR=/keys \
    VERINODE_LISTEN_HOST=0.0.0.0 \
    VERINODE_LISTEN_PORT=7100 \
    VERINODE_LOCAL_HOST=0.0.0.0 \
    VERINODE_LOCAL_PORT=7180
WORKDIR /app
COPY --from=build /build/package.json ./package.json
COPY --from=build /build/node_modules ./node_modules
COPY --from=build /build/dist ./dist
RUN mkdir -p /data /keys /config && chown node:node /data /keys && chmod 0700 /data /keys
USER node
# /data: the node's log store (log.db, WAL) and evidence; /keys: private keys (0600, owned by uid
# 1000), mounted read-only. /config (verinode.json, federation/) is a read-only bind mount.
VOLUME ["/data", "/keys"]
# 7100: public listener (peers; /healthz, /readyz, /metrics). 7180: local API for the department's
# own applications: publish it on an internal interface only.
EXPOSE 7100 7180
# Liveness of the public listener, with node itself (slim images have no curl or wget): https
# first (the listener's own self-signed certificate; /healthz needs no client certificate, and the
# probe trusts nothing it reads), then plain http for a node without "tls".
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["node", "-e", "const o={host:'127.0.0.1',port:process.env.VERINODE_LISTEN_PORT||7100,path:'/healthz',rejectUnauthorized:false},get=(m,next)=>require(m).get(o,r=>process.exit(r.statusCode===200?0:1)).on('error',next).setTimeout(4000,()=>process.exit(1));get('https',()=>get('http',()=>process.exit(1)))"]
ENTRYPOINT ["node", "/app/dist/cli/bin.js"]
CMD ["serve", "--config", "/config/verinode.json"]
