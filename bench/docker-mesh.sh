#!/usr/bin/env bash
# Docker-engine tasks on the overlay, measured in one run on the quickstart
# cluster with `--engine docker` (3 nodes in network namespaces, one local
# dockerd, the demo stack: 3 busybox httpd web tasks published on 8080):
#
# 1. requests/s and latency through the routing mesh (node-1's namespace →
#    198.18.0.10:8080 → nftables → node-0's sandbox → a web task anywhere)
#    against straight to a web task's overlay address (from another web
#    task's namespace, VXLAN, no NAT), with wrk;
# 2. `service create --replicas 50 -p 8090:80` until all 50 tasks answer
#    through the mesh (each answers its own host name: 50 distinct names
#    seen on node-0's 8090), against the engine's floor: 50 sequential
#    `docker run -d` of the same image and command on the same dockerd.
#
#   sudo bench/docker-mesh.sh [DURATION_SECONDS] [CONNECTIONS] [REPLICAS]
#
# Needs dockerd (tests/docker-engine.sh starts one and builds the image).
# The demo stack names busybox:1.36; with no registry here it is tagged
# from the local test image for the run, and untagged afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=${2:-32}
REPLICAS=${3:-50}
BIN=$PWD/target/release/shoal
SOCK=unix:///run/shoal-quickstart/node-0.sock
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null
bash tests/docker-engine.sh >/dev/null

tagged=""
if ! docker image inspect busybox:1.36 >/dev/null 2>&1; then
  docker tag shoal-test/busybox:1 busybox:1.36
  tagged=1
fi
floor_ids=""
cleanup() {
  bash deploy/quickstart.sh down >/dev/null 2>&1 || true
  [[ -n $floor_ids ]] && docker rm -f $floor_ids >/dev/null 2>&1 || true
  [[ -n $tagged ]] && docker rmi busybox:1.36 >/dev/null 2>&1 || true
}
trap cleanup EXIT

SHOAL_ENGINE=docker bash deploy/quickstart.sh >/tmp/shoal-docker-bench.log 2>&1 || {
  tail -20 /tmp/shoal-docker-bench.log >&2
  exit 1
}

# The web tasks' processes (docker's pids) and one's address on `front`.
pids=()
for c in $(docker ps -q --filter label=com.docker.swarm.service.name=demo_web); do
  pids+=("$(docker inspect -f '{{.State.Pid}}' "$c")")
done
[[ ${#pids[@]} -ge 2 ]] || { echo "fewer than 2 web tasks found" >&2; exit 1; }
client=${pids[0]}
# Not ingress (10.0.0.0/24), not egress (172.31.0.0/16).
target=$(nsenter -t "${pids[1]}" -n ip -4 -o addr show | awk '{print $4}' | cut -d/ -f1 |
  grep -v -e '^127\.' -e '^10\.0\.0\.' -e '^172\.31\.' | head -1)

run() { # label, wrk command prefix..., url
  local label=$1; shift
  local out rps p50 p99
  out=$("$@" -t2 -c"$CONNS" -d"${DURATION}s" --latency 2>&1)
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  printf '| %-30s | %10s | %8s | %8s |\n' "$label" "$rps" "$p50" "$p99"
  echo "$rps" >"/tmp/shoal-docker-bench.$label.rps"
}

echo "## 1. docker tasks: mesh against direct ($CONNS connections, ${DURATION}s)"
echo
echo "| path | requests/s | p50 | p99 |"
echo "|---|---|---|---|"
run direct nsenter -t "$client" -n wrk "http://$target:80/"
run mesh ip netns exec shoalqs-node-1 wrk "http://198.18.0.10:8080/"
direct=$(cat /tmp/shoal-docker-bench.direct.rps)
mesh=$(cat /tmp/shoal-docker-bench.mesh.rps)
awk -v d="$direct" -v m="$mesh" 'BEGIN { printf "\nthe mesh keeps %.0f%% of the direct throughput (goal: 90%%)\n\n", 100 * m / d }'

SERVE='d=/tmp/www; mkdir -p $d; hostname > $d/index.html; exec httpd -f -p 80 -h $d'
now() { date +%s.%N; }

echo "## 2. $REPLICAS replicas until all answer, against $REPLICAS x docker run -d"
echo
start=$(now)
"$BIN" -H "$SOCK" service create -d --name fifty --replicas "$REPLICAS" -p 8090:80 \
  busybox:1.36 sh -c "$SERVE" >/dev/null
# 16 requests at a time, ten rounds a second: random balancing needs about
# 4.5 x REPLICAS requests to have met every task once.
ask16() {
  seq 16 | ip netns exec shoalqs-node-1 xargs -P16 -I{} curl -s --max-time 1 http://198.18.0.10:8090/ || true
}
declare -A seen=()
while ((${#seen[@]} < REPLICAS)); do
  while read -r name; do
    [[ -n $name ]] && seen[$name]=1
  done < <(ask16)
  sleep 0.1
  if awk -v s="$start" -v n="$(now)" 'BEGIN { exit !(n - s > 300) }'; then
    echo "only ${#seen[@]} of $REPLICAS answered within 300 s" >&2
    exit 1
  fi
done
shoal_s=$(awk -v s="$start" -v n="$(now)" 'BEGIN { printf "%.2f", n - s }')
"$BIN" -H "$SOCK" service rm fifty >/dev/null
# Wait until its containers are gone, so the floor runs on a quiet engine.
while docker ps -aq --filter label=com.docker.swarm.service.name=fifty | grep -q .; do sleep 0.5; done

start=$(now)
for _ in $(seq "$REPLICAS"); do
  floor_ids="$floor_ids $(docker run -d busybox:1.36 sh -c "$SERVE")"
done
floor_s=$(awk -v s="$start" -v n="$(now)" 'BEGIN { printf "%.2f", n - s }')

echo "| | seconds |"
echo "|---|---|"
echo "| $REPLICAS x \`docker run -d\` (the floor) | $floor_s |"
echo "| Shoal \`service create --replicas $REPLICAS\`, all answering through the mesh | $shoal_s |"
awk -v f="$floor_s" -v s="$shoal_s" 'BEGIN { printf "\nShoal takes %.2fx the floor (goal: within 1.10x)\n", s / f }'
