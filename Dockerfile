# Cordon worker and API image. glibc base: Temporal's native core does not support musl.
# Runtime dependencies only: tsx (a dependency, not a dev dependency) runs the TypeScript sources.
FROM node:20-bookworm-slim AS deps
WORKDIR /app
# better-sqlite3 compiles its native module when no prebuilt binary can be fetched.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
# --allow-scripts is read by npm 11 (package.json `allowScripts`); older npm ignores it.
RUN npm ci --omit=dev --allow-scripts=better-sqlite3,esbuild,@swc/core,protobufjs \
 && npm cache clean --force

# No compiler in the image that runs.
FROM node:20-bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin cordon \
 && mkdir -p /data && chown cordon /data
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json tsconfig.json ./
COPY domain ./domain
COPY workflows ./workflows
COPY activities ./activities
COPY playbooks ./playbooks
COPY policies ./policies
COPY store ./store
COPY config ./config
COPY workers ./workers
COPY server ./server
COPY cli ./cli
COPY bin ./bin
USER cordon
ENV NODE_ENV=production CORDON_DATA_DIR=/data
# tini forwards SIGTERM to node and reaps children, so the drain on SIGTERM runs as in any process.
ENTRYPOINT ["/usr/bin/tini", "--"]
# The service's command picks the role: worker or API.
CMD ["node", "--import", "tsx", "workers/main.ts"]
