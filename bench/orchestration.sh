#!/usr/bin/env bash
# Orchestration speed (issue 28), on one machine, in one run: how long
# `service create --replicas N` takes until N tasks run, a rolling update
# of 50 replicas (parallelism 10, stop grace period 0) until it completes,
# and `service rm` until every container is gone, for:
# - the engine's floor: N sequential `docker run -d` (and `docker rm -f`)
#   of the same image and command on the same dockerd;
# - Docker Swarm on that dockerd (`docker swarm init`, one node);
# - Shoal on the docker engine: one `shoal daemon --engine docker` node in
#   a network namespace of its own (198.18.0.10/15, no route out);
# - Shoal on the process engine: the same with `--engine process`.
# The update changes an environment variable (`--env-add BENCH=2`), so
# every task is replaced with nothing to pull. Docker's defaults apply
# otherwise (monitor 5 s, delay 0, stop-first). Times are wall-clock, from
# the command's start to the state seen by polling every 0.1 s.
#
#   sudo bench/orchestration.sh [SIZES="10 50 100"] [UPDATE_REPLICAS=50]
#
# PARTS="floor swarm docker process" (the default) picks what to measure.
#
# SHOAL_PROFILE=dev uses target/debug/shoal (else target/release/shoal).
# Needs dockerd not in a swarm (tests/docker-engine.sh starts one and
# builds the test image); the script inits a swarm and leaves it at exit,
# also on failure, and removes everything it made.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${1:-"10 50 100"}
UPDATE_N=${2:-50}
PARTS=${PARTS:-floor swarm docker process}
part() { [[ " $PARTS " == *" $1 "* ]]; }
[[ $(id -u) == 0 ]] || { echo "run as root: sudo $0" >&2; exit 1; }
if [[ ${SHOAL_PROFILE:-release} == release ]]; then BIN=$PWD/target/release/shoal; else BIN=$PWD/target/debug/shoal; fi
BIN=${SHOAL_BIN:-$BIN}
IMAGE=shoal-test/busybox:1
RUN=/run/shoal-orchbench
STATE=/var/lib/shoal-orchbench
NS=shoalob
ADDR=198.18.0.10
bash tests/docker-engine.sh >/dev/null

now() { echo "$EPOCHREALTIME"; }
# Both orchestrators watch the run's end for one monitor period (Docker's
# default 5 s) before `completed`: the replacements themselves took this.
minus_monitor() { awk -v a="$1" 'BEGIN { printf "%.2f", a - 5 }'; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }
shoal() { "$BIN" -H "unix://$RUN/shoal.sock" "$@"; }
containers() { docker ps -aq --filter "label=$1" | wc -l; }

