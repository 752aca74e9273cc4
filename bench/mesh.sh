#!/usr/bin/env bash
# Routing-mesh benchmark: requests/s and latency through the mesh (a node's
# published port 8080 → nftables → a task anywhere in the cluster) against
# straight to a task's overlay address, on the quickstart cluster (3 nodes,
# demo stack: 3 busybox httpd tasks), in one run, with wrk.
#
#   sudo bench/mesh.sh [DURATION_SECONDS] [CONNECTIONS]
#
# Both loads start from inside network namespaces of this machine and end
# in the same httpd tasks; only the path differs:
# - mesh:   node-1's namespace → 198.18.0.10:8080 (node-0) → node-0's
#           sandbox (DNAT to a ready task, SNAT) → VXLAN → the task;
# - direct: a web task's namespace → another web task's address on the
#           `front` overlay network (VXLAN, no NAT).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=${2:-32}
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null; }

bash deploy/quickstart.sh >/tmp/shoal-mesh-bench.log 2>&1 || {
  tail -20 /tmp/shoal-mesh-bench.log >&2
  exit 1
}
trap 'bash deploy/quickstart.sh down >/dev/null 2>&1' EXIT

STATE=/var/lib/shoal-quickstart
pids=()
for f in "$STATE"/node-*/process/tasks/*/pid.json; do
  pid=$(grep -o '"pid": *[0-9]*' "$f" | grep -o '[0-9]*$')
  # The web tasks listen on 80.
  if nsenter -t "$pid" -n ss -ltn 2>/dev/null | grep -q ':80 '; then pids+=("$pid"); fi
done
[[ ${#pids[@]} -ge 2 ]] || { echo "fewer than 2 web tasks found" >&2; exit 1; }
client=${pids[0]}
# The target's address on a non-ingress overlay network (ingress is 10.0.0.0/24).
target=$(nsenter -t "${pids[1]}" -n ip -4 -o addr show | awk '{print $4}' | cut -d/ -f1 | grep -v '^127\.' | grep -v '^10\.0\.0\.' | head -1)

run() { # label, wrk command prefix..., url
  local label=$1; shift
  local out
  out=$("$@" -t2 -c"$CONNS" -d"${DURATION}s" --latency 2>&1)
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  printf '| %-38s | %10s | %8s | %8s |\n' "$label" "$rps" "$p50" "$p99"
  echo "$rps" >"/tmp/shoal-mesh-bench.$label.rps"
}

echo "| path ($CONNS connections, ${DURATION}s) | requests/s | p50 | p99 |"
echo "|---|---|---|---|"
run direct nsenter -t "$client" -n wrk "http://$target:80/"
run mesh ip netns exec shoalqs-node-1 wrk "http://198.18.0.10:8080/"
direct=$(cat /tmp/shoal-mesh-bench.direct.rps)
mesh=$(cat /tmp/shoal-mesh-bench.mesh.rps)
awk -v d="$direct" -v m="$mesh" 'BEGIN { printf "\nmesh keeps %.0f%% of the direct throughput (goal: 90%%)\n", 100 * m / d }'
