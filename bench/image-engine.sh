#!/usr/bin/env bash
# The embedded engine against the Docker engine, on one machine, in one run:
#
# 1. task start, image cached: `service create --replicas N` of
#    shoal-demo/web:1 (busybox httpd) until `service ls` shows N/N running,
#    on ONE `shoal daemon --engine embedded` (a 1-node swarm), against
#    N sequential `docker run -d` of the same image on the local dockerd
#    (the floor) and N run 8 at a time (xargs -P 8). REPS rounds, the three
#    interleaved; the median.
# 2. cold pull of a multi-layer image (the demo web image + 3 layers of
#    30/40/50 MB random data, so ~120 MB that no compression shrinks):
#    `docker pull` after `docker rmi`, against Shoal with an empty image
#    store: `shoal image pull` after `shoal image rm` when the CLI has them,
#    else (service create -> 1/1 running, the store just emptied) minus
#    (the same, the image cached); the daemon's own "pulling" -> "pulled"
#    log lines are printed beside it. PULL_REPS rounds; the median.
#
#   sudo bench/image-engine.sh [N=100] [REPS=3] [PULL_REPS=5]
#
# Offline: the images are built by deploy/images.sh (umoci, from the host's
# busybox-static) and served by Debian's docker-registry from one storage
# dir twice: at 198.18.0.2:5000 in a hub namespace for the node (as in the
# quickstart) and at 127.0.0.1:5055 for dockerd (loopback registries are
# insecure to dockerd without any daemon.json). Same blobs, same digests.
# SHOAL_PROFILE=dev uses target/debug/shoal, SHOAL_BIN any binary; SHOAL_LOG
# sets the node's log filter.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100}
REPS=${2:-3}
PULL_REPS=${3:-5}
[[ $(id -u) == 0 ]] || { echo "run as root: sudo $0" >&2; exit 1; }
if [[ ${SHOAL_PROFILE:-release} == release ]]; then BIN=$PWD/target/release/shoal; else BIN=$PWD/target/debug/shoal; fi
BIN=${SHOAL_BIN:-$BIN}
RUN=/run/shoal-imgbench
STATE=/var/lib/shoal-imgbench
HUB=shoalib-hub
NODE=shoalib-node
REG=198.18.0.2:5000  # the node's registry (in the hub)
LREG=127.0.0.1:5055  # dockerd's (host loopback), same storage
SOCK=unix://$RUN/node.sock
WEB=shoal-demo/web:1
BIG=shoal-bench/big:1
LABEL=shoal-imgbench
export SHOAL_LOG=${SHOAL_LOG:-info,shoal_worker::image=debug}
bash tests/docker-engine.sh >/dev/null # dockerd, as the tests start it

