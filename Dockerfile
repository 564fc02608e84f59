# bkv container image: bkv-node, the bkv CLI and bkv-token on Debian with SoftHSM2,
# running as an unprivileged user. Entry point: cluster/entrypoint (the same script that
# cluster/up starts its nodes with): it makes the node's SoftHSM token on first start.
#
#   docker build -t bkv .
#   docker compose up        # three nodes + a one-shot init service (docker-compose.yml)

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p bkv-node -p bkv-cli -p bkv-hsm --bins \
 && mkdir /out \
 && cp target/release/bkv-node target/release/bkv target/release/bkv-token /out/

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends softhsm2 ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/bkv --shell /usr/sbin/nologin bkv \
 && mkdir -p /var/lib/bkv /pki /etc/bkv \
 && chown bkv:bkv /var/lib/bkv /pki
COPY --from=build /out/ /usr/local/bin/
COPY cluster/entrypoint cluster/mk-token /usr/local/lib/bkv/
COPY cluster/docker/ /etc/bkv/
USER bkv
WORKDIR /var/lib/bkv
ENV BKV_TOKEN_DIR=/var/lib/bkv/token
EXPOSE 7101 7201 7301 7401
ENTRYPOINT ["/usr/local/lib/bkv/entrypoint"]
