# A small release image: the static-ish binary on Debian slim with CA certificates (the API client
# verifies onebound's TLS certificate against the OS trust store, through rustls-platform-verifier).
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/douyin-watch --create-home douyin-watch
COPY --from=build /src/target/release/douyin-watch /usr/local/bin/douyin-watch
USER douyin-watch
WORKDIR /var/lib/douyin-watch
ENV DOUYIN_WATCH__DATABASE__URL=sqlite:///var/lib/douyin-watch/douyin-watch.db \
    DOUYIN_WATCH__LOG__FORMAT=json
VOLUME ["/var/lib/douyin-watch"]
ENTRYPOINT ["douyin-watch"]
CMD ["run"]
