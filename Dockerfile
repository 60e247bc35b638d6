# The `accord` server image: a locked release build, then only the binary on
# a distroless glibc runtime, as a non-root user. No container engine runs in
# this repository's CI: `.ci/chart` checks that the chart agrees with this
# file (the binary's path, the ports), not that the image builds.
#
#   docker build -t accord:0.1.0 .
#   docker run -p 50051:50051 -p 9090:9090 accord:0.1.0

FROM rust:1-bookworm AS build
WORKDIR /src
# What the build reads: the manifest and lock, the protobuf contract build.rs
# compiles (protoc is vendored), the migrations embedded in the binary, and
# the sources.
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto proto
COPY migrations migrations
COPY src src
RUN cargo build --release --locked --bin accord \
    && install -D -m 0755 target/release/accord /out/accord \
    && install -d /out/data

# cc: glibc and libgcc, which the binary links; nothing else (no shell).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/accord /usr/local/bin/accord
# The embedded SQLite database's directory, writable by the non-root user; in
# Kubernetes a volume is mounted over it.
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
WORKDIR /data
# A container is reached through its own interfaces, not the loopback. (The
# default database, sqlite:accord.db, is /data/accord.db from this WORKDIR.)
ENV ACCORD_LISTEN=0.0.0.0:50051 \
    ACCORD_ADMIN_LISTEN=0.0.0.0:9090
# gRPC, then the admin HTTP server (/livez, /readyz, /metrics).
EXPOSE 50051 9090
ENTRYPOINT ["/usr/local/bin/accord", "serve"]
