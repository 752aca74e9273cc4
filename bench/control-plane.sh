#!/usr/bin/env bash
# The control-plane benchmark of issue 28: 1,000 simulated workers and
# 100,000 tasks on 1 and on 3 managers, Raft on. `cp-bench` (this folder,
# src/bin/control_plane/) does one run; this script builds what it needs
# and runs it for each manager count.
#
#   sudo bench/control-plane.sh [MANAGERS="1 3"] [WORKERS=1000] [TASKS=100000] [RUNS=1]
#
# Builds `cargo build --release -p shoal` in the repository root and
# `cp-bench` in bench/ (its own workspace; etcd-client there needs a
# system protoc: apt-get install -y protobuf-compiler libprotobuf-dev).
# NO_BUILD=1 skips both; TIMEOUT=S stops waiting for all running after
# S seconds (cp-bench's default 600) and reports the figures so far.
# Each run's output goes to stdout and to /tmp/cp-bench-<managers>m-<run>.log,
# the managers' logs to /tmp/cp-bench-logs/; the summary table rows are
# printed at the end. cp-bench removes everything it started (daemons,
# namespaces, state) at exit, also on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
MANAGERS=${1:-"1 3"}
WORKERS=${2:-1000}
TASKS=${3:-100000}
RUNS=${4:-1}
[[ $(id -u) == 0 ]] || { echo "run as root: sudo $0" >&2; exit 1; }
if [[ ${NO_BUILD:-0} != 1 ]]; then
  command -v protoc >/dev/null || { echo "protoc missing: apt-get install -y protobuf-compiler libprotobuf-dev" >&2; exit 1; }
  cargo build --release -p shoal
  (cd bench && cargo build --release --bin cp-bench)
fi
export SHOAL_BIN=${SHOAL_BIN:-$PWD/target/release/shoal}
rows=()
for m in $MANAGERS; do
  for r in $(seq "$RUNS"); do
    log=/tmp/cp-bench-${m}m-$r.log
    echo "=== $m manager(s), run $r ($log)"
    bench/target/release/cp-bench --managers "$m" --workers "$WORKERS" --tasks "$TASKS" \
      ${TIMEOUT:+--timeout "$TIMEOUT"} 2>&1 | tee "$log" || echo "=== cp-bench failed: see $log"
    rows+=("$(grep -A2 '^| managers' "$log" | tail -1 || true)")
  done
done
echo
echo "| managers | workers | tasks | placements/s | all placed | held by workers | all running | leader CPU s | leader peak RSS | leader changes | assignment bytes/task |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
