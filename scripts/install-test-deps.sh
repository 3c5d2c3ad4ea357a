#!/bin/sh
# Installs the Debian packages only the tests need, and only those that are missing:
#   systemd     systemd-analyze, to verify the unit files in systemd/
#   ShellCheck  to lint the shell scripts (systemd/install.sh, scripts/*.sh)
# Safe to run again: it does nothing when everything is present.
set -eu

# "package:command" pairs: a package counts as present when its command is on PATH,
# so a machine with the tool from elsewhere is left alone.
wanted="systemd:systemd-analyze shellcheck:shellcheck build-essential:g++ cmake:cmake"

missing=""
for pair in $wanted; do
    pkg=${pair%%:*}
    cmd=${pair#*:}
    if ! command -v "$cmd" >/dev/null 2>&1; then
        missing="$missing $pkg"
    fi
done

[ -z "$missing" ] && exit 0

echo "Installing Debian packages for the tests:$missing"
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
