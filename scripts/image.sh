#!/usr/bin/env bash
# Builds stockflow's container image offline (deploy/Dockerfile.prebuilt):
# static binaries from the local Go toolchain, this machine's CA bundle and a
# passwd file go into a small temporary build context; `docker build` puts
# them FROM scratch. Nothing is pulled. Run `scripts/image.sh --help`.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT_DIR="$(cd "$SCRIPT_DIR/.." && pwd)"
PROG="scripts/image.sh"

IMAGE="${IMAGE:-stockflow/stockworker:dev}"
GO="${GO:-go}"
DOCKER="${DOCKER:-docker}"
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

usage() {
  cat <<EOF
Usage: $PROG [--help]

Builds the image $IMAGE offline:
  1. CGO_ENABLED=0 $GO build -trimpath of ./cmd/stockworker and ./cmd/orderctl
     (for GOOS=linux and the engine's architecture unless GOARCH is set);
  2. a build context in a temporary directory: the binaries, $CA_BUNDLE,
     /etc/passwd and /etc/group with the user nonroot (65532);
  3. $DOCKER build -f deploy/Dockerfile.prebuilt with the labels
     org.opencontainers.image.version (git describe) and .revision (git HEAD).
Starts the engine first when it does not answer (scripts/docker.sh up).
The temporary directory is removed on every path.

Environment (default):
  IMAGE            the tag to build (stockflow/stockworker:dev)
  VERSION          the version label (git describe --tags --always --dirty)
  LICENSES         the licenses label, an SPDX expression (NOASSERTION)
  GO, DOCKER       the tools (go, docker from PATH)
  CA_BUNDLE        the CA certificates to ship (/etc/ssl/certs/ca-certificates.crt,
                   Debian's ca-certificates)
  DOCKER_BUILDKIT  0 (the legacy builder) unless set: it works with any client,
                   also without the buildx plugin, and the file is one stage.

With a registry at hand, deploy/Dockerfile builds the same image from source.
EOF
}

log() { printf '[image] %s\n' "$*" >&2; }
die() { printf '[image] ERROR: %s\n' "$*" >&2; exit 1; }
now() { date +%s; }

main() {
  case "${1:-}" in
    -h|--help|help) usage; return 0 ;;
    "") ;;
    *) usage >&2; die "unexpected argument '$1'" ;;
  esac
  local t0; t0=$(now)
  command -v "$GO" >/dev/null 2>&1 || die "no Go toolchain ($GO) on PATH"
  [ -s "$CA_BUNDLE" ] || die "no CA bundle at $CA_BUNDLE (apt-get install ca-certificates, or set CA_BUNDLE)"
  "$SCRIPT_DIR/docker.sh" up

  local revision version arch
  revision=$(git -C "$ROOT_DIR" rev-parse HEAD 2>/dev/null || echo unknown)
  version=${VERSION:-$(git -C "$ROOT_DIR" describe --tags --always --dirty 2>/dev/null || echo dev)}
  arch=${GOARCH:-$(engine_goarch)}

  local ctx
  ctx=$(mktemp -d "${TMPDIR:-/tmp}/stockflow-image.XXXXXX")
  # shellcheck disable=SC2064 # expand now: ctx is local
  trap "rm -rf '$ctx'" EXIT
  mkdir -p "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/etc/ssl/certs"

  log "go build stockworker, orderctl (static, linux/$arch)"
  (cd "$ROOT_DIR" && CGO_ENABLED=0 GOOS=linux GOARCH="$arch" "$GO" build -trimpath -ldflags="-s -w" \
    -o "$ctx/rootfs/usr/local/bin/" ./cmd/stockworker ./cmd/orderctl)
  install -m 0644 "$CA_BUNDLE" "$ctx/rootfs/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' \
    >"$ctx/rootfs/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$ctx/rootfs/etc/group"
  chmod 0644 "$ctx/rootfs/etc/passwd" "$ctx/rootfs/etc/group"
  cp "$ROOT_DIR/deploy/Dockerfile.prebuilt" "$ctx/Dockerfile"

  log "docker build $IMAGE (version $version, revision $revision)"
  DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-0}" "$DOCKER" build -q -t "$IMAGE" \
    --build-arg VERSION="$version" --build-arg REVISION="$revision" \
    --build-arg LICENSES="${LICENSES:-NOASSERTION}" "$ctx" >/dev/null
  log "built $IMAGE: $("$DOCKER" image inspect -f '{{.Id}}, {{.Size}} bytes' "$IMAGE") in $(( $(now) - t0 ))s"
}

# engine_goarch: the engine's architecture in Go's words (amd64, arm64), so the
# binaries run where the image will.
engine_goarch() {
  local a
  a=$("$DOCKER" info --format '{{.Architecture}}' 2>/dev/null </dev/null || true)
  case $a in
    x86_64|amd64) echo amd64 ;;
    aarch64|arm64) echo arm64 ;;
    *) "$GO" env GOARCH ;;
  esac
}

main "$@"
