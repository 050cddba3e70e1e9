#!/usr/bin/env bash
# build-image.sh [--lean | --exechealthz] [TAG] - build healthbridge's
# FROM-scratch image. The binary is built on the host (static,
# CGO_ENABLED=0) and copied in, because the engine cannot pull a Go image.
# Prints the image's size.
#   (default)      the full image, every probe kind: healthbridge:latest;
#                  client-go (the kubernetesPod kind's watch) is linked in.
#   --lean         the lean image (-tags lean): exec, httpGet, tcpSocket,
#                  rundir, ttl, dns, udp; no kubernetesPod (client-go), no
#                  grpc kind and no grpcListen (grpc-go). healthbridge:lean.
#   --exechealthz  the exechealthz drop-in variant: adds a static busybox
#                  (sh and its applets, from Debian's busybox-static) for -cmd.
# Environment (deploy/release.sh sets these):
#   HB_BINDIR      take healthbridge (and healthbridge-healthcheck) from this
#                  directory instead of building them.
#   HB_PLATFORM    the image's platform, e.g. linux/arm64 (default: the
#                  engine's own); a FROM scratch image needs no emulation to
#                  build.
set -euo pipefail
variant=default
tags=
case "${1:-}" in
  --exechealthz) variant=exechealthz; shift ;;
  # nethttpomithttp2 drops net/http's bundled HTTP/2, which healthbridge
  # never speaks without grpc-go or client-go (a plaintext server; probes
  # are HTTP/1.1, as the kubelet's).
  --lean) variant=lean; tags="lean nethttpomithttp2"; shift ;;
esac
default_tag=healthbridge:latest
[ "$variant" = lean ] && default_tag=healthbridge:lean
tag=${1:-$default_tag}
root=$(cd "$(dirname "$0")/.." && pwd)
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
if [ -n "${HB_BINDIR:-}" ]; then
  cp "$HB_BINDIR/healthbridge" "$ctx/healthbridge"
  [ "$variant" = exechealthz ] || cp "$HB_BINDIR/healthbridge-healthcheck" "$ctx/healthbridge-healthcheck"
else
  (cd "$root" && CGO_ENABLED=0 go build -tags "$tags" -trimpath -ldflags="-s -w" -o "$ctx/healthbridge" ./cmd/healthbridge)
  if [ "$variant" != exechealthz ]; then
    (cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$ctx/healthbridge-healthcheck" ./cmd/healthbridge-healthcheck)
  fi
fi
if [ "$variant" = exechealthz ]; then
  bb=$(command -v busybox || true)
  # ldd fails on a static binary ("not a dynamic executable").
  if [ -z "$bb" ] || ldd "$bb" >/dev/null 2>&1; then
    echo "build-image.sh --exechealthz: needs a static busybox on the host (apt-get install busybox-static)" >&2
    exit 2
  fi
  cp "$bb" "$ctx/busybox"
  cp "$root/deploy/Dockerfile.exechealthz" "$ctx/Dockerfile"
else
  cp "$root/deploy/Dockerfile" "$root/deploy/healthbridge.yaml" "$ctx/"
fi
# The legacy builder's deprecation notice is noise here: its output is
# shown only when the build fails.
if ! out=$(docker build -q ${HB_PLATFORM:+--platform "$HB_PLATFORM"} -t "$tag" "$ctx" 2>&1); then
  echo "$out" >&2
  exit 1
fi
size=$(docker image inspect "$tag" --format '{{.Size}}')
echo "$tag $size bytes ($((size / 1024 / 1024)) MiB)"
