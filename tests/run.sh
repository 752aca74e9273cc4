#!/usr/bin/env bash
# The README's test command: installs what the tests need (root: network
# namespaces, nftables; a running dockerd and the local test image for the
# docker engine's tests), then runs every test of the workspace. Extra
# arguments go to nextest (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
bash tests/docker-engine.sh
exec cargo nextest run --workspace --locked --profile "${NEXTEST_PROFILE:-default}" "$@"
