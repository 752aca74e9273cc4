#!/usr/bin/env bash
# The main job, in one command: build Shoal and start a local 3-node swarm
# (one manager, two workers), each node a `shoal daemon` in its own network
# namespace on a private underlay (198.18.0.0/15, nothing leaves the
# machine). `deploy/quickstart.sh down` stops it and removes everything.
#
# The nodes run the embedded engine: OCI images, each task in its own root
# with Docker's default confinement. A real registry (Debian's
# docker-registry) serves the demo images on the underlay at
# 198.18.0.2:5000; deploy/images.sh builds them from busybox-static with
# umoci and pushes them with skopeo, no engine involved.
#
# Then it deploys the demo stack (deploy/examples/demo-stack.yml: a web
# service with 3 replicas published on port 8080 through the routing mesh,
# a backend reached by service name, a secret), waits until it converges,
# and asks the web service through every node.
set -euo pipefail
cd "$(dirname "$0")/.."

NODES=3
RUN=/run/shoal-quickstart
STATE=/var/lib/shoal-quickstart
HUB=shoalqs-hub
# CI sets SHOAL_PROFILE=dev to reuse the test build instead of a release one.
PROFILE=${SHOAL_PROFILE:-release}
# The nodes' engine: the embedded default; bench/docker-mesh.sh sets docker.
ENGINE=${SHOAL_ENGINE:-embedded}
# The demo images' registry, in the hub namespace on the underlay.
REGISTRY_ADDR=198.18.0.2
export SHOAL_REGISTRY=$REGISTRY_ADDR:5000
if [[ $PROFILE == release ]]; then BIN=$PWD/target/release/shoal; else BIN=$PWD/target/debug/shoal; fi

ns() { echo "shoalqs-node-$1"; }
addr() { echo "198.18.0.$((10 + $1))"; }
sock() { echo "unix://$RUN/node-$1.sock"; }
shoal() { local n=$1; shift; "$BIN" -H "$(sock "$n")" "$@"; }

