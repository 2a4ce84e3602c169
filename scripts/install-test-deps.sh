#!/usr/bin/env bash
# System packages the test suite needs that pip cannot provide, from Debian:
# - chromium for the Playwright browser tests (a Playwright browser download does not work here);
#   the browser tests launch exactly /usr/bin/chromium (tests/browser.py: CHROMIUM);
# - nginx for the load-balancer tests: tests/test_deployment.py runs docs/deployment.md's
#   configuration in an nginx process of its own, on its own ports and directories;
# - systemd's systemd-analyze, which checks the document's unit file (nothing is started).
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/sbin/nginx ] || missing+=(nginx)
[ -x /usr/bin/systemd-analyze ] || missing+=(systemd)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
echo "installing Debian's ${missing[*]} for the tests" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
