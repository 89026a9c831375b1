#!/usr/bin/env bash
# One set-up for a fresh machine: Python venv with lkrun, the LiveKit server, Debian tools.
# Safe to run again: every step skips what is already there.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# 1. Debian packages: espeak-ng (the cheap offline voice), sox (audio fixtures for tests).
need_apt=()
command -v espeak-ng >/dev/null 2>&1 || need_apt+=(espeak-ng)
command -v sox >/dev/null 2>&1 || need_apt+=(sox)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)   # the playground's browser test
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else SUDO="none"; fi
  if [ "$SUDO" = none ]; then
    say "skipping apt packages ${need_apt[*]} (not root and no sudo): the espeak voice will be unavailable"
  else
    say "installing Debian packages: ${need_apt[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
  fi
fi

# 2. Python: a virtual environment with lkrun, its tests' tools and the offline voices.
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi
say "installing lkrun into .venv (pip install -e '.[test,offline]')"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test,offline]"
# lkrun's own bytecode, as a wheel install leaves it: with PYTHONDONTWRITEBYTECODE set (this
# machine sets it) an editable install would compile every module from source at each start
.venv/bin/python -m compileall -q runner >/dev/null

# 3. The LiveKit server (built from source with Go; skipped when present).
bash scripts/install-livekit-server.sh

# 4. The playground page: livekit-client bundled by esbuild into runner/playground/static/dist/
#    (git-ignored; lkrun serves it itself, nothing is fetched when the page runs).
if command -v npm >/dev/null 2>&1; then
  if [ ! -d web/node_modules ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
    say "installing the playground's npm packages (npm ci in web/)"
    (cd web && npm ci --no-audit --no-fund --loglevel=error)
  fi
  bundle=runner/playground/static/dist/playground.js
  if [ ! -f "$bundle" ] || [ -n "$(find web/src web/build.mjs web/package-lock.json -newer "$bundle" 2>/dev/null)" ]; then
    say "building the playground page (npm run build in web/)"
    (cd web && npm run build --silent)
  fi
else
  say "skipping the playground page: npm not found (install Node.js 18+, then: cd web && npm ci && npm run build)"
fi

say "ready: run a bot with  .venv/bin/lkrun bots/greeter.yaml"
