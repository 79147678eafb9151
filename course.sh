#!/usr/bin/env bash
# Container Networking Labs: set everything up, then start the course or run the tests.
#
#   ./course.sh start   install what the course needs and open JupyterLab on notebooks/
#   ./course.sh test    install what the tests need and run the whole test suite
#   ./course.sh setup   only install
#
# Works on a fresh Debian 12 / Ubuntu 22.04+ machine, as root or as a user with sudo.
set -euo pipefail
cd "$(dirname "$0")"

ACTION="${1:-start}"
VENV="${LABKIT_VENV:-$PWD/.venv}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

say() { printf '\n==> %s\n' "$*"; }

system_packages() {
    # apt.txt lists the tools the labs use (Binder installs the same file).
    local wanted=(python3 python3-venv python3-dev gcc)
    mapfile -t listed < <(grep -v '^\s*#' apt.txt | grep -v '^\s*$')
    wanted+=("${listed[@]}")
    if [ -f .ci/apt-test.txt ] && [ "$ACTION" = "test" ]; then
        mapfile -t extra < <(grep -v '^\s*#' .ci/apt-test.txt | grep -v '^\s*$')
        wanted+=("${extra[@]}")
    fi
    local missing=()
    for pkg in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        say "Installing system packages: ${missing[*]}"
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
}

python_env() {
    # Debian's own Python, so an ordinary user (the unprivileged tests) can run the venv too.
    local py=/usr/bin/python3
    [ -x "$py" ] || py="$(command -v python3)"
    if [ ! -x "$VENV/bin/python" ]; then
        say "Creating the Python environment in $VENV"
        "$py" -m venv "$VENV"
    fi
    say "Installing labkit and its Python dependencies"
    "$VENV/bin/python" -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
    "$VENV/bin/python" -m pip install -q -e ".[dev]" 2>&1 | grep -v "is ignored" || true
    "$VENV/bin/python" -c "import labkit" || { echo "labkit failed to install" >&2; exit 1; }
}

docker_engine() {
    # The Docker lessons (part 2) need a running engine and the course's offline image.
    if $SUDO .ci/docker.sh; then
        "$VENV/bin/python" -m labkit.docker setup || say "could not build the course's Docker image"
    else
        say "no Docker engine: the Docker lessons will be skipped (labkit doctor says why)"
    fi
}

case "$ACTION" in
    setup)
        system_packages; python_env; docker_engine ;;
    start)
        system_packages; python_env; docker_engine
        "$VENV/bin/labkit" doctor || true
        say "Starting JupyterLab on the course notebooks (Ctrl-C to stop)"
        extra=()
        [ "$(id -u)" -eq 0 ] && extra+=(--allow-root)
        exec "$VENV/bin/jupyter" lab --notebook-dir="$PWD/notebooks" --no-browser \
            --ip="${LABKIT_JUPYTER_IP:-127.0.0.1}" --port="${LABKIT_JUPYTER_PORT:-8888}" "${extra[@]}"
        ;;
    test)
        system_packages; python_env; docker_engine
        # the JupyterHub test needs JupyterHub's proxy, from npm
        deploy/jupyterhub/install-proxy.sh || say "could not install configurable-http-proxy (npm)"
        "$VENV/bin/labkit" doctor
        say "Running the test suite"
        exec "$VENV/bin/python" -m pytest -q -rs -p no:cacheprovider "${@:2}"
        ;;
    *)
        echo "usage: $0 start|test|setup" >&2; exit 2 ;;
esac
