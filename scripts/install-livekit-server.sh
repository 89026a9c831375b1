#!/usr/bin/env bash
# Install the pinned livekit-server into <repo>/.tools/bin so lkrun's embedded
# dev server and the test suite find the same version on every machine.
set -euo pipefail

VERSION="1.13.5"
MODULE="github.com/livekit/livekit-server/cmd/server@v${VERSION}"
MIN_GO_MAJOR=1
MIN_GO_MINOR=26

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
BIN_DIR="${REPO_ROOT}/.tools/bin"
TARGET="${BIN_DIR}/livekit-server"

other_routes() {
  cat >&2 <<EOF
Without Go, install livekit-server with LiveKit's own installers instead:
  curl -sSL https://get.livekit.io | bash      (Linux)
  brew install livekit                         (macOS)
then put it on PATH or point LKRUN_LIVEKIT_SERVER at it.
EOF
}

if [[ -x "${TARGET}" ]] && "${TARGET}" --version 2>/dev/null | grep -q "version ${VERSION}\$"; then
  echo "livekit-server ${VERSION} already installed at ${TARGET}"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "error: 'go' was not found on PATH; building livekit-server ${VERSION} needs Go ${MIN_GO_MAJOR}.${MIN_GO_MINOR} or newer." >&2
  echo "Install Go from https://go.dev/dl/ and re-run: bash scripts/install-livekit-server.sh" >&2
  other_routes
  exit 1
fi

GO_VERSION="$(go env GOVERSION)"            # e.g. go1.26.8
if [[ ! "${GO_VERSION}" =~ ^go([0-9]+)\.([0-9]+) ]]; then
  echo "error: could not parse the Go version '${GO_VERSION}'." >&2
  exit 1
fi
GO_MAJOR="${BASH_REMATCH[1]}"
GO_MINOR="${BASH_REMATCH[2]}"
if (( GO_MAJOR < MIN_GO_MAJOR || (GO_MAJOR == MIN_GO_MAJOR && GO_MINOR < MIN_GO_MINOR) )); then
  echo "error: ${GO_VERSION} is too old; livekit-server ${VERSION} needs Go ${MIN_GO_MAJOR}.${MIN_GO_MINOR} or newer." >&2
  echo "Upgrade Go (https://go.dev/dl/) and re-run: bash scripts/install-livekit-server.sh" >&2
  other_routes
  exit 1
fi

TMP_DIR="$(mktemp -d)"
trap 'rm -rf "${TMP_DIR}"' EXIT

echo "building livekit-server ${VERSION} with ${GO_VERSION} (this takes a few minutes the first time)..."
GOBIN="${TMP_DIR}" go install "${MODULE}"

mkdir -p "${BIN_DIR}"
mv -f "${TMP_DIR}/server" "${TARGET}"
chmod +x "${TARGET}"
echo "installed $("${TARGET}" --version) at ${TARGET}"