down() {
  # The data plane names its namespaces after the node id: note them first.
  ids=""
  for n in $(seq 0 $((NODES - 1))); do
    ids="$ids $(sed -n 's/.*"node_id": *"\([a-z0-9]*\)".*/\1/p' "$STATE/node-$n/swarm.json" 2>/dev/null | cut -c1-6 || true)"
  done
  # Leaving takes each node's tasks and networks with it.
  for n in $(seq $((NODES - 1)) -1 0); do
    [[ -S $RUN/node-$n.sock ]] && timeout 40 "$BIN" -H "$(sock "$n")" swarm leave --force >/dev/null 2>&1 || true
  done
  # Whatever a node's data plane left behind.
  for id in $ids; do
    for net in $(ip netns list | awk '{print $1}' | grep "^$id-" || true); do ip netns del "$net"; done
  done
  for n in $(seq 0 $((NODES - 1))); do
    if ip netns list | grep -qw "$(ns "$n")"; then
      for pid in $(ip netns pids "$(ns "$n")"); do kill -TERM "$pid" 2>/dev/null || true; done
      sleep 0.5
      for pid in $(ip netns pids "$(ns "$n")"); do kill -KILL "$pid" 2>/dev/null || true; done
      ip netns del "$(ns "$n")"
    fi
  done
  # Tasks a node could not stop itself (their namespaces are their own).
  for f in "$STATE"/node-*/process/tasks/*/pid.json; do
    [[ -f $f ]] || continue
    for pid in $(grep -o '"\(shim_\)\?pid": *[0-9]*' "$f" | grep -o '[0-9]*$'); do
      kill -KILL "$pid" 2>/dev/null || true
    done
  done
  { grep " $STATE/" /proc/mounts || true; } | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  [[ -f $RUN/registry.pid ]] && kill -TERM "$(cat "$RUN/registry.pid")" 2>/dev/null || true
  ip netns list | grep -qw "$HUB" && ip netns del "$HUB"
  rm -rf "$RUN" "$STATE"
  echo "quickstart removed"
}

wait_for() { # n
  for _ in $(seq 100); do shoal "$1" version >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "node-$1 did not start; see $RUN/node-$1.log" >&2
  exit 1
}

up() {
  [[ $(id -u) == 0 ]] || { echo "run as root (namespaces, cgroups): sudo $0" >&2; exit 1; }
  bash deploy/install-deps.sh
  echo "==> building shoal ($PROFILE)"
  cargo build --profile "$PROFILE" --locked -p shoal
  down >/dev/null
  mkdir -p "$RUN"

  echo "==> creating $NODES hosts (network namespaces) on a private underlay"
  ip netns add "$HUB"
  ip -n "$HUB" link add br0 type bridge
  ip -n "$HUB" link set br0 up
  ip -n "$HUB" link set lo up
  ip -n "$HUB" addr add "$REGISTRY_ADDR/15" dev br0
  for n in $(seq 0 $((NODES - 1))); do
    ip netns add "$(ns "$n")"
    ip -n "$(ns "$n")" link set lo up
    ip link add eth0 netns "$(ns "$n")" type veth peer name "vh$n" netns "$HUB"
    ip -n "$HUB" link set "vh$n" master br0 up
    ip -n "$(ns "$n")" addr add "$(addr "$n")/15" dev eth0
    ip -n "$(ns "$n")" link set eth0 up
    # Only the network namespace is the node's own: mounts and cgroups are
    # the machine's, as for a daemon on a real host.
    nsenter --net="/var/run/netns/$(ns "$n")" unshare --uts sh -c 'hostname "$0" && exec "$@"' "node-$n" \
      "$BIN" -H "$(sock "$n")" daemon --state-dir "$STATE/node-$n" --engine "$ENGINE" \
      --insecure-registry "$SHOAL_REGISTRY" --docker-api "unix://$RUN/node-$n.docker.sock" \
      --metrics-addr 127.0.0.1:9323 --web-addr 127.0.0.1:8081 \
      >"$RUN/node-$n.log" 2>&1 &
  done
  for n in $(seq 0 $((NODES - 1))); do wait_for "$n"; done

  echo "==> the demo images: built from busybox-static, served by a registry at $SHOAL_REGISTRY"
  mkdir -p "$RUN/registry"
  printf 'version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n' \
    "$STATE/registry" "$SHOAL_REGISTRY" >"$RUN/registry/config.yml"
  ip netns exec "$HUB" docker-registry serve "$RUN/registry/config.yml" >"$RUN/registry.log" 2>&1 &
  echo $! >"$RUN/registry.pid"
  for _ in $(seq 100); do
    ip netns exec "$HUB" curl -sf -o /dev/null "http://$SHOAL_REGISTRY/v2/" && break
    sleep 0.1
  done
  bash deploy/images.sh build "$RUN/images" >/dev/null
  ip netns exec "$HUB" bash deploy/images.sh push "$RUN/images" "$SHOAL_REGISTRY"

  echo "==> node-0: shoal swarm init"
  shoal 0 swarm init --advertise-addr "$(addr 0)"
  token=$(shoal 0 swarm join-token -q worker)
  for n in $(seq 1 $((NODES - 1))); do
    echo "==> node-$n: shoal swarm join"
    shoal "$n" swarm join --token "$token" "$(addr 0):2377"
  done
  for _ in $(seq 50); do
    [[ $(shoal 0 node ls --format '{{.Status}}' | grep -c Ready) == "$NODES" ]] && break
    sleep 0.2
  done
  echo
  shoal 0 node ls

  echo
  echo "==> deploying the demo stack (deploy/examples/demo-stack.yml)"
  shoal 0 stack deploy -c deploy/examples/demo-stack.yml --detach=false demo
  shoal 0 stack services demo
  echo
  for n in $(seq 0 $((NODES - 1))); do
    url="http://$(addr "$n"):8080/"
    body=""
    for _ in $(seq 50); do
      body=$(ip netns exec "$(ns $(( (n + 1) % NODES )))" curl -s --max-time 2 "$url") && break
      sleep 0.2
    done
    [[ -n $body ]] || { echo "no answer from $url" >&2; exit 1; }
    echo "GET $url -> $body"
  done
  echo
  echo "==> node-0's metrics and web view (inside its namespace)"
  ip netns exec "$(ns 0)" curl -sf http://127.0.0.1:9323/metrics | grep -E '^shoal_(raft_is_leader|node_tasks\{state="running"\}|store_objects\{kind="service"\}) '  || true
  ip netns exec "$(ns 0)" curl -sf http://127.0.0.1:8081/api/state | jq -c '{nodes: (.nodes | length), services: (.services | length), tasks: (.tasks | length)}' 2>/dev/null ||
    ip netns exec "$(ns 0)" curl -sf -o /dev/null -w 'web view: HTTP %{http_code}\n' http://127.0.0.1:8081/
  echo
  echo "==> the docker CLI, through node-0's Docker API"
  DOCKER_HOST="unix://$RUN/node-0.docker.sock" DOCKER_CONFIG="$RUN/docker-config" docker service ls
  cat <<TXT

A $NODES-node Shoal swarm is running (logs: $RUN/node-*.log), with the demo
stack deployed: port 8080 answers on every node through the routing mesh.
Talk to the manager:  export SHOAL_HOST=$(sock 0)
                      $BIN stack ps demo
                      $BIN service logs demo_web
Or with docker:       export DOCKER_HOST=unix://$RUN/node-0.docker.sock
                      docker service ls; docker stack ps demo
Ask the web service:  ip netns exec $(ns 1) curl http://$(addr 0):8080/
Metrics, web view:    ip netns exec $(ns 0) curl http://127.0.0.1:9323/metrics
                      ip netns exec $(ns 0) curl http://127.0.0.1:8081/api/state
Remove it:            $0 down
TXT
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 [up|down]" >&2; exit 2 ;;
esac
