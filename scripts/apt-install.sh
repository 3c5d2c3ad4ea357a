#!/bin/sh
# Installs the Debian packages named as arguments, as root or through sudo; with none, does
# nothing. Used by install-system-deps.sh and install-test-deps.sh once they know what is missing.
set -eu

[ "$#" -eq 0 ] && exit 0

echo "Installing Debian packages: $*"
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
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "$@"
