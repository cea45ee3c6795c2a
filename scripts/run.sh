#!/usr/bin/env bash
# The one run command: builds the dashboard and the control plane (release)
# and serves both (the dashboard at http://<listen>/dashboard/).
#   NEXPOINT_LISTEN         listen address       (default 127.0.0.1:8000)
#   NEXPOINT_DATA_DIR       data directory       (default ./data)
#   NEXPOINT_DATABASE_URL   database URL         (default: SQLite inside the data dir)
#   NEXPOINT_SUDO_USERNAME / NEXPOINT_SUDO_PASSWORD
#                           a sudo admin, created at start (default admin/admin
#                           when neither is set and the embedded database is new)
# Extra arguments are passed to `nexpoint serve`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

LISTEN="${NEXPOINT_LISTEN:-127.0.0.1:8000}"
DEFAULT_ADMIN_BANNER=0
DATA_DIR="${NEXPOINT_DATA_DIR:-./data}"

# The binary makes NEXPOINT_SUDO_USERNAME/PASSWORD a sudo admin with that
# password at every start. The admin/admin default applies only to a fresh
# embedded database, so it never resets a password changed later.
if [ -z "${NEXPOINT_SUDO_USERNAME:-}" ] && [ -z "${NEXPOINT_SUDO_PASSWORD:-}" ]; then
  if [ -z "${NEXPOINT_DATABASE_URL:-}" ] && [ ! -e "$DATA_DIR/nexpoint.db" ]; then
    export NEXPOINT_SUDO_USERNAME=admin NEXPOINT_SUDO_PASSWORD=admin
    DEFAULT_ADMIN_BANNER=1
  else
    echo "run.sh: existing or external database: no default admin (set NEXPOINT_SUDO_USERNAME/PASSWORD, or run \`nexpoint admin create --sudo\`)" >&2
  fi
elif [ -z "${NEXPOINT_SUDO_USERNAME:-}" ] || [ -z "${NEXPOINT_SUDO_PASSWORD:-}" ]; then
  echo "run.sh: set both NEXPOINT_SUDO_USERNAME and NEXPOINT_SUDO_PASSWORD, or neither" >&2
  exit 2
fi

scripts/build-dashboard.sh
cargo build --release --bin nexpoint
mkdir -p "$DATA_DIR"

args=(serve --data-dir "$DATA_DIR" --listen "$LISTEN")
if [ -n "${NEXPOINT_DATABASE_URL:-}" ]; then
  args+=(--database-url "$NEXPOINT_DATABASE_URL")
fi
if [ "$DEFAULT_ADMIN_BANNER" = 1 ]; then
  cat >&2 <<'MSG'
************************************************************************
  No NEXPOINT_SUDO_USERNAME / NEXPOINT_SUDO_PASSWORD given: creating the
  DEFAULT sudo admin   username: admin   password: admin
  Change that password (or set both variables) before exposing this.
************************************************************************
MSG
fi
echo "run.sh: serving on http://$LISTEN (data in $DATA_DIR)" >&2
exec target/release/nexpoint "${args[@]}" "$@"
