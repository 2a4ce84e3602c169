#!/usr/bin/env bash
# System packages the test suite needs that pip cannot provide: Debian's Chromium
# for the Playwright browser tests (a Playwright browser download does not work here).
set -euo pipefail
# The browser tests launch exactly this path (tests/browser.py: CHROMIUM).
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
echo "installing Debian's chromium for the browser tests" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
