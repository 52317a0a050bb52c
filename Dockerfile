# syntax=docker/dockerfile:1
# The operator image: a Rust builder, then a minimal non-root runtime with only the binary.
#
#   docker build -t <registry>/winapp-operator:<tag> .      (or podman build; the default path)
#
# The default target compiles the binary in the `build` stage with hack/build-release.sh (the same
# script CI runs) and puts it on distroless. The `runtime` target takes a binary that was built
# already: the build context is a directory holding only that binary (hack/image.sh prepares it), e.g.
#
#   podman build --target runtime --build-arg RUNTIME_BASE=localhost/winapp-base:local -f Dockerfile DIR
#
# RUNTIME_BASE must provide glibc (the binary is linked against it), a user 65532 and, for
# kubeconfigs without a CA, /etc/ssl/certs; hack/image.sh assembles such a base when no registry
# can be reached.
ARG RUST_IMAGE=docker.io/library/rust:1.95-bookworm
ARG RUNTIME_BASE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY hack/build-release.sh ./hack/build-release.sh
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,sharing=locked \
    hack/build-release.sh && cp target/release/winapp-operator /winapp-operator

# What both targets share: non-root, the port of /metrics, /healthz and /readyz, the entrypoint.
FROM ${RUNTIME_BASE} AS base
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/winapp-operator"]
CMD ["run"]

# From a prebuilt binary (hack/image.sh, CI): BINARY is its path inside the build context.
FROM base AS runtime
ARG BINARY=winapp-operator
COPY ${BINARY} /usr/local/bin/winapp-operator

# The default target: the binary from the `build` stage.
FROM base
COPY --from=build /winapp-operator /usr/local/bin/winapp-operator
