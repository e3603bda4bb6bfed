# shipshape's container image: a static binary on distroless/static (CA
# certificates, a non-root user, no shell, no package manager).
#
#   docker build -t shipshape --build-arg SOURCE_URL=https://github.com/<you>/shipshape .
#
# The service needs the Docker socket, which belongs to root and the host's
# `docker` group: run with `--group-add "$(stat -c %g /var/run/docker.sock)"`
# (compose: `group_add:`), see docs/install.md. Anyone who reaches the socket
# controls the host; shipshape's login protects the UI that can use it.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-alpine AS build
# musl-dev: the C runtime for the bundled SQLite and ring; alpine's Rust
# targets musl, so the binary is static and runs on distroless/static.
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin shipshape \
    && install -D -m 0755 target/release/shipshape /out/usr/local/bin/shipshape \
    && install -d -m 0700 /out/data

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=0.1.0
ARG SOURCE_URL=""
LABEL org.opencontainers.image.title="shipshape" \
      org.opencontainers.image.description="Keeps a host's Docker containers on the newest image of their tag" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="MIT"
COPY --from=build /out/usr/local/bin/shipshape /usr/local/bin/shipshape
# The data volume starts out owned by the user the service runs as.
COPY --from=build --chown=65532:65532 /out/data /data
# Auth stays on (the default): on 0.0.0.0 the service refuses SHIPSHAPE_AUTH=off
# unless SHIPSHAPE_AUTH_OFF_I_UNDERSTAND=true.
ENV SHIPSHAPE_LISTEN=0.0.0.0:8099 \
    SHIPSHAPE_DATA_DIR=/data \
    DOCKER_HOST=unix:///var/run/docker.sock
USER 65532:65532
VOLUME ["/data"]
EXPOSE 8099
# The binary asks its own /health on loopback (SHIPSHAPE_LISTEN says the port).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/shipshape", "health"]
ENTRYPOINT ["/usr/local/bin/shipshape"]
CMD ["serve"]
