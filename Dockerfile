# Cordon worker and API image. glibc base: Temporal's native core does not support musl.
FROM node:20-bookworm-slim AS base
WORKDIR /app
# better-sqlite3 compiles its native module when no prebuilt binary can be fetched.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --allow-scripts=better-sqlite3,esbuild,@swc/core,protobufjs
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
COPY tsconfig.json ./

FROM base AS runtime
RUN useradd --system --uid 10001 --home /app cordon && mkdir -p /data && chown cordon /data
USER cordon
ENV NODE_ENV=production CORDON_DATA_DIR=/data
# The service's command picks the role: worker or API.
CMD ["node", "--import", "tsx", "workers/main.ts"]