shoal() { "$BIN" -H "$SOCK" "$@"; }
now() { date +%s.%N; }
since() { awk -v s="$1" -v n="$(now)" 'BEGIN { printf "%.2f", n - s }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

cleanup() {
  set +e
  local node id
  node=$(sed -n 's/.*"node_id": *"\([a-z0-9]*\)".*/\1/p' "$STATE/node/swarm.json" 2>/dev/null)
  id=${node:0:6} # the data plane names its namespaces after it
  [[ -S $RUN/node.sock ]] && timeout 60 "$BIN" -H "$SOCK" swarm leave --force >/dev/null 2>&1
  [[ -f $RUN/node.pid ]] && kill -TERM "$(cat "$RUN/node.pid")" 2>/dev/null && sleep 1
  if [[ -n $id ]]; then
    for ns in $(ip netns list | awk '{print $1}' | grep "^$id-"); do ip netns del "$ns"; done
  fi
  for f in "$STATE"/node/process/tasks/*/pid.json; do # tasks the node could not stop
    [[ -f $f ]] && kill -KILL $(grep -o '"\(shim_\)\?pid": *[0-9]*' "$f" | grep -o '[0-9]*$') 2>/dev/null
  done
  grep " $STATE/" /proc/mounts | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m"; done
  for p in "$RUN"/registry*.pid; do [[ -f $p ]] && kill -TERM "$(cat "$p")"; done
  for ns in "$NODE" "$HUB"; do ip netns list | grep -qw "$ns" && ip netns del "$ns"; done
  docker ps -aq --filter "label=$LABEL" | xargs -r docker rm -f >/dev/null
  docker rmi "$LREG/$WEB" "$LREG/$BIG" >/dev/null 2>&1
  [[ -n $node ]] && rmdir /sys/fs/cgroup/*/shoal/"$node" 2>/dev/null # the node's (empty) cgroups
  rm -rf "$RUN" "$STATE"
}
trap cleanup EXIT
(cleanup) 2>/dev/null # leftovers of an interrupted run; a subshell keeps set -e
mkdir -p "$RUN" "$STATE"
echo "machine: $(date -u '+%F %H:%M') UTC, $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
  "kernel $(uname -r), dockerd $(docker version -f '{{.Server.Version}}'), shoal $(git rev-parse --short HEAD 2>/dev/null)," \
  "load $(cut -d' ' -f1-3 /proc/loadavg)"

# --- the registry (twice, one storage), the images -------------------------
registry() { # name, addr, [netns]
  printf 'version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n' \
    "$STATE/registry" "$2" >"$RUN/$1.yml"
  ${3:+ip netns exec "$3"} docker-registry serve "$RUN/$1.yml" >>"$RUN/$1.log" 2>&1 &
  echo $! >"$RUN/$1.pid"
  for _ in $(seq 100); do ${3:+ip netns exec "$3"} curl -sf -o /dev/null "http://$2/v2/" && return; sleep 0.1; done
  echo "registry $1 did not start" >&2; exit 1
}
registry registry-lo "$LREG"
echo "==> building the demo images and a multi-layer one (3 x 30-50 MB of random data)"
bash deploy/images.sh build "$RUN/images" >/dev/null
layout=$RUN/images/oci
umoci config --image "$layout:web-1" --tag big-1 --config.label shoal.bench=big
for i in 1 2 3; do
  mkdir -p "$RUN/layer$i"
  dd if=/dev/urandom of="$RUN/layer$i/blob" bs=1M count=$((20 + 10 * i)) status=none
  umoci insert --image "$layout:big-1" "$RUN/layer$i" "/data$i"
  rm -rf "$RUN/layer$i"
done
bash deploy/images.sh push "$RUN/images" "$LREG" >/dev/null
skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$layout:big-1" "docker://$LREG/$BIG"
rm -rf "$RUN/images"
big_mb=$(skopeo inspect --raw --tls-verify=false "docker://$LREG/$BIG" | jq '[.layers[].size] | add / 1048576 | floor')

# --- one node: the hub (registry, bridge) and the node's namespace --------
ip netns add "$HUB"
ip -n "$HUB" link add br0 type bridge
ip -n "$HUB" link set br0 up
ip -n "$HUB" link set lo up
ip -n "$HUB" addr add "${REG%:*}/15" dev br0
ip netns add "$NODE"
ip -n "$NODE" link set lo up
ip link add eth0 netns "$NODE" type veth peer name vh0 netns "$HUB"
ip -n "$HUB" link set vh0 master br0 up
ip -n "$NODE" addr add 198.18.0.10/15 dev eth0
ip -n "$NODE" link set eth0 up
registry registry-hub "$REG" "$HUB"

start_node() { # the daemon, in the node's network namespace
  nsenter --net="/var/run/netns/$NODE" unshare --uts sh -c 'hostname bench-node && exec "$@"' sh \
    "$BIN" -H "$SOCK" daemon --state-dir "$STATE/node" --engine embedded --insecure-registry "$REG" \
    >>"$RUN/node.log" 2>&1 &
  echo $! >"$RUN/node.pid"
  for _ in $(seq 100); do shoal version >/dev/null 2>&1 && return; sleep 0.1; done
  echo "the node did not start; see $RUN/node.log" >&2; exit 1
}
wait_ready() {
  for _ in $(seq 300); do [[ $(shoal node ls --format '{{.Status}}' 2>/dev/null) == Ready ]] && return; sleep 0.1; done
  echo "the node is not Ready; see $RUN/node.log" >&2; exit 1
}
start_node
shoal swarm init --advertise-addr 198.18.0.10 >/dev/null
wait_ready

# `service create` of $2 replicas of $3 as $1, until all run: seconds.
create_until_running() {
  local t0 replicas
  t0=$(now)
  shoal service create -d --name "$1" --replicas "$2" "$3" >/dev/null
  until replicas=$(shoal service ls --filter "name=$1" --format '{{.Replicas}}') && [[ $replicas == "$2/$2" ]]; do
    awk -v s="$t0" -v n="$(now)" 'BEGIN { exit !(n - s > 600) }' && { echo "$1: $replicas after 600 s" >&2; exit 1; }
    sleep 0.05
  done
  since "$t0"
}
# Removes a service and waits until its tasks are gone from the node.
remove() {
  shoal service rm "$1" >/dev/null
  for _ in $(seq 1200); do
    [[ -z $(ls -A "$STATE/node/process/tasks" 2>/dev/null) ]] && return
    sleep 0.1
  done
  echo "warning: $1's tasks still on the node after 120 s" >&2
}
docker_rm_all() { docker ps -aq --filter "label=$LABEL" | xargs -r docker rm -f >/dev/null; }
docker_run() { docker run -d --label "$LABEL" "$LREG/$WEB" >/dev/null; }
export -f docker_run; export LABEL LREG WEB

# --- 1. task start, image cached -------------------------------------------
echo "==> 1. $N tasks, image cached; $REPS rounds"
create_until_running warm 1 "$REG/$WEB" >/dev/null # the node pulls web:1
remove warm
docker pull -q "$LREG/$WEB" >/dev/null
: >"$RUN/shoal.s"; : >"$RUN/seq.s"; : >"$RUN/par.s"
for r in $(seq "$REPS"); do
  s=$(create_until_running web "$N" "$REG/$WEB"); echo "$s" >>"$RUN/shoal.s"
  remove web
  t0=$(now); for _ in $(seq "$N"); do docker_run; done; q=$(since "$t0"); echo "$q" >>"$RUN/seq.s"
  docker_rm_all
  t0=$(now); seq "$N" | xargs -P 8 -I{} bash -c docker_run; p=$(since "$t0"); echo "$p" >>"$RUN/par.s"
  docker_rm_all
  echo "   round $r: shoal $s s, docker run sequential $q s, 8 at a time $p s"
done

# --- 2. cold pull ------------------------------------------------------------
has_image_cli=""
shoal image pull --help >/dev/null 2>&1 && has_image_cli=1
echo "==> 2. cold pull of $BIG ($big_mb MB in 4 layers); $PULL_REPS rounds"
: >"$RUN/spull.s"; : >"$RUN/dpull.s"
for r in $(seq "$PULL_REPS"); do
  mark=$(wc -l <"$RUN/node.log")
  if [[ -n $has_image_cli ]]; then
    shoal image rm "$REG/$BIG" >/dev/null 2>&1 || true
    t0=$(now); shoal image pull -q "$REG/$BIG" >/dev/null; s=$(since "$t0"); note=""
  else
    # An empty store: stop the node, drop it, start the node again.
    kill -TERM "$(cat "$RUN/node.pid")"
    while kill -0 "$(cat "$RUN/node.pid")" 2>/dev/null; do sleep 0.1; done
    rm -rf "$STATE/node/images"
    start_node
    wait_ready
    mark=$(wc -l <"$RUN/node.log")
    cold=$(create_until_running big 1 "$REG/$BIG"); remove big
    warm=$(create_until_running big 1 "$REG/$BIG"); remove big
    s=$(awk -v c="$cold" -v w="$warm" 'BEGIN { printf "%.2f", c - w }')
    note=" = create->running cold $cold s - cached $warm s;"
  fi
  # The daemon's own pull span (RFC 3339 timestamps first on each line).
  span=$(tail -n +$((mark + 1)) "$RUN/node.log" | grep -E ' (pulling|pulled) ' | grep "$BIG" |
    awk '{ sub(/Z$/, "", $1); split($1, t, "T"); split(t[2], h, ":"); v = h[1] * 3600 + h[2] * 60 + h[3] }
         / pulling / && a == "" { a = v } / pulled / { b = v } END { if (a != "" && b != "") printf "%.2f", b - a }')
  note="$note (its log: pulling -> pulled ${span:-?} s)"
  echo "$s" >>"$RUN/spull.s"
  docker rmi "$LREG/$BIG" >/dev/null 2>&1 || true
  t0=$(now); docker pull -q "$LREG/$BIG" >/dev/null; d=$(since "$t0"); echo "$d" >>"$RUN/dpull.s"
  echo "   round $r: shoal $s s$note, docker pull $d s"
done

# --- the tables ---------------------------------------------------------------
row() { # label, file
  local m; m=$(median <"$2")
  printf '| %s | %s | %s | %s |\n' "$1" "$(paste -sd' ' "$2" | sed 's/ /, /g')" "$m" \
    "$(awk -v m="$m" -v n="$N" 'BEGIN { printf "%.1f", n / m }')"
}
echo
echo "| $N tasks, image cached | seconds per round | median s | tasks/s |"
echo "|---|---|---|---|"
row "Shoal embedded: \`service create --replicas $N\` to $N/$N running" "$RUN/shoal.s"
row "Docker: $N x \`docker run -d\`, sequential (the floor)" "$RUN/seq.s"
row "Docker: $N x \`docker run -d\`, 8 at a time" "$RUN/par.s"
echo
echo "| cold pull, $big_mb MB | seconds per round | median s |"
echo "|---|---|---|"
printf '| Shoal embedded | %s | %s |\n' "$(paste -sd' ' "$RUN/spull.s" | sed 's/ /, /g')" "$(median <"$RUN/spull.s")"
printf '| `docker pull` | %s | %s |\n' "$(paste -sd' ' "$RUN/dpull.s" | sed 's/ /, /g')" "$(median <"$RUN/dpull.s")"
awk -v s="$(median <"$RUN/shoal.s")" -v f="$(median <"$RUN/seq.s")" \
  -v p="$(median <"$RUN/spull.s")" -v d="$(median <"$RUN/dpull.s")" 'BEGIN {
  printf "\ntask start: Shoal %.2fx the floor (goal: under 1x)\n", s / f
  printf "cold pull: Shoal %.2fx docker pull (goal: at most 1x)\n", p / d }'
