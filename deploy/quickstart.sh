#!/usr/bin/env bash
# The main job, in one command: build Shoal, start a local node and show
# what it is. `deploy/quickstart.sh down` stops it and removes its state.
#
# Today this starts one daemon on the built-in process engine; as the
# cluster issues land it grows into a 3-node cluster in network namespaces
# with the example stack deployed.
set -euo pipefail
cd "$(dirname "$0")/.."

RUN=/run/shoal-quickstart
STATE=/var/lib/shoal-quickstart
SOCK="unix://$RUN/node-0.sock"
BIN=target/release/shoal

down() {
  if [[ -f $RUN/node-0.pid ]]; then
    pid=$(cat "$RUN/node-0.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
  fi
  rm -rf "$RUN" "$STATE"
  echo "quickstart removed"
}

up() {
  [[ $(id -u) == 0 ]] || { echo "run as root (namespaces, cgroups): sudo $0" >&2; exit 1; }
  bash deploy/install-deps.sh
  echo "==> building shoal (release)"
  cargo build --release --locked -p shoal
  down >/dev/null
  mkdir -p "$RUN"
  echo "==> starting node-0 (engine: process)"
  "$BIN" -H "$SOCK" daemon --state-dir "$STATE/node-0" --engine process \
    >"$RUN/node-0.log" 2>&1 &
  echo $! >"$RUN/node-0.pid"
  for _ in $(seq 100); do
    "$BIN" -H "$SOCK" version >/dev/null 2>&1 && break
    sleep 0.1
  done
  "$BIN" -H "$SOCK" info
  cat <<TXT

Shoal is running (log: $RUN/node-0.log).
Talk to it:   export SHOAL_HOST=$SOCK; $BIN info
Stop it:      $0 down
TXT
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 [up|down]" >&2; exit 2 ;;
esac
