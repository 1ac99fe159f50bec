#!/usr/bin/env bash
# Install the headless browser the playground's browser test drives.
#
# Why Debian's Chromium: Playwright's own browser download needs its CDN, which CI
# and sandboxed machines cannot reach; the distribution package comes through the
# ordinary apt mirror. The test launches it with executable_path=/usr/bin/chromium.
# The fonts make screenshots readable (Latin, Cyrillic, the bot's emoji).
# Idempotent: does nothing when every package is already there.
set -euo pipefail

PACKAGES=(chromium chromium-driver fonts-dejavu-core fonts-noto-color-emoji)

if dpkg -s "${PACKAGES[@]}" >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1; then
    echo "already installed: $(chromium --version 2>/dev/null | head -n1)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "error: need root (or sudo) to apt-get install chromium" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}"
echo "installed: $(chromium --version 2>/dev/null | head -n1)"
