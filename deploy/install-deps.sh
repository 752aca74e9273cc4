#!/usr/bin/env bash
# Installs the system packages Shoal's daemon and tests use: iproute2
# (namespaces, veth, bridges, VXLAN), nftables (load balancing, test
# faults), iputils-ping and busybox-static (test tasks and demo images),
# util-linux (unshare), libseccomp-dev and pkg-config (the embedded
# engine's seccomp filters), docker-registry (a real registry for the
# quickstart and tests), umoci and skopeo (build and push the demo images
# without any engine), chromium-headless-shell (a real browser for the web
# view's test, driven over the DevTools protocol), prometheus (its
# `promtool check metrics` lints the metrics test's scrapes; the server
# itself is not started), and the Docker SDK for
# Python (PyPI `docker`, a real client of the Docker API tests; the `docker`
# CLI comes with the machine).
# Only what is missing is installed. Shoal needs no protoc;
# the benchmark's extra packages (etcd-server, protobuf-compiler) are in
# docs/benchmarks.md.
set -euo pipefail
need=()
for pkg in iproute2 nftables iputils-ping util-linux busybox-static curl \
  libseccomp-dev pkg-config docker-registry umoci skopeo \
  chromium-headless-shell prometheus; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if ((${#need[@]})); then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # No package starts a service here (prometheus would): policy-rc.d says no.
  policy=/usr/sbin/policy-rc.d
  [[ -e $policy ]] || { printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && trap 'rm -f "$policy"' EXIT; }
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
python3 -c 'import docker' 2>/dev/null || python3 -m pip install -q 'docker==7.1.0'
