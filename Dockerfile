# syntax=docker/dockerfile:1
# Multi-stage build of the operator image: a Rust builder, then a minimal non-root runtime with
# only the binary. Build: docker build -t <registry>/winapp-operator:<tag> .
# The build step is hack/build-release.sh, which CI runs as well.
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY hack/build-release.sh ./hack/build-release.sh
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,sharing=locked \
    hack/build-release.sh && cp target/release/winapp-operator /winapp-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /winapp-operator /usr/local/bin/winapp-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/winapp-operator"]
CMD ["run"]
