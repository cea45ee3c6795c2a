#!/usr/bin/env bash
# Builds the admin dashboard (dashboard/, TypeScript + Vite) into dashboard/dist,
# which the nexpoint binary embeds (release) or reads (debug builds).
# Idempotent: `npm ci` runs only when node_modules is missing or older than
# package-lock.json, and `npm run build` only when a source is newer than the
# last build.
#   --test   also run the component tests (vitest, once)
# Without npm, outside CI, it warns and builds nothing: nexpoint then answers
# the dashboard path with a 503 page saying so. With CI=true a missing npm fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../dashboard"

log() { printf 'build-dashboard: %s\n' "$*" >&2; }

if ! command -v npm >/dev/null 2>&1; then
  if [ "${CI:-}" = true ]; then
    log "npm not found (Node.js >= 20 is needed to build the dashboard)"
    exit 1
  fi
  log "npm not found: skipping the dashboard (install Node.js >= 20 to build it)"
  exit 0
fi

# npm writes node_modules/.package-lock.json on every install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  npm ci --no-audit --no-fund
fi

if [ ! -f dist/index.html ] ||
  [ -n "$(find src public index.html package.json package-lock.json vite.config.ts tsconfig.json -newer dist/index.html -print -quit)" ]; then
  log "npm run build"
  npm run build
else
  log "dist is up to date"
fi

if [ "${1:-}" = --test ]; then
  log "npm test"
  npm test
fi
