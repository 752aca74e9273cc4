#!/usr/bin/env bash
# Builds Shoal's demo images without any Docker engine, offline: OCI image
# layouts made with umoci from the host's busybox-static, pushed with skopeo.
#
#   deploy/images.sh build <outdir>                  # -> <outdir>/oci (one layout)
#   deploy/images.sh push  <outdir> <host:port>      # -> <host:port>/shoal-demo/*
#
# Images (layout tag -> pushed name):
#   busybox-1 -> shoal-demo/busybox:1  busybox, one symlink per applet, /bin/sh a
#                                      hardlink; Cmd ["sh"]
#   web-1     -> shoal-demo/web:1      + /www (CGI page "web v1 on <hostname>",
#                                      /www/only-in-v1.html); httpd on 80/tcp
#   web-2     -> shoal-demo/web:2      + a whiteout of /www/only-in-v1.html
#                                      + a layer with the v2 page
#   user-1    -> shoal-demo/user:1     + an opaque /etc (passwd with user 1000),
#                                      /work owned by 1000:1000; User 1000:1000,
#                                      Env FOO=bar, WorkingDir /work; pushed as a
#                                      Docker v2 schema 2 manifest (others: OCI)
# push takes credentials from REGISTRY_CREDS=user:password when set.
set -euo pipefail

usage() {
  echo "usage: $0 build <outdir> | push <outdir> <registry host:port>" >&2
  exit 2
}

# The CGI page of web:<version>: the version and the serving container's name.
page() {
  printf '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n"\necho "web v%s on $(hostname)"\n' "$1"
}

build() {
  local out=$1 layout=$1/oci
  stage=$(mktemp -d) # global: the EXIT trap runs after build returns
  trap 'rm -rf "$stage"' EXIT
  rm -rf "$layout"
  mkdir -p "$out"
  umoci init --layout "$layout"
  umoci new --image "$layout:empty"

  # busybox-1: one layer with busybox and its applets.
  local root=$stage/busybox
  mkdir -p "$root"/{bin,etc,root,tmp}
  chmod 1777 "$root/tmp"
  chmod 700 "$root/root"
  cp /bin/busybox "$root/bin/busybox"
  ln "$root/bin/busybox" "$root/bin/sh"
  for applet in $(/bin/busybox --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  echo "shoal-demo busybox" >"$root/etc/motd"
  umoci insert --image "$layout:empty" --tag busybox-1 "$root" /
  umoci config --image "$layout:busybox-1" \
    --config.env PATH=/usr/sbin:/usr/bin:/sbin:/bin --config.cmd sh \
    --config.label org.opencontainers.image.title=shoal-demo-busybox

  # web-1: + /www with the v1 page and a file web-2 deletes.
  mkdir -p "$stage/www1/cgi-bin"
  page 1 >"$stage/www1/cgi-bin/index.cgi"
  chmod 755 "$stage/www1/cgi-bin/index.cgi"
  echo "only in v1" >"$stage/www1/only-in-v1.html"
  umoci insert --image "$layout:busybox-1" --tag web-1 "$stage/www1" /www
  umoci config --image "$layout:web-1" --clear config.cmd \
    --config.entrypoint httpd --config.cmd=-f --config.cmd=-p --config.cmd=80 \
    --config.cmd=-h --config.cmd=/www --config.exposedports 80/tcp \
    --config.stopsignal SIGTERM --config.label shoal.demo.version=1

  # web-2: + a whiteout layer, + the v2 page.
  page 2 >"$stage/index2.cgi"
  chmod 755 "$stage/index2.cgi"
  umoci insert --image "$layout:web-1" --tag web-2 --whiteout /www/only-in-v1.html
  umoci insert --image "$layout:web-2" "$stage/index2.cgi" /www/cgi-bin/index.cgi
  umoci config --image "$layout:web-2" --config.label shoal.demo.version=2

  # user-1: + an opaque /etc that knows user 1000, and its working dir.
  mkdir -p "$stage/etc" "$stage/work"
  printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/work:/bin/sh\n' >"$stage/etc/passwd"
  printf 'root:x:0:\napp:x:1000:\n' >"$stage/etc/group"
  chown 1000:1000 "$stage/work"
  umoci insert --image "$layout:busybox-1" --tag user-1 --opaque "$stage/etc" /etc
  umoci insert --image "$layout:user-1" "$stage/work" /work
  umoci config --image "$layout:user-1" --config.user 1000:1000 --config.env FOO=bar \
    --config.workingdir /work --config.volume /data

  umoci rm --image "$layout:empty"
  umoci gc --layout "$layout"
  umoci ls --layout "$layout"
}

push() {
  local layout=$1/oci registry=$2 creds=() tag name version format
  [ -n "${REGISTRY_CREDS:-}" ] && creds=(--dest-creds "$REGISTRY_CREDS")
  for tag in busybox-1 web-1 web-2 user-1; do
    name=${tag%-*} version=${tag##*-} format=oci
    [ "$name" = user ] && format=v2s2 # exercise Docker's media types too
    # --insecure-policy: no signature policy for local demo images;
    # --dest-tls-verify=false: plain-HTTP (insecure) registries.
    skopeo --insecure-policy copy -q --format "$format" --dest-tls-verify=false \
      "${creds[@]}" "oci:$layout:$tag" "docker://$registry/shoal-demo/$name:$version"
    echo "pushed $registry/shoal-demo/$name:$version"
  done
}

case "${1:-}" in
build) [ $# -eq 2 ] || usage; build "$2" ;;
push) [ $# -eq 3 ] || usage; push "$2" "$3" ;;
*) usage ;;
esac
