#!/usr/bin/env bash
# `docker service ls` (the real docker CLI) at 100 services and 10,000
# tasks, against Shoal's Docker Engine API and against Docker Swarm, on one
# machine, in one run.
#
# Three clusters, all up at once, each a single manager node:
# - shoal-running: `shoal daemon --engine sim --docker-api unix://...` in
#   its own network namespace (198.18.0.10/15 on a veth whose peer is in
#   the same namespace: no route out), a 1-node swarm; SERVICES x REPLICAS
#   tasks RUNNING (the sim engine runs a task at once, without a process).
# - shoal-pending: the same daemon in a second namespace (198.18.0.11), its
#   services placed with `--constraint node.labels.bench==none`: no node
#   has that label, so every task stays PENDING in the manager's store.
# - swarm-pending: the local dockerd (tests/docker-engine.sh starts it and
#   leaves it running), `docker swarm init --advertise-addr 127.0.0.1`,
#   with the same unsatisfiable constraint. 10,000 real containers would
#   take hours on 2 cores; pending tasks cost Swarm no container, but each
#   is a task object in its store that `service ls` counts, as in Shoal.
# The services are created through each one's Docker API with the same
# command: `docker service create --detach --no-resolve-image --name sN
# --replicas REPLICAS [--constraint ...] busybox sleep 1d`. Once every
# task is in its state (counted through GET /tasks), RUNS rounds, the
# three clusters interleaved (the order rotates each round), time:
# - `docker service ls >/dev/null`, wall time, with DOCKER_HOST at each
#   (the CLI pings, then GET /services?status=true: counts computed by the
#   server);
# - `curl --unix-socket SOCK /vNN/services?status=true` (NN: each server's
#   own API version, as the CLI negotiates it), wall time, and curl's own
#   time_total (connect to last byte: the server's share);
# - `curl -I /_ping` (the CLI's first request, which it sends before any
#   command), curl's time_total.
# Median, p90 and min in ms.
#
#   sudo bench/docker-api.sh [SERVICES=100] [REPLICAS=100] [RUNS=20]
#
# SHOAL_PROFILE=dev uses target/debug/shoal, SHOAL_BIN any binary. Needs
# dockerd NOT already in a swarm; the script inits one and leaves it at
# exit (also on failure), with the docker_gwbridge network swarm init made.
set -euo pipefail
cd "$(dirname "$0")/.."
SERVICES=${1:-100}
REPLICAS=${2:-100}
RUNS=${3:-20}
[[ $(id -u) == 0 ]] || { echo "run as root: sudo $0" >&2; exit 1; }
if [[ ${SHOAL_PROFILE:-release} == release ]]; then BIN=$PWD/target/release/shoal; else BIN=$PWD/target/debug/shoal; fi
BIN=${SHOAL_BIN:-$BIN}
RUN=/run/shoal-apibench
STATE=/var/lib/shoal-apibench
NODES=(running pending)
declare -A ADDR=([running]=198.18.0.10 [pending]=198.18.0.11)
TASKS=$((SERVICES * REPLICAS))
CONSTRAINT=node.labels.bench==none
DSOCK=/var/run/docker.sock
bash tests/docker-engine.sh >/dev/null # dockerd, as the tests start it

ns() { echo "shoalab-$1"; }
shoal() { local n=$1; shift; "$BIN" -H "unix://$RUN/$n.sock" "$@"; }
sock() { # a target's Docker API socket
  case $1 in swarm) echo "$DSOCK" ;; *) echo "$RUN/$1-docker.sock" ;; esac
}
dk() { local t=$1; shift; DOCKER_HOST="unix://$(sock "$t")" docker "$@"; }
api() { curl -sf --unix-socket "$(sock "$1")" "http://docker$2"; }

