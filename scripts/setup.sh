#!/usr/bin/env bash
# Installs everything medloop needs from the project's own files, idempotently:
# Node packages (package-lock.json), the Python virtual environment with the ml/
# package (torch pinned to the CPU build), and — with --browser — Debian's Chromium
# for the browser tests. Re-running is cheap: each part is skipped while its
# inputs are unchanged (a stamp records their checksum).
set -euo pipefail
cd "$(dirname "$0")/.."

want_browser=0
for arg in "$@"; do
  case "$arg" in
    --browser) want_browser=1 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

node_sum="$(sha256sum package-lock.json | cut -d' ' -f1)"
if ! stamp_ok node_modules/.medloop-stamp "$node_sum"; then
  echo "==> npm ci"
  npm ci --no-audit --no-fund
  echo "$node_sum" > node_modules/.medloop-stamp
fi

py_sum="$(sha256sum ml/pyproject.toml | cut -d' ' -f1)"
if ! stamp_ok .venv/.medloop-stamp "$py_sum"; then
  echo "==> Python virtual environment (.venv)"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  # torch first, pinned: a looser requirement would pull a multi-GB CUDA build.
  .venv/bin/pip install -q --disable-pip-version-check torch==2.13.0
  .venv/bin/pip install -q --disable-pip-version-check -e 'ml[dev]'
  echo "$py_sum" > .venv/.medloop-stamp
fi

if [ "$want_browser" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  echo "==> Debian's chromium (browser tests)"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium is missing; install it with: sudo apt-get install chromium" >&2
    exit 1
  fi
fi
