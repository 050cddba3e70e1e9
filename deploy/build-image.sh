#!/usr/bin/env bash
# build-image.sh [TAG] - build healthbridge's FROM-scratch image.
# The binary is built on the host (static, CGO_ENABLED=0) and copied in,
# because the engine cannot pull a Go image. Prints the image's size.
set -euo pipefail
tag=${1:-healthbridge:latest}
root=$(cd "$(dirname "$0")/.." && pwd)
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
(cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$ctx/healthbridge" ./cmd/healthbridge)
cp "$root/deploy/Dockerfile" "$root/deploy/healthbridge.yaml" "$ctx/"
docker build -q -t "$tag" "$ctx" >/dev/null
size=$(docker image inspect "$tag" --format '{{.Size}}')
echo "$tag $size bytes ($((size / 1024 / 1024)) MiB)"
