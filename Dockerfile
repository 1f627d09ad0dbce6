# syntax=docker/dockerfile:1
# qiwi-gateway: one binary (templates and static files compiled in), one volume.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Everything the build needs (sources, migrations, templates, static files); .dockerignore
# keeps out target/, tests, local databases and config.
COPY . .
# The cache mounts keep downloaded crates and compiled dependencies between builds (BuildKit and
# buildah both honour them); the binary is copied out of the cached target/ in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -s -D -m 0755 target/release/qiwi-gateway /out/qiwi-gateway \
    && mkdir -p /out/data

FROM debian:bookworm-slim
# The trust store: the account check and the webhook verify https peers against it (a private
# CA is added with SSL_CERT_FILE / SSL_CERT_DIR, see README). Not pinned on purpose: the trust
# store should carry Debian's current roots and revocations, not a frozen list.
# A fixed, unprivileged user: volumes created by the image are owned by it.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid gateway --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin gateway
COPY --from=build /out/qiwi-gateway /usr/local/bin/qiwi-gateway
COPY --from=build --chown=10001:10001 /out/data /data
ENV DATABASE_PATH=/data/qiwi.db \
    LISTEN_ADDR=0.0.0.0:8080 \
    LOG_FORMAT=text
VOLUME ["/data"]
EXPOSE 8080
USER 10001:10001
# The binary checks itself: no curl in the image. It reads the same LISTEN_ADDR and TLS
# settings as the server, so it calls http or https on the right port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["qiwi-gateway", "healthcheck"]
# docker stop sends SIGTERM, then SIGKILL after 10 s: shutdown_timeout_secs (8) fits inside.
STOPSIGNAL SIGTERM
ENTRYPOINT ["qiwi-gateway"]
CMD ["serve"]
