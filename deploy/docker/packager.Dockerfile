# syntax=docker/dockerfile:1.7
# The packager service. Build from the repository root (the context is the whole workspace):
#   docker build -f deploy/docker/packager.Dockerfile -t REGISTRY/live-packager:TAG .
# Kustomize sets the image tag (deploy/k8s/overlays/*/kustomization.yaml, `images:`).

# 1. A workspace pruned to this service and the libs it uses (turbo prune), with a pruned lockfile.
FROM node:20-bookworm-slim AS prune
WORKDIR /src
COPY . .
RUN npx --yes turbo@2 prune @live/packager --docker

# 2. Build: every dependency (TypeScript), then compile the libs and the service to dist/.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY --from=prune /src/out/json/ ./
RUN npm ci --ignore-scripts
COPY --from=prune /src/out/full/ ./
COPY tsconfig.base.json ./
RUN npx turbo run build --filter=@live/packager...

# 3. Production dependencies only.
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY --from=prune /src/out/json/ ./
RUN npm ci --omit=dev --ignore-scripts

# 4. Runtime: node, production node_modules, compiled code; no sources, no compiler, non-root.
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/ ./
COPY --from=build /app/libs/ ./libs/
COPY --from=build /app/services/packager/ ./services/packager/
# The node image's unprivileged user (uid 1000); the pod's securityContext also demands non-root.
USER 1000:1000
# No HEALTHCHECK: Kubernetes probes /healthz and /readyz on the ops port.
# Node.js flags: SERVICE_NODE_FLAGS in libs/testing/src/service.ts says why (the same in tests and npm start).
CMD ["node", "--single-threaded-gc", "services/packager/dist/main.js"]