cleanup() {
  set +e
  stop_shoal
  if [[ -f $RUN/swarm-made ]]; then
    docker service ls -q | xargs -r docker service rm >/dev/null
    docker swarm leave --force >/dev/null
    grep -qx docker_gwbridge "$RUN/networks-before" || docker network rm docker_gwbridge >/dev/null
  fi
  docker ps -aq --filter label=shoal.orchbench | xargs -r docker rm -f >/dev/null
  rm -rf "$RUN" "$STATE"
}
stop_shoal() {
  if [[ -f $RUN/shoal.pid ]]; then
    shoal service ls -q 2>/dev/null | xargs -r "$BIN" -H "unix://$RUN/shoal.sock" service rm >/dev/null 2>&1
    sleep 1
    local pid node id
    pid=$(cat "$RUN/shoal.pid")
    node=$(sed -n 's/.*"node_id": *"\([a-z0-9]*\)".*/\1/p' "$STATE/swarm.json" 2>/dev/null)
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$RUN/shoal.pid"
    id=${node:0:6}
    if [[ -n $id ]]; then
      for x in $(ip netns list | awk '{print $1}' | grep "^$id-"); do ip netns del "$x"; done
      rmdir /sys/fs/cgroup/*/shoal/"$node" 2>/dev/null || true
      docker ps -aq --filter label=com.shoal.managed | xargs -r docker rm -f >/dev/null
    fi
  fi
  if ip netns list | grep -qw "$NS"; then ip netns del "$NS"; fi
  rm -rf "$STATE"
}
trap cleanup EXIT
(cleanup) 2>/dev/null
mkdir -p "$RUN"
echo "machine: $(date -u '+%F %H:%M') UTC, $(nproc) cores, kernel $(uname -r)," \
  "dockerd $(docker version -f '{{.Server.Version}}'), shoal $(git rev-parse --short HEAD 2>/dev/null)" \
  "($BIN), load $(cut -d' ' -f1-3 /proc/loadavg)"

declare -A CREATE REMOVE UPDATE REPLACED

# --- the floor ---------------------------------------------------------------
part floor && for n in $SIZES; do
  t=$(now)
  for i in $(seq "$n"); do
    docker run -d --network none --label shoal.orchbench "$IMAGE" sleep 1d >/dev/null
  done
  CREATE[floor,$n]=$(since "$t")
  t=$(now)
  for c in $(docker ps -aq --filter label=shoal.orchbench); do docker rm -f "$c" >/dev/null; done
  REMOVE[floor,$n]=$(since "$t")
  echo "floor: $n x docker run -d ${CREATE[floor,$n]} s, docker rm -f ${REMOVE[floor,$n]} s"
done
part floor && UPDATE[floor]=$(awk -v a="${CREATE[floor,$UPDATE_N]:-0}" -v b="${REMOVE[floor,$UPDATE_N]:-0}" 'BEGIN { printf "%.2f", a + b }')

# --- Docker Swarm --------------------------------------------------------------
if part swarm; then
[[ $(docker info -f '{{.Swarm.LocalNodeState}}') == inactive ]] || {
  echo "dockerd is already in a swarm; this benchmark needs its own (docker swarm leave --force)" >&2
  exit 1
}
docker network ls --format '{{.Name}}' >"$RUN/networks-before"
touch "$RUN/swarm-made"
docker swarm init --advertise-addr 127.0.0.1 >/dev/null

swarm_running() { docker service ls --filter "name=$1" --format '{{.Replicas}}'; }
for n in $SIZES; do
  t=$(now)
  docker service create --detach --no-resolve-image --name "b$n" --replicas "$n" \
    --stop-grace-period 0s "$IMAGE" sleep 1d >/dev/null
  until [[ $(swarm_running "b$n") == "$n/$n" ]]; do sleep 0.1; done
  CREATE[swarm,$n]=$(since "$t")
  if [[ $n == "$UPDATE_N" ]]; then
    t=$(now)
    docker service update --detach --env-add BENCH=2 --update-parallelism 10 "b$n" >/dev/null
    until [[ $(docker service inspect -f '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}' "b$n") == completed ]]; do sleep 0.1; done
    UPDATE[swarm]=$(since "$t")
    REPLACED[swarm]=$(minus_monitor "${UPDATE[swarm]}")
    echo "swarm: rolling update of $n: replaced ${REPLACED[swarm]} s, completed ${UPDATE[swarm]} s"
  fi
  t=$(now)
  docker service rm "b$n" >/dev/null
  until [[ $(containers "com.docker.swarm.service.name=b$n") == 0 ]]; do sleep 0.1; done
  REMOVE[swarm,$n]=$(since "$t")
  echo "swarm: $n replicas ${CREATE[swarm,$n]} s, rm ${REMOVE[swarm,$n]} s"
done
docker swarm leave --force >/dev/null
rm -f "$RUN/swarm-made"
fi

# --- Shoal, one node per engine -----------------------------------------------
start_shoal() { # engine
  ip netns add "$NS"
  ip -n "$NS" link set lo up
  ip -n "$NS" link add eth0 type veth peer name eth1
  ip -n "$NS" addr add "$ADDR/15" dev eth0
  ip -n "$NS" link set eth1 up
  ip -n "$NS" link set eth0 up
  nsenter --net="/var/run/netns/$NS" "$BIN" -H "unix://$RUN/shoal.sock" daemon \
    --state-dir "$STATE" --engine "$1" >>"$RUN/shoal-$1.log" 2>&1 &
  echo $! >"$RUN/shoal.pid"
  for _ in $(seq 100); do shoal version >/dev/null 2>&1 && break; sleep 0.1; done
  shoal swarm init --advertise-addr "$ADDR" >/dev/null
  for _ in $(seq 300); do [[ $(shoal node ls --format '{{.Status}}' 2>/dev/null) == Ready ]] && break; sleep 0.1; done
}
shoal_running() { shoal service ls --filter "name=$1" --format '{{.Replicas}}'; }
shoal_gone() { # engine, service
  case $1 in
    docker) [[ $(containers "com.docker.swarm.service.name=$2") == 0 ]] ;;
    *) [[ -z $(ls "$STATE/process/tasks" 2>/dev/null) ]] ;;
  esac
}
for engine in docker process; do
  part "$engine" || continue
  start_shoal "$engine"
  for n in $SIZES; do
    t=$(now)
    shoal service create -d --name "b$n" --replicas "$n" --stop-grace-period 0s "$IMAGE" sleep 1d >/dev/null
    until [[ $(shoal_running "b$n") == "$n/$n" ]]; do sleep 0.1; done
    CREATE[$engine,$n]=$(since "$t")
    if [[ $n == "$UPDATE_N" ]]; then
      t=$(now)
      shoal service update -d --env-add BENCH=2 --update-parallelism 10 "b$n" >/dev/null
      until [[ $(shoal service inspect "b$n" | jq -r '.[0].UpdateStatus.State // empty') == completed ]]; do sleep 0.1; done
      UPDATE[$engine]=$(since "$t")
      REPLACED[$engine]=$(minus_monitor "${UPDATE[$engine]}")
      echo "shoal $engine: rolling update of $n: replaced ${REPLACED[$engine]} s, completed ${UPDATE[$engine]} s"
    fi
    t=$(now)
    shoal service rm "b$n" >/dev/null
    until shoal_gone "$engine" "b$n"; do sleep 0.1; done
    REMOVE[$engine,$n]=$(since "$t")
    echo "shoal $engine: $n replicas ${CREATE[$engine,$n]} s, rm ${REMOVE[$engine,$n]} s"
  done
  stop_shoal
done

# --- the tables ------------------------------------------------------------------
echo
echo "| N | N x \`docker run -d\` (the floor) | Docker Swarm | Shoal, docker engine | Shoal, process engine |"
echo "|---|---|---|---|---|"
for n in $SIZES; do
  echo "| $n | ${CREATE[floor,$n]:--} s | ${CREATE[swarm,$n]:--} s | ${CREATE[docker,$n]:--} s | ${CREATE[process,$n]:--} s |"
done
echo
echo "| N removed | N x \`docker rm -f\` | Docker Swarm | Shoal, docker engine | Shoal, process engine |"
echo "|---|---|---|---|---|"
for n in $SIZES; do
  echo "| $n | ${REMOVE[floor,$n]:--} s | ${REMOVE[swarm,$n]:--} s | ${REMOVE[docker,$n]:--} s | ${REMOVE[process,$n]:--} s |"
done
echo
echo "| rolling update, $UPDATE_N replicas, parallelism 10 | floor ($UPDATE_N x run + rm -f) | Docker Swarm | Shoal, docker engine | Shoal, process engine |"
echo "|---|---|---|---|---|"
echo "| replacing (completed minus the final 5 s monitor) | ${UPDATE[floor]:--} s | ${REPLACED[swarm]:--} s | ${REPLACED[docker]:--} s | ${REPLACED[process]:--} s |"
echo "| until completed (after the final monitor period) | | ${UPDATE[swarm]:--} s | ${UPDATE[docker]:--} s | ${UPDATE[process]:--} s |"
