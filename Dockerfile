# syntax=docker/dockerfile:1
# The vouch image for users with Docker: the `vouch` binary on the equivalent of distroless/cc (glibc,
# libgcc, CA certificates, passwd/group with the nonroot user 65532; no shell, no package manager). The
# runtime tree is made by scripts/image-rootfs.sh, the same script the daemonless build (scripts/image.sh,
# what releases are built with) uses, so both give the same files. Build, SBOM, signing and publishing:
# docs/operations.md, "The vouch image".
#
#   docker build --build-arg SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) -t vouch:dev .

ARG RUST_IMAGE=rust:1.95-bookworm

FROM ${RUST_IMAGE} AS build
# aws-lc-rs (the only TLS crypto provider) builds aws-lc from C sources: cmake and clang for its build script.
# ca-certificates: the certificates the image ships (from the package, not this stage's local bundle).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends cmake clang ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ARG SOURCE_DATE_EPOCH=0
# --locked: exactly the dependency versions in Cargo.lock (the ones the SBOM lists).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p vouch-webhooks --bin vouch \
 && install -m 0755 target/release/vouch /vouch \
 && bash scripts/image-rootfs.sh /vouch /rootfs \
 && find /rootfs -exec touch -h -d "@${SOURCE_DATE_EPOCH}" {} +

FROM scratch
COPY --from=build /rootfs /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
WORKDIR /
EXPOSE 8443 8080
ENTRYPOINT ["/vouch"]
CMD ["serve", "--help"]
