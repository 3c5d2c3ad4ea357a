#!/bin/sh
# Installs the Debian packages Chachaping needs, and only those that are missing.
# Safe to run again: it does nothing when everything is present.
set -eu

packages="libportaudio2 espeak-ng"
python_bin="${1:-python3}"

missing=""
for pkg in $packages; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done
# Debian's own python3 ships venv separately; a pyenv or python.org build has it built in.
if ! "$python_bin" -c "import venv, ensurepip" >/dev/null 2>&1; then
    missing="$missing python3-venv"
fi

[ -z "$missing" ] && exit 0

echo "Installing Debian packages:$missing"
if [ "$(id -u)" -eq 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
else
    echo "error: these Debian packages are missing:$missing" >&2
    echo "       run as root: apt-get install$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing
