#!/usr/bin/env bash
# The one test command: installs the real proxy programs, builds and tests the
# dashboard, builds the binaries the end-to-end tests start, then runs every
# test suite of the workspace.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-test-tools.sh
# shellcheck source=/dev/null
. .tools/env
export NEXPOINT_TEST_POSTGRES_URL="${NEXPOINT_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

# The dashboard first: its component tests, and the dist the binaries serve
# (the browser tests drive it).
scripts/build-dashboard.sh --test
# tests/ starts target/debug/nexpoint and target/debug/nexpoint-node: build them first.
cargo build --workspace --bins
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# cargo prints one result line per test binary (the last is often an empty
# doc-test run); close with the totals over all of them.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;/) p += $(i-1); if ($(i) ~ /^failed;/) f += $(i-1) } }
     END { printf "summary: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
