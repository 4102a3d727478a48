# Ferry container image: build with the full toolchain, run on a slim Node 24 LTS image as an
# unprivileged user with the storage volume at /var/lib/ferry.
FROM node:24-bookworm-slim AS build
WORKDIR /src
# A C compiler for the sendfile(2) helper (native/sendfile.c, built by `npm run build`).
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY bin ./bin
COPY native ./native
COPY scripts/build-native.mjs ./scripts/
RUN npm ci --ignore-scripts && npm run build && npm prune --omit=dev

FROM node:24-bookworm-slim
# The config `serve` and `healthcheck` read: replace it with a mount (-v ./ferry.yaml:/etc/ferry/ferry.yaml:ro).
# The storage path from the environment wins over the file, so data always lands on the volume.
ENV NODE_ENV=production FERRY_CONFIG=/etc/ferry/ferry.yaml FERRY_STORAGE_FILESYSTEM_PATH=/var/lib/ferry
# `ferry push images` decompresses xz, zstd and bzip2 bundles through these programs.
RUN apt-get update && apt-get install -y --no-install-recommends xz-utils zstd bzip2 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/ferry
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/bin ./bin
COPY config/ferry.example.yaml /etc/ferry/ferry.yaml
RUN mkdir -p /var/lib/ferry && chown node:node /var/lib/ferry
# node (uid 1000) from the base image: the Kubernetes manifests run as 1000 too.
USER node
VOLUME /var/lib/ferry
EXPOSE 5000
# Asks /healthz on the port and scheme (http or https) of the same config.
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 CMD ["node", "/opt/ferry/bin/ferry.js", "healthcheck"]
# Ferry finishes requests in flight for http.shutdownTimeout (30s) on SIGTERM: give it
# `docker stop -t 45` (or stop_grace_period) beyond Docker's default 10s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/opt/ferry/bin/ferry.js"]
CMD ["serve"]
