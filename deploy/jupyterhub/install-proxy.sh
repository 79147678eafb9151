#!/usr/bin/env bash
# Install what JupyterHub needs from npm: configurable-http-proxy (the hub's proxy).
# Called by `./course.sh test` (the JupyterHub test) and by instructors setting up a hub.
# Installs Node.js and npm from the distribution first if npm is missing.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PROXY_VERSION="${CHP_VERSION:-5}"

if command -v configurable-http-proxy >/dev/null 2>&1; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs npm
fi
$SUDO npm install --global --no-fund --no-audit "configurable-http-proxy@${PROXY_VERSION}"
command -v configurable-http-proxy
