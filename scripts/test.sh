#!/usr/bin/env bash
# Sets up and runs every test: the Python engine (ruff + pytest), then the
# TypeScript side (typecheck, eslint, vitest: unit, workflow, integration, browser).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --browser

# The tests use the machine's PostgreSQL server (127.0.0.1:5432) when one is installed.
if command -v pg_ctlcluster >/dev/null 2>&1 && ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
fi

echo "==> Python: ruff + pytest (ml/)"
.venv/bin/ruff check ml benchmarks
( cd ml && ../.venv/bin/python -m pytest -q )

if [ -n "$(ls test 2>/dev/null)" ]; then
  echo "==> TypeScript: typecheck + eslint + vitest"
  npx tsc -p tsconfig.json --noEmit
  npx eslint .
  npx vitest run
fi
