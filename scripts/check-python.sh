#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
# The Python an install uses, and whether uv.lock covers it.
#
#   check-python.sh pick            prints the interpreter `make` uses when PYTHON is not given:
#                                   python3 when the lock covers it (Debian 12's 3.11, Debian
#                                   13's 3.13), else the newest python3.X on PATH that it covers
#   check-python.sh check PYTHON    prints the interpreter itself (not a launcher such as pyenv's
#                                   shim), or one line saying what is wrong and exits 1; the line
#                                   names the option that picks another ($PYTHON_OPTION, else
#                                   make's "PYTHON=")
#
# The Pythons and machines covered are read from [tool.uv] environments in pyproject.toml, the
# list the lock is resolved for, so this script never disagrees with the lock.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)

# "machine version" pairs the lock covers, e.g. "x86_64 3.11".
covered() {
    sed -n "s/.*platform_machine == '\([a-z0-9_]*\)' and python_version == '\([0-9.]*\)'.*/\1 \2/p" \
        "$here/pyproject.toml"
}

# "machine version executable" of an interpreter, or nothing when it does not run.
describe() {
    "$1" -c 'import platform, sys; print(platform.machine(), "%d.%d" % sys.version_info[:2], sys.executable)' \
        2>/dev/null || true
}

is_covered() {
    covered | grep -qx "$1 $2"
}

# Every version (or machine) the lock covers, as "3.11, 3.12 or 3.13".
listed() {
    covered | cut -d' ' -f"$1" | sort -u -V | tr '\n' ' ' | sed -e 's/ $//' -e 's/ \([^ ]*\)$/ or \1/' \
        -e 's/ \([^ ]*\) or/, \1 or/g' -e 's/ \([^ ]*\),/, \1,/g'
}

pick() {
    for candidate in python3 python3.13 python3.12 python3.11; do
        # shellcheck disable=SC2046  # three words on purpose
        set -- $(describe "$candidate")
        if [ $# -eq 3 ] && is_covered "$1" "$2"; then
            printf '%s\n' "$3"
            return 0
        fi
    done
    # None fits: hand on python3, and `check` says why it does not.
    printf 'python3\n'
}

check() {
    python=$1
    # shellcheck disable=SC2046  # three words on purpose
    set -- $(describe "$python")
    if [ $# -ne 3 ]; then
        echo "error: '$python' does not run a Python (not installed, or a pyenv shim of a version not active here): install Debian's python3, or give the interpreter itself (${PYTHON_OPTION:-PYTHON=}/path/to/python3)" >&2
        exit 1
    fi
    machine=$1
    version=$2
    if is_covered "$machine" "$version"; then
        printf '%s\n' "$3"
        return 0
    fi
    if ! covered | cut -d' ' -f1 | grep -qx "$machine"; then
        hint="the lock covers $(listed 1) only"
        case $machine in
            armv6l | armv7l | armv8l) hint="$hint: flash the 64-bit Raspberry Pi OS (a Pi 3, 4 or 5 runs it)" ;;
        esac
        echo "error: $python is Python $version on $machine; $hint" >&2
    else
        echo "error: $python is Python $version, which the lock (uv.lock) does not cover: use Python $(listed 2) (${PYTHON_OPTION:-PYTHON=}/usr/bin/python3.13)" >&2
    fi
    exit 1
}

case ${1:-} in
    pick) pick ;;
    check)
        [ $# -eq 2 ] || { echo "usage: $0 check PYTHON" >&2; exit 2; }
        check "$2"
        ;;
    *)
        echo "usage: $0 pick | check PYTHON" >&2
        exit 2
        ;;
esac
