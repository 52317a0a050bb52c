# syntax=docker/dockerfile:1
# Multi-stage build of the operator image: a Rust builder, then a minimal non-root runtime with
# only the binary. Build: docker build -t <registry>/winapp-operator:<tag> .
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so that a source change does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked --bin winapp-operator && rm -rf src
COPY src ./src
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin winapp-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/winapp-operator /usr/local/bin/winapp-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/winapp-operator"]
CMD ["run"]
