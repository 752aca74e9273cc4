#!/usr/bin/env bash
# N replicas of one service on 3 managers (and WORKERS more nodes), sim
# engine, on one machine: how long until all N run, whether leadership
# stays put meanwhile, what the managers weigh, and what `service ls` and
# `service ps -q` cost at that size.
#
# Each node is a `shoal daemon --engine sim` (a task runs at once, without
# a process) in its own network namespace, on a bridge in a hub namespace
# (198.18.0.10+i/15, no default route: nothing leaves the machine). Node 0
# runs `swarm init`, nodes 1 and 2 `swarm join` with the manager token,
# the others with the worker token. Then, on node 0:
#   service create -d --name bench --replicas N busybox
# and `service ls` is polled (every POLL s) until it shows N/N. Recorded:
# - time from `service create` returning to N/N in `service ls`;
# - leader changes meanwhile: the "leading: starting the orchestrator"
#   lines the managers log (manager/src/leader.rs) after the create, and
#   which node each came from;
# - each manager's resident memory (ps rss) once all run, and its peak
#   (VmHWM);
# - `service ls` and `service ps -q bench` wall time on node 0 (a
#   follower or the leader, whichever node 0 is then), RUNS of each,
#   median (p90, min), and the lines `service ps -q` printed.
#
#   sudo bench/replicas.sh [N=10000] [WORKERS=0] [RUNS=5] [TIMEOUT=600]
#
# SHOAL_PROFILE=dev uses target/debug/shoal (else target/release/shoal,
# `cargo build --release -p shoal`), SHOAL_BIN any binary; SHOAL_LOG sets
# the daemons' log filter (default info); KEEP=1 keeps the daemons' logs
# in /tmp/shoal-replicas-logs. Everything it made (daemons, namespaces,
# state) is removed at exit, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
WORKERS=${2:-0}
RUNS=${3:-5}
TIMEOUT=${4:-600}
POLL=${POLL:-1}
[[ $(id -u) == 0 ]] || { echo "run as root: sudo $0" >&2; exit 1; }
if [[ ${SHOAL_PROFILE:-release} == release ]]; then BIN=$PWD/target/release/shoal; else BIN=$PWD/target/debug/shoal; fi
BIN=${SHOAL_BIN:-$BIN}
RUN=/run/shoal-replicas
STATE=/var/lib/shoal-replicas
HUB=shoalrp-hub
MANAGERS=3
NODES=$((MANAGERS + WORKERS))
export SHOAL_LOG=${SHOAL_LOG:-info}

ns() { echo "shoalrp-$1"; }
addr() { echo "198.18.0.$((10 + $1))"; }
shoal() { local i=$1; shift; "$BIN" -H "unix://$RUN/$i.sock" "$@"; }
now() { date +%s.%N; }
since() { awk -v s="$1" -v n="$(now)" 'BEGIN { printf "%.2f", n - s }'; }
stats() { # file: "median (p90, min)"
  sort -g "$1" | awk '{ v[NR] = $1 } END {
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    p = int(0.9 * NR); if (p < 0.9 * NR) p++
    printf "%.1f (%.1f, %.1f)", m, v[p], v[1] }'
}
leads() { grep -c 'leading: starting the orchestrator' "$RUN/$1.log" || true; }

