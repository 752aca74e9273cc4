#!/usr/bin/env bash
# The README's test command: installs what the tests need (root: network
# namespaces, nftables), then runs every test of the workspace. Extra
# arguments go to nextest (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
exec cargo nextest run --workspace --locked --profile "${NEXTEST_PROFILE:-default}" "$@"
