#!/usr/bin/env bash
# The chaos suite at length (issue 25): tests/tests/chaos.rs with 3 and
# then 5 managers (plus 2 workers), SECS seconds each (default 600), under
# a write load from 4 clients, with random kill -9s, graceful restarts,
# cuts, one-way partitions and isolation. Each run prints its figures
# (faults by kind, writes acknowledged and lost, reads and reads back in
# time, time for the managers to agree and the services to converge after
# the last fault) and fails if anything acknowledged was lost, a read went
# back in time, or the managers disagree. The figures go to
# docs/benchmarks.md; the logs stay in target/chaos-<n>.log.
#
#   sudo bench/chaos.sh [SECS=600]
#
# SHOAL_TEST_SEED replays a run's choices. CI runs the same tests for 30 s.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-600}"
cargo build -q -p shoal
# Plain `cargo test`: nextest's slow-test timeout would end a long run.
for n in 3 5; do
  SHOAL_CHAOS_SECS="$secs" SHOAL_TEST_PATIENCE="${SHOAL_TEST_PATIENCE:-3}" \
    cargo test -q -p shoal-tests --test chaos "chaos_${n}_managers" -- --nocapture --exact \
    2>&1 | tee "target/chaos-$n.log"
done
