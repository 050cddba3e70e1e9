#!/usr/bin/env bash
# release.sh [VERSION] - build a release into dist/: static (CGO_ENABLED=0),
# stripped binaries for linux/amd64 and linux/arm64, the images as
# `docker save` archives, and SHA256SUMS over all of them. Then checks that
# every binary is static for its architecture and runs each one the engine
# can run inside a FROM scratch image.
#
# VERSION defaults to `git describe --tags` (without the leading "v"), or
# the version in internal/probe when there is no tag. Run as `make release`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
default=$(sed -n 's/^var Version = "\(.*\)"$/\1/p' internal/probe/probe.go)
version=${1:-$(git describe --tags --match 'v*' 2>/dev/null | sed 's/^v//' || true)}
version=${version:-$default}
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
[ -z "$(git status --porcelain 2>/dev/null)" ] || commit="$commit+dirty"
pkg=github.com/healthbridge/healthbridge/internal/probe
hc=github.com/healthbridge/healthbridge/internal/hcfast
ldflags="-s -w -X $pkg.Version=$version -X $pkg.Commit=$commit -X $hc.Version=$version -X $hc.Commit=$commit"
dist="$root/dist"
rm -rf "$dist"
mkdir -p "$dist"
arches="amd64 arm64"
host_arch=$(go env GOHOSTARCH)

for arch in $arches; do
  bin="$dist/.bin-$arch"
  mkdir -p "$bin"
  build() { # NAME TAGS PKG [GCFLAGS]
    CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -tags "$2" ${4:+-gcflags="$4"} -ldflags "$ldflags" -o "$bin/$1" "$3"
    cp "$bin/$1" "$dist/$1-$version-linux-$arch"
  }
  build healthbridge "" ./cmd/healthbridge
  # The one-shot probe for HEALTHCHECKs: lean (no grpc, no client-go),
  # without net/http's HTTP/2, which a probe never speaks, and without
  # inlining (-l: 0.6 MB smaller, and a process that lives milliseconds
  # gains nothing from it; bench/probe measures its run time).
  build healthbridge-probe "lean nethttpomithttp2" ./cmd/healthbridge-probe all=-l
  # The images' HEALTHCHECK: healthbridge healthcheck in 1.6 MB.
  build healthbridge-healthcheck "" ./cmd/healthbridge-healthcheck
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    for variant in full lean; do
      tag="healthbridge:$version-linux-$arch"
      flag=
      if [ $variant = lean ]; then
        tag="healthbridge:$version-lean-linux-$arch"
        flag=--lean
        CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -tags "lean nethttpomithttp2" -ldflags "$ldflags" -o "$bin/lean/healthbridge" ./cmd/healthbridge
        cp "$bin/healthbridge-healthcheck" "$bin/lean/"
        HB_BINDIR="$bin/lean" HB_PLATFORM="linux/$arch" deploy/build-image.sh $flag "$tag" >/dev/null
      else
        HB_BINDIR="$bin" HB_PLATFORM="linux/$arch" deploy/build-image.sh "$tag" >/dev/null
      fi
      if [ "$arch" = "$host_arch" ]; then
        echo "image $tag: $(docker run --rm --network none "$tag" version)"
      fi
      docker save "$tag" | gzip -9 > "$dist/healthbridge-image-$version-$variant-linux-$arch.tar.gz"
    done
  else
    echo "release.sh: no Docker engine: images not built" >&2
  fi
done

(cd "$dist" && sha256sum -- healthbridge* > SHA256SUMS)

echo "== dist/ (version $version, commit $commit)"
(cd "$dist" && for f in SHA256SUMS healthbridge*; do printf '%-52s %10s bytes\n' "$f" "$(stat -c %s "$f")"; done)
echo "== SHA256SUMS"
cat "$dist/SHA256SUMS"

echo "== each binary: static for its architecture, and run in a FROM scratch image where the engine can run it"
for arch in $arches; do
  for name in healthbridge healthbridge-probe healthbridge-healthcheck; do
    f="$dist/$name-$version-linux-$arch"
    # What the build recorded: the target and CGO_ENABLED=0 (a pure Go
    # binary, no program interpreter: it runs in an empty filesystem).
    info=$(go version -m "$f")
    if ! echo "$info" | grep -q "GOARCH=$arch\$" || ! echo "$info" | grep -q "CGO_ENABLED=0\$"; then
      echo "FAIL: $f: not a static linux/$arch build:" >&2; echo "$info" >&2; exit 1
    fi
    if [ "$arch" != "$host_arch" ]; then
      echo "$name linux/$arch: static (CGO_ENABLED=0, GOARCH=$arch); not run: this engine has no linux/$arch emulation"
      continue
    fi
    if ! docker info >/dev/null 2>&1; then
      echo "$name linux/$arch: static (CGO_ENABLED=0); not run: no Docker engine"
      continue
    fi
    ctx=$(mktemp -d)
    cp "$f" "$ctx/$name"
    printf 'FROM scratch\nCOPY %s /%s\nENTRYPOINT ["/%s"]\n' "$name" "$name" "$name" > "$ctx/Dockerfile"
    docker build -q -t "healthbridge-release-check:$name" "$ctx" >/dev/null 2>&1
    rm -rf "$ctx"
    out=$(docker run --rm --network none "healthbridge-release-check:$name" version)
    docker rmi "healthbridge-release-check:$name" >/dev/null
    case "$out" in
      *"$version (commit $commit"*) echo "$name linux/$arch: FROM scratch: $out" ;;
      *) echo "FAIL: $name in FROM scratch printed: $out" >&2; exit 1 ;;
    esac
  done
done
rm -rf "$dist"/.bin-*
