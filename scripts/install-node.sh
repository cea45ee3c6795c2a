#!/usr/bin/env bash
# Installs a Nexpoint node: the agent binary, its systemd unit, a proxy core,
# the enrollment, and starts the service. Idempotent: a second run changes
# nothing that is already right (an enrolled node stays enrolled).
#
#   install-node.sh --control-plane URL --token TOKEN --ca-fingerprint HEX
#   install-node.sh --bundle-file FILE
# Options:
#   --binary PATH    the nexpoint-node binary to install (default: next to
#                    this script's checkout in target/release, or on PATH)
#   --core-bin PATH  the core (default: xray or v2ray on PATH; else Debian's v2ray
#                    is installed)
#   --root DIR       install under DIR instead of / : no user, no package, no
#                    systemctl (for images and tests)
# Exit status: 0 installed (or already was), 1 failure, 2 usage error.
set -euo pipefail

log() { printf 'install-node: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT=""
BINARY=""
CORE_BIN=""
ENROLL=()
CHANGED=0
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT="${2:?}"; shift 2 ;;
    --binary) BINARY="${2:?}"; shift 2 ;;
    --core-bin) CORE_BIN="${2:?}"; shift 2 ;;
    --control-plane | --token | --ca-fingerprint | --bundle-file) ENROLL+=("$1" "${2:?}"); shift 2 ;;
    -h | --help) usage ;;
    *) log "unknown option $1"; usage ;;
  esac
done
[ ${#ENROLL[@]} -gt 0 ] || { log "give --control-plane/--token/--ca-fingerprint or --bundle-file"; usage; }
if [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then
  die "run as root (or with --root DIR)"
fi

BIN_DIR="$ROOT/usr/local/bin"
UNIT_DIR="$ROOT/etc/systemd/system"
CONF_DIR="$ROOT/etc/nexpoint"
STATE_DIR="$ROOT/var/lib/nexpoint-node"
ENV_FILE="$CONF_DIR/nexpoint-node.env"

# --- the agent binary --------------------------------------------------------
if [ -z "$BINARY" ]; then
  if [ -x "$HERE/../target/release/nexpoint-node" ]; then
    BINARY="$HERE/../target/release/nexpoint-node"
  else
    BINARY="$(command -v nexpoint-node || true)"
  fi
fi
[ -n "$BINARY" ] && [ -x "$BINARY" ] || die "no nexpoint-node binary: pass --binary PATH"
"$BINARY" version >/dev/null || die "$BINARY does not run here"
mkdir -p "$BIN_DIR" "$UNIT_DIR" "$CONF_DIR" "$STATE_DIR"
if ! cmp -s "$BINARY" "$BIN_DIR/nexpoint-node"; then
  log "installing $BIN_DIR/nexpoint-node"
  install -m 0755 "$BINARY" "$BIN_DIR/nexpoint-node.new"
  mv -f "$BIN_DIR/nexpoint-node.new" "$BIN_DIR/nexpoint-node"
  CHANGED=1
fi

# --- the unit ----------------------------------------------------------------
UNIT_SRC="$HERE/../systemd/nexpoint-node.service"
[ -f "$UNIT_SRC" ] || die "missing $UNIT_SRC"
if ! cmp -s "$UNIT_SRC" "$UNIT_DIR/nexpoint-node.service"; then
  log "installing $UNIT_DIR/nexpoint-node.service"
  install -m 0644 "$UNIT_SRC" "$UNIT_DIR/nexpoint-node.service"
  CHANGED=1
fi

# --- the user ----------------------------------------------------------------
if [ -z "$ROOT" ] && ! id nexpoint-node >/dev/null 2>&1; then
  log "creating system user nexpoint-node"
  useradd --system --home-dir /var/lib/nexpoint-node --no-create-home \
    --shell /usr/sbin/nologin nexpoint-node
fi

# --- the core ----------------------------------------------------------------
if [ -z "$CORE_BIN" ]; then
  CORE_BIN="$(command -v xray || command -v v2ray || true)"
fi
if [ -z "$CORE_BIN" ]; then
  [ -z "$ROOT" ] || die "no xray or v2ray on PATH: pass --core-bin PATH"
  log "installing Debian package v2ray"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends v2ray
  CORE_BIN="$(command -v v2ray)" || die "v2ray installed but not on PATH"
fi
[ -x "$CORE_BIN" ] || die "core $CORE_BIN is not executable"
# The settings file is the operator's: only the core line is ours.
touch "$ENV_FILE"
if ! grep -qx "NEXPOINT_NODE_CORE_BIN=$CORE_BIN" "$ENV_FILE"; then
  log "core: $CORE_BIN"
  grep -v '^NEXPOINT_NODE_CORE_BIN=' "$ENV_FILE" >"$ENV_FILE.new" || true
  echo "NEXPOINT_NODE_CORE_BIN=$CORE_BIN" >>"$ENV_FILE.new"
  mv -f "$ENV_FILE.new" "$ENV_FILE"
  CHANGED=1
fi

# --- enrollment --------------------------------------------------------------
if [ -f "$STATE_DIR/enrollment.json" ]; then
  log "already enrolled ($STATE_DIR); keeping it"
else
  log "enrolling"
  "$BIN_DIR/nexpoint-node" enroll --state-dir "$STATE_DIR" "${ENROLL[@]}"
  CHANGED=1
fi

# --- the service -------------------------------------------------------------
if [ -n "$ROOT" ]; then
  log "installed under $ROOT (no systemctl)"
  exit 0
fi
chown -R nexpoint-node:nexpoint-node "$STATE_DIR"
chmod 0700 "$STATE_DIR"
systemctl daemon-reload
systemctl enable --now nexpoint-node.service
# A new binary, unit, core or enrollment takes effect now.
[ "$CHANGED" -eq 0 ] || systemctl restart nexpoint-node.service
log "nexpoint-node.service is running"
