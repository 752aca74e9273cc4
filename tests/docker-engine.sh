#!/usr/bin/env bash
# Gives the tests a Docker engine: installs docker.io when missing,
# starts dockerd in the background when no daemon answers (log:
# /var/log/shoal-dockerd.log), waits until it does, and builds the local
# test image shoal-test/busybox:1 (no test ever needs a registry). Runs as
# root; safe to run again. Kept out of deploy/install-deps.sh on purpose:
# the quickstart runs that, and a running dockerd would make its nodes'
# `--engine auto` pick docker.
set -euo pipefail
cd "$(dirname "$0")/.."
log=/var/log/shoal-dockerd.log

if ! command -v dockerd >/dev/null; then
  echo "installing: docker.io"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  echo "starting dockerd (log: $log)"
  # Default flags work as root here; dockerd sets the host's iptables
  # FORWARD policy to DROP, which the multi-node tests do not see: their
  # hosts sit on a bridge inside their own network namespace.
  setsid dockerd >"$log" 2>&1 </dev/null &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || {
    echo "dockerd did not answer within 30s; its log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  }
fi

bash tests/images/busybox/build.sh
