# syntax=docker/dockerfile:1
# The edgefault image: the one binary on a distroless base (glibc, no shell), running as uid 65532.
#   docker build -t REGISTRY/edgefault:0.1.0 .
# Needs BuildKit (the default builder of current Docker) for the cache mounts.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# protoc comes from the protoc-bin-vendored crate; nothing else to install.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin edgefault \
 && install -D -m 0755 target/release/edgefault /out/edgefault

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="edgefault" \
      org.opencontainers.image.description="Reverse proxy that injects edge-provider failures into live HTTP traffic, driven over gRPC" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/edgefault /usr/local/bin/edgefault
USER 65532:65532
# 8080 proxy listener, 9095 admin (/healthz, /readyz), 7070 gRPC control (bound to 127.0.0.1 unless configured).
EXPOSE 8080 9095 7070
ENTRYPOINT ["/usr/local/bin/edgefault"]
CMD ["serve", "--config", "/etc/edgefault/edgefault.yaml"]
