#!/usr/bin/env bash
# Make a Docker engine answer on this machine, for the Docker lessons and their tests.
#
#   .ci/docker.sh          install docker.io if dockerd is missing (and busybox-static, from
#                          which the course builds its image offline), start dockerd in the
#                          background if nothing answers, wait until `docker version` works
#
# Idempotent: when an engine already answers it does nothing. Needs root (or sudo) and
# no init system (it starts dockerd itself, the way a CI container or a plain VM
# without systemd needs). Settings, all optional:
#   DOCKER_HOST                 the engine to check (default unix:///var/run/docker.sock)
#   LABKIT_DOCKERD_LOG          where dockerd writes its log (default /var/log/labkit-dockerd.log)
#   LABKIT_DOCKERD_TIMEOUT      seconds to wait for it to answer (default 60)
#   LABKIT_DOCKER_NO_INSTALL=1  never call apt-get (fail instead if dockerd is missing)
# Exit status: 0 when an engine answers, 1 otherwise (the reason is printed).
set -euo pipefail

HOST="${DOCKER_HOST:-unix:///var/run/docker.sock}"
LOG="${LABKIT_DOCKERD_LOG:-/var/log/labkit-dockerd.log}"
TIMEOUT="${LABKIT_DOCKERD_TIMEOUT:-60}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

say() { printf '==> docker.sh: %s\n' "$*"; }

answers() {
    # `docker version` needs the daemon; --format keeps it quiet.
    command -v docker >/dev/null 2>&1 &&
        docker -H "$HOST" version --format '{{.Server.Version}}' >/dev/null 2>&1
}

install_packages() {
    if [ "${LABKIT_DOCKER_NO_INSTALL:-0}" = "1" ]; then
        say "missing: $* (not installed: LABKIT_DOCKER_NO_INSTALL=1)"; return 1
    fi
    say "installing $*"
    # policy-rc.d: keep the package scripts from starting a daemon themselves; this
    # script starts exactly one, below, whatever init system there is (or is not).
    local policy=/usr/sbin/policy-rc.d added=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
        $SUDO chmod 755 "$policy"
        added=1
    fi
    local status=0
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" ||
        status=$?
    if [ "$added" = 1 ]; then $SUDO rm -f "$policy"; fi
    return "$status"
}

# The course's base image is built from Debian's statically linked busybox, offline.
if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed"; then
    install_packages busybox-static || say "busybox-static is missing: the course image cannot be built"
fi

if answers; then
    say "a Docker engine already answers at $HOST ($(docker -H "$HOST" version --format '{{.Server.Version}}'))"
    exit 0
fi

case "$HOST" in
    unix://*) SOCK="${HOST#unix://}" ;;
    *) say "nothing answers at $HOST and it is not a local socket this script can start"; exit 1 ;;
esac

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    install_packages docker.io iptables || { say "cannot install the Docker engine"; exit 1; }
fi

# A stale pid file or socket from a daemon that died stops a new one from starting.
PIDFILE=/var/run/docker.pid
if [ -f "$PIDFILE" ] && ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    $SUDO rm -f "$PIDFILE"
fi
if [ -S "$SOCK" ] && ! answers; then
    if [ -f "$PIDFILE" ]; then
        say "dockerd (pid $(cat "$PIDFILE")) is running but not answering yet; waiting for it"
    else
        $SUDO rm -f "$SOCK"
    fi
fi

if [ ! -f "$PIDFILE" ]; then
    say "starting dockerd in the background (log: $LOG)"
    $SUDO mkdir -p "$(dirname "$LOG")"
    # setsid + nohup: the daemon outlives this script and the shell that ran it.
    $SUDO sh -c "setsid nohup dockerd --host 'unix://$SOCK' --pidfile '$PIDFILE' \
        >>'$LOG' 2>&1 </dev/null &"
fi

for _ in $(seq 1 "$((TIMEOUT * 2))"); do
    if answers; then
        say "Docker engine $(docker -H "$HOST" version --format '{{.Server.Version}}') answers at $HOST"
        exit 0
    fi
    sleep 0.5
done

say "dockerd did not answer within ${TIMEOUT} s; the end of its log ($LOG):"
$SUDO tail -n 25 "$LOG" >&2 || true
exit 1
