#!/usr/bin/env bash
# Builds shoal-test/busybox:1 from this directory and the host's static
# busybox. Idempotent: an existing image is kept.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
image=shoal-test/busybox:1
docker image inspect "$image" >/dev/null 2>&1 && exit 0
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
cp "$here/Dockerfile" "$here/passwd" "$here/group" "$ctx/"
cp "$(command -v busybox)" "$ctx/busybox"
# The classic builder: Debian's docker.io ships no buildx, and this image
# needs nothing BuildKit adds.
DOCKER_BUILDKIT=0 docker build -q -t "$image" "$ctx" >/dev/null
echo "built $image"