cleanup() {
  set +e
  local n node id
  for n in "${NODES[@]}"; do
    node=$(sed -n 's/.*"node_id": *"\([a-z0-9]*\)".*/\1/p' "$STATE/$n/swarm.json" 2>/dev/null)
    id=${node:0:6} # the data plane names its namespaces after it
    if [[ -f $RUN/$n.pid ]]; then
      pid=$(cat "$RUN/$n.pid")
      kill -TERM "$pid" 2>/dev/null
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null
    fi
    if [[ -n $id ]]; then
      for x in $(ip netns list | awk '{print $1}' | grep "^$id-"); do ip netns del "$x"; done
    fi
    [[ -n $node ]] && rmdir /sys/fs/cgroup/*/shoal/"$node" 2>/dev/null # the node's (empty) cgroups
    ip netns list | grep -qw "$(ns "$n")" && ip netns del "$(ns "$n")"
  done
  if [[ -f $RUN/swarm-made ]]; then # only a swarm this script made
    docker swarm leave --force >/dev/null
    grep -qx docker_gwbridge "$RUN/networks-before" || docker network rm docker_gwbridge >/dev/null
    # dockerd leaves the ingress network's namespace files behind, unmounted.
    for f in ingress_sbox $(cat "$RUN/ingress-ns" 2>/dev/null); do
      f=/var/run/docker/netns/$f
      [[ -e $f ]] && ! grep -qx "$f" "$RUN/netns-before" && ! mountpoint -q "$f" && rm -f "$f"
    done
  fi
  rm -rf "$RUN" "$STATE"
}
trap cleanup EXIT
(cleanup) 2>/dev/null # leftovers of an interrupted run; a subshell keeps set -e
mkdir -p "$RUN" "$STATE"
echo "machine: $(date -u '+%F %H:%M') UTC, $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
  "kernel $(uname -r), dockerd $(docker version -f '{{.Server.Version}}'), docker CLI $(docker version -f '{{.Client.Version}}')," \
  "shoal $(git rev-parse --short HEAD 2>/dev/null) ($BIN, built $(date -r "$BIN" '+%F %H:%M')), load $(cut -d' ' -f1-3 /proc/loadavg)"

# --- Docker Swarm ------------------------------------------------------------
[[ $(docker info -f '{{.Swarm.LocalNodeState}}') == inactive ]] || {
  echo "dockerd is already in a swarm; this benchmark needs one of its own (docker swarm leave --force)" >&2
  exit 1
}
docker network ls --format '{{.Name}}' >"$RUN/networks-before"
ls -d /var/run/docker/netns/* >"$RUN/netns-before" 2>/dev/null || true
touch "$RUN/swarm-made"
docker swarm init --advertise-addr 127.0.0.1 >/dev/null
ingress=$(docker network inspect -f '{{.Id}}' ingress)
echo "1-${ingress:0:10}" >"$RUN/ingress-ns" # its namespace file, for the cleanup

# --- Shoal: two 1-node swarms, each in its own network namespace -------------
for n in "${NODES[@]}"; do
  ip netns add "$(ns "$n")"
  ip -n "$(ns "$n")" link set lo up
  ip -n "$(ns "$n")" link add eth0 type veth peer name eth1 # both ends inside
  ip -n "$(ns "$n")" addr add "${ADDR[$n]}/15" dev eth0
  ip -n "$(ns "$n")" link set eth1 up
  ip -n "$(ns "$n")" link set eth0 up
  nsenter --net="/var/run/netns/$(ns "$n")" unshare --uts sh -c 'hostname "$0" && exec "$@"' "bench-$n" \
    "$BIN" -H "unix://$RUN/$n.sock" daemon --state-dir "$STATE/$n" --engine sim \
    --docker-api "unix://$RUN/$n-docker.sock" >>"$RUN/$n.log" 2>&1 &
  echo $! >"$RUN/$n.pid"
done
for n in "${NODES[@]}"; do
  for _ in $(seq 100); do shoal "$n" version >/dev/null 2>&1 && break; sleep 0.1; done
  shoal "$n" version >/dev/null 2>&1 || { echo "$n did not start; its log:" >&2; tail -5 "$RUN/$n.log" >&2; exit 1; }
  shoal "$n" swarm init --advertise-addr "${ADDR[$n]}" >/dev/null
  for _ in $(seq 300); do [[ $(shoal "$n" node ls --format '{{.Status}}' 2>/dev/null) == Ready ]] && break; sleep 0.1; done
  [[ $(shoal "$n" node ls --format '{{.Status}}') == Ready ]] || { echo "$n is not Ready; see $RUN/$n.log" >&2; exit 1; }
done

# --- the services, through each one's Docker API -----------------------------
TARGETS=(shoal-running shoal-pending swarm-pending)
declare -A S=([shoal-running]=running [shoal-pending]=pending [swarm-pending]=swarm)
declare -A WANT=([shoal-running]=running [shoal-pending]=pending [swarm-pending]=pending)
declare -A VER
for t in "${TARGETS[@]}"; do VER[$t]=$(api "${S[$t]}" /version | jq -r .ApiVersion); done

create() { # target
  local c=""
  [[ ${WANT[$1]} == pending ]] && c="--constraint $CONSTRAINT"
  local t0=$EPOCHREALTIME
  for i in $(seq "$SERVICES"); do
    # shellcheck disable=SC2086
    dk "${S[$1]}" service create --detach --no-resolve-image --name "s$i" --replicas "$REPLICAS" $c \
      busybox sleep 1d >/dev/null
  done
  awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'
}
count() { # target: tasks in the wanted state, desired running
  api "${S[$1]}" "/v${VER[$1]}/tasks?filters=%7B%22desired-state%22%3A%7B%22running%22%3Atrue%7D%7D" |
    jq --arg s "${WANT[$1]}" '[.[] | select(.Status.State == $s)] | length'
}
echo "==> $SERVICES services x $REPLICAS replicas ($TASKS tasks) on each"
for t in "${TARGETS[@]}"; do
  t0=$EPOCHREALTIME
  c=$(create "$t")
  until k=$(count "$t") && [[ $k == "$TASKS" ]]; do
    awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { exit !(b - a > 1800) }' && { echo "$t: $k of $TASKS ${WANT[$t]} after 1800 s" >&2; exit 1; }
    sleep 2
  done
  echo "   $t: created in $c s, all $TASKS ${WANT[$t]} after $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s"
done
# What each shows: SERVICES rows, REPLICAS/REPLICAS or 0/REPLICAS each.
for t in "${TARGETS[@]}"; do
  want=$([[ ${WANT[$t]} == running ]] && echo "$REPLICAS/$REPLICAS" || echo "0/$REPLICAS")
  got=$(dk "${S[$t]}" service ls --format '{{.Replicas}}' | sort | uniq -c | xargs)
  [[ $got == "$SERVICES $want" ]] || { echo "$t: service ls shows '$got', not $SERVICES x $want" >&2; exit 1; }
done

# --- the measurement -----------------------------------------------------------
cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # utime + stime, ticks
declare -A PID=([shoal-running]=$(cat "$RUN/running.pid") [shoal-pending]=$(cat "$RUN/pending.pid") [swarm-pending]=$(cat /var/run/docker.pid))
declare -A CPU0
sleep 10 # what the creation left to do
for t in "${TARGETS[@]}"; do CPU0[$t]=$(cpu "${PID[$t]}"); done
sleep 10
idle=""
for t in "${TARGETS[@]}"; do
  idle="$idle $t $(awk -v a="${CPU0[$t]}" -v b="$(cpu "${PID[$t]}")" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f%%", 100 * (b - a) / hz / 10 }'),"
done
echo "==> idle CPU of each server over 10 s:${idle%,}"
for t in "${TARGETS[@]}"; do
  echo "   $t: GET /v${VER[$t]}/services?status=true is $(api "${S[$t]}" "/v${VER[$t]}/services?status=true" | wc -c) bytes"
done
echo "==> $RUNS rounds, interleaved; load $(cut -d' ' -f1-3 /proc/loadavg)"
for t in "${TARGETS[@]}"; do : >"$RUN/$t.cli"; : >"$RUN/$t.curl"; : >"$RUN/$t.server"; : >"$RUN/$t.ping"; CPU0[$t]=$(cpu "${PID[$t]}"); done
for r in $(seq "$RUNS"); do
  for k in 0 1 2; do
    t=${TARGETS[$(((r + k) % 3))]}
    s=$(sock "${S[$t]}")
    t0=$EPOCHREALTIME
    DOCKER_HOST="unix://$s" docker service ls >/dev/null
    t1=$EPOCHREALTIME
    server=$(curl -sf -o /dev/null -w '%{time_total}' --unix-socket "$s" "http://docker/v${VER[$t]}/services?status=true")
    t2=$EPOCHREALTIME
    ping=$(curl -sf -o /dev/null -I -w '%{time_total}' --unix-socket "$s" "http://docker/_ping")
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", (b - a) * 1000 }' >>"$RUN/$t.cli"
    awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.1f\n", (b - a) * 1000 }' >>"$RUN/$t.curl"
    awk -v s="$server" 'BEGIN { printf "%.1f\n", s * 1000 }' >>"$RUN/$t.server"
    awk -v s="$ping" 'BEGIN { printf "%.1f\n", s * 1000 }' >>"$RUN/$t.ping"
  done
done
load=$(cut -d' ' -f1-3 /proc/loadavg)
cpu_per=""
for t in "${TARGETS[@]}"; do
  cpu_per="$cpu_per $t $(awk -v a="${CPU0[$t]}" -v b="$(cpu "${PID[$t]}")" -v hz="$(getconf CLK_TCK)" -v n="$RUNS" 'BEGIN { printf "%.0f", 1000 * (b - a) / hz / n }') ms,"
done

# --- the table -------------------------------------------------------------------
stats() { # file: "median (p90, min)"
  sort -g "$1" | awk '{ v[NR] = $1 } END {
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    p = int(0.9 * NR); if (p < 0.9 * NR) p++
    printf "%.1f (%.1f, %.1f)", m, v[p], v[1] }'
}
echo
echo "load at the end: $load; server CPU per round (a service ls, a curl, a ping; idle included):${cpu_per%,}"
echo
echo "$SERVICES services, $TASKS tasks, $RUNS runs each; ms: median (p90, min)"
echo
echo "| | Shoal, $TASKS running (sim) | Shoal, $TASKS pending | Docker Swarm, $TASKS pending |"
echo "|---|---:|---:|---:|"
echo "| \`docker service ls\` | $(stats "$RUN/shoal-running.cli") | $(stats "$RUN/shoal-pending.cli") | $(stats "$RUN/swarm-pending.cli") |"
echo "| \`curl\` GET /services?status=true, wall | $(stats "$RUN/shoal-running.curl") | $(stats "$RUN/shoal-pending.curl") | $(stats "$RUN/swarm-pending.curl") |"
echo "| the same, curl's time_total | $(stats "$RUN/shoal-running.server") | $(stats "$RUN/shoal-pending.server") | $(stats "$RUN/swarm-pending.server") |"
echo "| \`curl -I\` HEAD /_ping (the CLI's first request), time_total | $(stats "$RUN/shoal-running.ping") | $(stats "$RUN/shoal-pending.ping") | $(stats "$RUN/swarm-pending.ping") |"
echo
echo "(API versions: Shoal ${VER[shoal-running]}, dockerd ${VER[swarm-pending]})"
