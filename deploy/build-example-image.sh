#!/usr/bin/env bash
# build-example-image.sh [TAG] - build the example application the
# Kubernetes manifests run beside healthbridge (examples/udp-echo: a UDP
# echo service with no health endpoint) as a FROM scratch image, from a
# static binary built on the host. Default tag: the one
# deploy/kubernetes/kustomization.yaml names.
set -euo pipefail
tag=${1:-healthbridge-example/udp-echo:0.1.0}
root=$(cd "$(dirname "$0")/.." && pwd)
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
(cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$ctx/udp-echo" ./examples/udp-echo)
cat > "$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY udp-echo /udp-echo
USER 65532:65532
EXPOSE 5353/udp
ENTRYPOINT ["/udp-echo"]
DOCKERFILE
if ! out=$(docker build -q -t "$tag" "$ctx" 2>&1); then
  echo "$out" >&2
  exit 1
fi
echo "$tag"
