#!/usr/bin/env bash
# Installs the headless browser the web app tests drive: Debian's `chromium` package at
# /usr/bin/chromium (Playwright for Python drives it; no Playwright browser download).
# Idempotent and quiet when the browser is already there; never fails the caller when
# the package cannot be installed (the browser tests then skip, saying why).
set -uo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "install_browser: not root and no sudo; the web app browser tests will skip." >&2
    exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; then
  $SUDO apt-get update -q >/dev/null 2>&1 || true
  $SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || true
fi
if [ -x /usr/bin/chromium ]; then
  echo "install_browser: $(/usr/bin/chromium --version 2>/dev/null || echo chromium) installed."
else
  echo "install_browser: could not install chromium; the web app browser tests will skip." >&2
fi
exit 0
