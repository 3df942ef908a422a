# syntax=docker/dockerfile:1
# Multi-stage build: dependencies are compiled in their own layer (rebuilt only when Cargo.toml/Cargo.lock
# change), the runtime image is slim Debian with the one binary, run as a non-root user.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# 1. Dependencies only, against stub sources, so this layer is cached across code changes.
COPY Cargo.toml Cargo.lock ./
# Cargo reads every target of the manifest, so each [[bench]] gets a stub, named from Cargo.toml itself.
RUN mkdir -p src benches tests/it \
    && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && for bench in $(sed -n '/^\[\[bench\]\]/,/^name/s/^name = "\(.*\)"/\1/p' Cargo.toml); do echo 'fn main() {}' > benches/$bench.rs; done \
    && touch tests/it/main.rs \
    && cargo build --release --locked --bin wosool \
    && rm -rf src benches tests
# 2. The application itself (migrations, default config, page templates and static assets are compiled in).
COPY src ./src
COPY migrations ./migrations
COPY config ./config
COPY templates ./templates
COPY assets ./assets
COPY benches ./benches
COPY tests ./tests
ARG WOSOOL_GIT_SHA=unknown
ENV WOSOOL_GIT_SHA=${WOSOOL_GIT_SHA}
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin wosool

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates postgresql-client-15 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin wosool \
    && mkdir -p /var/lib/wosool/backups && chown wosool /var/lib/wosool/backups
COPY --from=build /src/target/release/wosool /usr/local/bin/wosool
COPY config /etc/wosool
# pg_dump (postgresql-client-15) writes a tenant's database here before the tenant is deleted; mount a volume.
ENV WOSOOL_TENANCY__BACKUP_DIR=/var/lib/wosool/backups
USER wosool
EXPOSE 8080
# `wosool health` probes http://127.0.0.1:<server.listen port>/health/ready; no curl needed in the image.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["/usr/local/bin/wosool", "health"]
ENTRYPOINT ["/usr/local/bin/wosool"]
CMD ["serve", "--role", "all"]
