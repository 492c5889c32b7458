#!/usr/bin/env bash
# Installs Debian's Chromium (and a font, so screenshots show text) for e2e/browser_test.go when
# it is missing. Idempotent; the test runs it itself, so `make test` needs nothing beforehand.
set -euo pipefail
if command -v chromium >/dev/null; then
  exit 0
fi
SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-chromium.sh: need root (or sudo) to apt-get install chromium" >&2; exit 1; }
  SUDO="sudo"
fi
pkgs=(chromium fonts-liberation)
echo "install-chromium.sh: installing with apt: ${pkgs[*]}" >&2
if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}" >&2; then
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}" >&2
fi
