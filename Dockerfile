# bkv container image: bkv-node, the bkv CLI and bkv-token on Debian with SoftHSM2,
# running as an unprivileged user. Entry point: cluster/entrypoint (the same script that
# cluster/up starts its nodes with): it makes the node's SoftHSM token on first start.
#
#   docker build -t localhost/bkv:dev .      # compiles release binaries in a Rust stage
#   docker compose up -d                     # three nodes, PKI and init (docker-compose.yml)
#
# BKV_BINARIES picks where the binaries come from: `build` (the default) compiles them in
# the Rust stage; `prebuilt` takes bkv-node, bkv and bkv-token from target/image/ in the
# build context, built on the host (cluster/compose-image does that, for machines that
# cannot pull a Rust image; the host's glibc must not be newer than bookworm's). Only the
# stage picked is built. Image names are fully qualified: podman refuses short names when
# no search registry is configured.
ARG BKV_BINARIES=build

FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p bkv-node -p bkv-cli -p bkv-hsm --bins \
 && mkdir /out \
 && cp target/release/bkv-node target/release/bkv target/release/bkv-token /out/

FROM docker.io/library/debian:bookworm-slim AS prebuilt
COPY target/image/bkv-node target/image/bkv target/image/bkv-token /out/

FROM ${BKV_BINARIES} AS binaries

FROM docker.io/library/debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends softhsm2 ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/bkv --shell /usr/sbin/nologin bkv \
 && mkdir -p /var/lib/bkv /pki /etc/bkv \
 && chown bkv:bkv /var/lib/bkv /pki
COPY --from=binaries /out/ /usr/local/bin/
COPY cluster/entrypoint cluster/mk-token /usr/local/lib/bkv/
COPY cluster/docker/ /etc/bkv/
USER bkv
WORKDIR /var/lib/bkv
ENV BKV_TOKEN_DIR=/var/lib/bkv/token
EXPOSE 7101 7201 7301 7401
ENTRYPOINT ["/usr/local/lib/bkv/entrypoint"]
