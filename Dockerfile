# syntax=docker/dockerfile:1
# The vouch image: the `vouch` binary only, on a distroless non-root runtime (glibc, CA certificates,
# nothing else: no shell, no package manager). Build, SBOM, signing and publishing: docs/operations.md.
#
#   docker build -t ghcr.io/vouch-dev/vouch:0.1.0 .

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS build
# aws-lc-rs (the only TLS crypto provider) builds aws-lc from C sources: cmake and clang for its build script.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends cmake clang \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# --locked: exactly the dependency versions in Cargo.lock (the ones the SBOM lists).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p vouch-webhooks --bin vouch \
 && install -m 0755 target/release/vouch /vouch

FROM ${RUNTIME_IMAGE}
COPY --from=build /vouch /vouch
# distroless "nonroot": uid/gid 65532; the chart also sets runAsNonRoot and a read-only root filesystem.
USER 65532:65532
EXPOSE 8443 8080
ENTRYPOINT ["/vouch"]
CMD ["serve", "--help"]
