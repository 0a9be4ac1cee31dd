# Multi-stage build of the weft agent.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin weft

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/weft --create-home weft
COPY --from=build /src/target/release/weft /usr/local/bin/weft
USER weft
WORKDIR /var/lib/weft
ENV WEFT_DATA_DIR=/var/lib/weft/data
EXPOSE 9092 8080
# glommio uses io_uring: Docker's default seccomp profile blocks io_uring_setup on recent
# releases, so run with a profile that allows it (or --security-opt seccomp=unconfined), and
# give the container enough locked memory (--ulimit memlock=-1).
ENTRYPOINT ["/usr/local/bin/weft"]
CMD ["agent"]
