# syntax=docker/dockerfile:1.7
# The clawhost image (ghcr.io/clawhost/clawhost): one static-ish Rust binary,
# `clawhost operator` / `clawhost console` / `clawhost serve`, ...
#
#   docker buildx build -f operator.Dockerfile \
#     --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) \
#     --build-arg CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ) \
#     -t ghcr.io/clawhost/clawhost:0.1.0 .
#
# Build context: the repository root, filtered by operator.Dockerfile.dockerignore.
# Runtime: distroless cc (glibc + libgcc, no shell, no package manager),
# user 65532 (nonroot), matching the chart's securityContext. No HEALTHCHECK:
# Kubernetes probes /healthz and /readyz (the image has no shell or curl).

FROM rust:1.95-bookworm AS build
WORKDIR /src
# sqlx compile-time checked queries, if any, use the committed .sqlx data.
# No debug info in the shipped binary: line tables for every dependency made it 221 MB
# (symbols stay, so a panic's backtrace still names its functions).
ENV SQLX_OFFLINE=true \
    CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0 \
    CARGO_PROFILE_RELEASE_DEBUG=false
COPY . .
# Registry and target caches survive between builds (BuildKit cache mounts);
# the binary is copied out of the cached target dir.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --locked --release -p clawhost --bin clawhost \
 && install -D -m 0755 target/release/clawhost /out/clawhost \
 && /out/clawhost --version

FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.title="clawhost" \
      org.opencontainers.image.description="Kubernetes operator and admin console hosting one private openclaw gateway per client" \
      org.opencontainers.image.source="https://github.com/clawhost/clawhost" \
      org.opencontainers.image.url="https://github.com/clawhost/clawhost" \
      org.opencontainers.image.documentation="https://github.com/clawhost/clawhost/blob/main/docs/install.md" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"
COPY --from=build /out/clawhost /usr/local/bin/clawhost
USER 65532:65532
# 8080: console (http), 9090: operator metrics and health (http-metrics)
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/clawhost"]
CMD ["--help"]
