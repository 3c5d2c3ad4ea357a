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

# shellcheck disable=SC2086  # $missing is a list of package names
exec sh "$(dirname "$0")/apt-install.sh" $missing
