#!/usr/bin/env bash
# Installs the system packages Shoal's daemon and tests use: iproute2
# (namespaces, veth, bridges, VXLAN), nftables (load balancing, test
# faults), iputils-ping and busybox-static (test tasks), util-linux
# (unshare), protobuf-compiler and libprotobuf-dev (`protoc` on PATH and
# its well-known types: the benchmark's etcd-client crate generates its
# code with them at build time; Shoal's own crates need neither, and
# PROTOC is never set). Only what is missing is installed. The benchmark's
# etcd (etcd-server) is not installed here: see docs/benchmarks.md.
set -euo pipefail
need=()
for pkg in iproute2 nftables iputils-ping util-linux busybox-static protobuf-compiler libprotobuf-dev; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if ((${#need[@]})); then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
