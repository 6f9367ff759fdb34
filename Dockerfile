# syntax=docker/dockerfile:1.7
# One image for every component: `cpuburst <operator|agent|broker|devcluster|demo>`.
# scripts/image-check.sh runs these same steps without a Docker engine (test/charts/image.test.ts).

ARG NODE_IMAGE=node:20.19-bookworm-slim

# --- build: compile TypeScript with the full (dev) dependency set --------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json cli.ts ./
COPY common ./common
COPY protocol ./protocol
COPY daemon ./daemon
COPY operator ./operator
COPY broker ./broker
COPY devcluster ./devcluster
COPY demo ./demo
RUN npx tsc -p tsconfig.build.json && chmod +x dist/cli.js

# --- deps: production dependencies only ----------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# --- runtime -------------------------------------------------------------------------------------
FROM ${NODE_IMAGE}
LABEL org.opencontainers.image.title="cpuburst" \
      org.opencontainers.image.description="Kernel-safe CPU burst for Kubernetes: operator, node agent, MQTT broker" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
COPY crds ./crds
RUN ln -s /app/dist/cli.js /usr/local/bin/cpuburst
# The node image's unprivileged user. The agent DaemonSet overrides this with uid 0 (it writes
# root-owned cgroup files); the operator and broker run as this user with a read-only root fs.
USER 1000:1000
EXPOSE 1883 8883 8083 8084 18083 8080 8081 9316
ENTRYPOINT ["cpuburst"]
CMD ["--help"]