cleanup() {
  set +e
  local i pid id net ids=""
  # The data plane names its namespaces after the node id: note them first.
  for i in $(seq 0 $((NODES - 1))); do
    id=$(sed -n 's/.*"node_id": *"\([a-z0-9]*\)".*/\1/p' "$STATE/$i/swarm.json" 2>/dev/null | cut -c1-6)
    ids="$ids $id"
  done
  for i in $(seq 0 $((NODES - 1))); do
    [[ -f $RUN/$i.pid ]] && kill -TERM "$(cat "$RUN/$i.pid")" 2>/dev/null
  done
  for i in $(seq 0 $((NODES - 1))); do
    [[ -f $RUN/$i.pid ]] || continue
    pid=$(cat "$RUN/$i.pid")
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
  done
  if [[ ${KEEP:-0} == 1 && -d $RUN ]]; then
    mkdir -p /tmp/shoal-replicas-logs && cp "$RUN"/*.log /tmp/shoal-replicas-logs/ 2>/dev/null
  fi
  for i in $(seq 0 $((NODES - 1))); do
    ip netns list | grep -qw "$(ns "$i")" && ip netns del "$(ns "$i")"
  done
  ip netns list | grep -qw "$HUB" && ip netns del "$HUB"
  for id in $ids; do
    [[ -n $id ]] || continue
    for net in $(ip netns list | awk '{print $1}' | grep "^$id-"); do ip netns del "$net"; done
  done
  rm -rf "$RUN" "$STATE"
}
trap cleanup EXIT
(cleanup) 2>/dev/null # leftovers of an interrupted run; a subshell keeps set -e
mkdir -p "$RUN" "$STATE"
echo "machine: $(date -u '+%F %H:%M') UTC, $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
  "kernel $(uname -r), shoal $(git rev-parse --short HEAD 2>/dev/null) ($BIN, built $(date -r "$BIN" '+%F %H:%M'))," \
  "load $(cut -d' ' -f1-3 /proc/loadavg)"

# --- the hub (a bridge) and one namespace per node ---------------------------
ip netns add "$HUB"
ip -n "$HUB" link add br0 type bridge
ip -n "$HUB" link set br0 up
ip -n "$HUB" link set lo up
for i in $(seq 0 $((NODES - 1))); do
  ip netns add "$(ns "$i")"
  ip -n "$(ns "$i")" link set lo up
  ip link add eth0 netns "$(ns "$i")" type veth peer name "v$i" netns "$HUB"
  ip -n "$HUB" link set "v$i" master br0 up
  ip -n "$(ns "$i")" addr add "$(addr "$i")/15" dev eth0
  ip -n "$(ns "$i")" link set eth0 up
  nsenter --net="/var/run/netns/$(ns "$i")" unshare --uts sh -c 'hostname "$0" && exec "$@"' "bench-$i" \
    "$BIN" -H "unix://$RUN/$i.sock" daemon --state-dir "$STATE/$i" --engine sim >>"$RUN/$i.log" 2>&1 &
  echo $! >"$RUN/$i.pid"
done
for i in $(seq 0 $((NODES - 1))); do
  for _ in $(seq 100); do shoal "$i" version >/dev/null 2>&1 && break; sleep 0.1; done
  shoal "$i" version >/dev/null 2>&1 || { echo "node $i did not start; its log:" >&2; tail -5 "$RUN/$i.log" >&2; exit 1; }
done

# --- the swarm: 3 managers, WORKERS workers ---------------------------------
shoal 0 swarm init --advertise-addr "$(addr 0)" >/dev/null
mtoken=$(shoal 0 swarm join-token -q manager)
wtoken=$(shoal 0 swarm join-token -q worker)
for i in $(seq 1 $((NODES - 1))); do
  token=$wtoken
  ((i < MANAGERS)) && token=$mtoken
  shoal "$i" swarm join --token "$token" --advertise-addr "$(addr "$i")" "$(addr 0):2377" >/dev/null
done
for _ in $(seq 300); do
  [[ $(shoal 0 node ls --format '{{.Status}}' 2>/dev/null | grep -c Ready) == "$NODES" ]] && break
  sleep 0.1
done
ready=$(shoal 0 node ls --format '{{.Status}}' | grep -c Ready || true)
[[ $ready == "$NODES" ]] || { echo "only $ready of $NODES nodes are Ready; see $RUN/*.log" >&2; exit 1; }
echo "$MANAGERS managers + $WORKERS workers Ready; $N replicas"

# --- the service --------------------------------------------------------------
declare -A BEFORE
for i in $(seq 0 $((MANAGERS - 1))); do BEFORE[$i]=$(leads "$i"); done
t0=$(now)
shoal 0 service create -d --name bench --replicas "$N" busybox >/dev/null
created=$(since "$t0")
t1=$(now)
converged=""
last=""
while awk -v s="$t1" -v n="$(now)" -v t="$TIMEOUT" 'BEGIN { exit !(n - s < t) }'; do
  last=$(timeout 60 "$BIN" -H "unix://$RUN/0.sock" service ls --format '{{.Replicas}}' 2>/dev/null || true)
  if [[ $last == "$N/$N" ]]; then converged=$(since "$t1"); break; fi
  sleep "$POLL"
done
changes=0
from=""
for i in $(seq 0 $((MANAGERS - 1))); do
  c=$(($(leads "$i") - BEFORE[$i]))
  changes=$((changes + c))
  from+=" node$i:$c"
done
echo "service create: ${created} s"
if [[ -n $converged ]]; then
  echo "all $N running: ${converged} s after the create returned"
else
  echo "NOT converged in ${TIMEOUT} s; last service ls: ${last:-<no answer>}"
fi
echo "leader elections during it: $changes ($from )"
for i in $(seq 0 $((MANAGERS - 1))); do
  pid=$(cat "$RUN/$i.pid")
  echo "manager $i: rss $(($(ps -o rss= -p "$pid") / 1024)) MB, peak $(($(awk '/VmHWM/ {print $2}' "/proc/$pid/status") / 1024)) MB," \
    "cpu $(ps -o time= -p "$pid" | xargs)"
done

# --- listing latency at that size --------------------------------------------
: >"$RUN/ls.ms"
: >"$RUN/ps.ms"
lines=0
failed=0
for _ in $(seq "$RUNS"); do
  s=$(now)
  if shoal 0 service ls >/dev/null; then
    awk -v s="$s" -v n="$(now)" 'BEGIN { printf "%.1f\n", (n - s) * 1000 }' >>"$RUN/ls.ms"
  else failed=$((failed + 1)); fi
  s=$(now)
  if shoal 0 service ps -q bench >"$RUN/ps.out"; then
    awk -v s="$s" -v n="$(now)" 'BEGIN { printf "%.1f\n", (n - s) * 1000 }' >>"$RUN/ps.ms"
    lines=$(wc -l <"$RUN/ps.out")
  else failed=$((failed + 1)); fi
done
leader=$(shoal 0 node ls --format '{{.Hostname}} {{.ManagerStatus}}' 2>/dev/null | awk '$2 == "Leader" {print $1}' || true)
echo "service ls, ms: $(stats "$RUN/ls.ms"); service ps -q bench, ms: $(stats "$RUN/ps.ms") ($lines lines)" \
  "[node 0 = bench-0, leader: ${leader:-?}; $RUNS runs each, median (p90, min); $failed failed]"
changes=0
for i in $(seq 0 $((MANAGERS - 1))); do changes=$((changes + $(leads "$i") - BEFORE[$i])); done
echo "leader elections from the create to the end: $changes"
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
[[ -n $converged ]]
