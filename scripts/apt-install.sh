#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
# Installs the Debian packages named as arguments, as root or through sudo; with none, does
# nothing. Used by install-system-deps.sh, install-test-deps.sh and systemd/install.sh once they
# know what is missing.
#
#   apt-install.sh PKG...                   every package is needed: stop when one is not found
#   apt-install.sh --optional "WHY" PKG...  install what the archives have; for what they lack,
#                                           say so with WHY and go on
#
# Each package is looked up in this system's archives first (after `apt-get update`), and the
# line before the install names the version and the archive each one comes from, so a package
# taken from the wrong archive (or not found in the right one) shows.
set -eu

optional=""
if [ "${1:-}" = --optional ]; then
    optional=${2:?--optional needs the reason the packages are wanted}
    shift 2
fi
[ "$#" -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
else
    echo "error: these Debian packages are missing: $*" >&2
    echo "       run as root: apt-get install $*" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive

# This system, as the archives know it: "debian trixie arm64".
system() {
    # shellcheck disable=SC1091  # the system's own file
    name=$(. /etc/os-release 2>/dev/null && printf '%s %s' "${ID:-linux}" "${VERSION_CODENAME:-}")
    printf '%s %s' "$name" "$(dpkg --print-architecture 2>/dev/null || uname -m)"
}

# "VERSION ARCHIVE" of the version apt would install, or nothing when no archive has it.
candidate() {
    apt-cache policy "$1" 2>/dev/null | awk '
        /^  Candidate:/ { version = $2; if (version == "(none)") exit; next }
        version != "" && $1 == "***" && $2 == version { found = 1; next }
        version != "" && $1 == version { found = 1; next }
        found && NF >= 3 { sub(/^https?:\/\//, "", $2); sub(/\/$/, "", $2); print version, $2 " " $3; exit }
    '
}

$sudo apt-get update -qq

found=""
described=""
missing=""
for pkg in "$@"; do
    where=$(candidate "$pkg")
    if [ -n "$where" ]; then
        found="$found $pkg"
        described="$described
  $pkg $where"
    else
        missing="$missing $pkg"
    fi
done

if [ -n "$missing" ]; then
    if [ -z "$optional" ]; then
        echo "error: not in this system's package archives ($(system)):$missing" >&2
        echo "       check /etc/apt/sources.list.d/ (Debian's main archive, or Raspberry Pi OS's), then run again" >&2
        exit 1
    fi
    echo "note: not in this system's package archives ($(system)):$missing: $optional" >&2
fi
[ -n "$found" ] || exit 0

echo "Installing Debian packages (version, archive):$described"
# shellcheck disable=SC2086  # $found is a list of package names
$sudo apt-get install -y -qq --no-install-recommends $found
