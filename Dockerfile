# Super-NetFlow: one image for `supernetflow run` (collector + join + sinks + API) and
# `supernetflow probe` (the tap). Multi-stage: the build stage compiles the eBPF object with
# clang-19 (enrich-probe-ebpf/build.rs) and the binary; the runtime stage holds the binary only.
#
#   docker build -t supernetflow .

FROM rust:1-bookworm AS build
# clang-19: the tap's kernel program (-target bpf -mcpu=v3); make, perl, zlib: the bundled
# librdkafka's configure; libpcap is not needed (captures are read by pcap-parser).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      clang-19 llvm-19 make perl zlib1g-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
 && install -m 0755 target/release/supernetflow /usr/local/bin/supernetflow

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/supernetflow --create-home supernetflow
COPY --from=build /usr/local/bin/supernetflow /usr/local/bin/supernetflow
COPY config/run.example.toml /etc/supernetflow/run.toml
WORKDIR /var/lib/supernetflow
# NetFlow v5/v9 and IPFIX (UDP 2055, 4739), IPFIX over TCP (4739, also the taps' export), HTTP API.
EXPOSE 2055/udp 4739/udp 4739/tcp 8080/tcp
ENTRYPOINT ["supernetflow"]
CMD ["run", "--config", "/etc/supernetflow/run.toml"]
