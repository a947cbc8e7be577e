# Shared by scripts/demo and scripts/test: install what Cunping needs, then a virtualenv.
# Sourced, not run. Idempotent: a second run skips apt and pip when nothing changed.
#
# Usage: cunping_setup EXTRA DEBIAN_PACKAGE...
#   EXTRA is the pip extra to install ("server" or "test").

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.venv"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

# Install the Debian packages that are missing (as root, or through sudo).
apt_install() {
    local missing=() pkg
    for pkg in "$@"; do
        _installed "$pkg" || missing+=("$pkg")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        return 0
    fi
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo)
        else
            echo "Missing Debian packages: ${missing[*]}" >&2
            echo "Run as root, or install them first: apt-get install ${missing[*]}" >&2
            exit 1
        fi
    fi
    say "Installing Debian packages: ${missing[*]}"
    # Keep the packages' own services (PostgreSQL, Redis, nginx) from starting: the tests start
    # their own, and a busy port 80 would make nginx's installation fail.
    local policy=/usr/sbin/policy-rc.d added_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        added_policy=1
    fi
    local status=0
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            --no-install-recommends "${missing[@]}" || status=$?
    if [ -n "$added_policy" ]; then
        "${sudo[@]}" rm -f "$policy"
    fi
    return "$status"
}

# Create .venv (Python 3.11+) and install the project with EXTRA, unless already done for
# this pyproject.toml.
venv_install() {
    local extra="$1"
    if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c \
        'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        say "Removing $VENV: it is not a working Python 3.11+ environment"
        rm -rf "$VENV"
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
            echo "Cunping needs Python 3.11 or newer; python3 is $(python3 --version)." >&2
            exit 1
        fi
        say "Creating $VENV"
        python3 -m venv "$VENV"
    fi
    local stamp="$VENV/.cunping-installed-$extra"
    local want
    want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/cunping" ]; then
        return 0
    fi
    say "Installing Cunping and its Python packages (.[$extra]) into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[$extra]"
    echo "$want" >"$stamp"
}

cunping_setup() {
    local extra="$1"
    shift
    apt_install "$@"
    venv_install "$extra"
}
