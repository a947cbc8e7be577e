# Sourced by scripts/test after lib/setup.sh: make Docker usable for the docker-marked tests
# (tests/deploy/test_compose.py), or say why not. Never fatal: without Docker those tests are
# left out, with the reason printed.
#
# docker_setup: returns 0 when a Docker daemon answers and Compose is installed (either one
# that was already running, or one started here: `dockerd --bridge=none --iptables=false`,
# containers on the host's network only, stopped again by docker_stop). Otherwise returns 1
# with the reason in DOCKER_REASON. As root it installs what is missing from Debian's packages:
# docker.io, docker-compose (v1.29; Compose v2 is used instead where its plugin is installed)
# and debootstrap (deploy/docker/build-base makes the base image with it).
#
# CUNPING_TEST_DOCKER=0 leaves the docker tests out without trying.

DOCKER_REASON=""
DOCKERD_PID=""
DOCKERD_LOG="${TMPDIR:-/tmp}/cunping-dockerd.log"

_docker_answers() {
    command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1
}

_compose_installed() {
    docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1
}

docker_setup() {
    if [ "${CUNPING_TEST_DOCKER:-}" = 0 ]; then
        DOCKER_REASON="CUNPING_TEST_DOCKER=0"
        return 1
    fi
    local root=""
    [ "$(id -u)" -eq 0 ] && root=1
    local wanted=()
    command -v dockerd >/dev/null 2>&1 || _docker_answers || wanted+=(docker.io)
    _compose_installed || wanted+=(docker-compose)
    command -v debootstrap >/dev/null 2>&1 || wanted+=(debootstrap)
    if [ ${#wanted[@]} -gt 0 ]; then
        if [ -z "$root" ]; then
            DOCKER_REASON="missing ${wanted[*]}, and not root to install them"
            return 1
        fi
        if ! apt_install "${wanted[@]}"; then
            DOCKER_REASON="apt-get could not install ${wanted[*]}"
            return 1
        fi
    fi
    if _docker_answers; then
        return 0
    fi
    if [ -z "$root" ]; then
        DOCKER_REASON="no Docker daemon answers, and not root to start one"
        return 1
    fi
    say "Starting dockerd (host network only; log: $DOCKERD_LOG)"
    setsid dockerd --bridge=none --iptables=false </dev/null >"$DOCKERD_LOG" 2>&1 &
    DOCKERD_PID=$!
    local waited=0
    until _docker_answers; do
        if ! kill -0 "$DOCKERD_PID" 2>/dev/null || [ "$waited" -ge 60 ]; then
            DOCKER_REASON="dockerd did not start: $(tail -n 3 "$DOCKERD_LOG" | tr '\n' ' ')"
            docker_stop
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    return 0
}

# Stop the daemon docker_setup started (and its containerd), if it did.
docker_stop() {
    [ -n "$DOCKERD_PID" ] || return 0
    kill -TERM "$DOCKERD_PID" 2>/dev/null || true
    local waited=0
    while kill -0 "$DOCKERD_PID" 2>/dev/null && [ "$waited" -lt 30 ]; do
        sleep 1
        waited=$((waited + 1))
    done
    kill -KILL "$DOCKERD_PID" 2>/dev/null || true
    DOCKERD_PID=""
}
