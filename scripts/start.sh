#!/usr/bin/env bash
# The README's run command: installs what is missing (idempotent), builds the web UI
# when there is one, then runs the whole system in the foreground (`medloop start`).
# Options go to `medloop start`: --data DIR, --port N, --temporal-port N.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -f web/package.json ]; then
  echo "==> building the web UI (web/dist)"
  npm run --silent --prefix web build
elif [ -f web/vite.config.ts ]; then
  echo "==> building the web UI (web/dist)"
  npx vite build web
fi
exec node bin/medloop.mjs start "$@"
