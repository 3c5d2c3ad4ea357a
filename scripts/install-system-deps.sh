#!/bin/sh
# Installs the Debian packages Chachaping needs, and only those that are missing.
# Safe to run again: it does nothing when everything is present.
set -eu

# libportaudio2: sounddevice's PortAudio; espeak-ng: the default voice (Piper has its own);
# libatomic1: Vosk's libvosk.so links it (a minimal Debian, unlike Raspberry Pi OS, lacks it).
packages="libportaudio2 espeak-ng libatomic1"
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

# shellcheck disable=SC2086  # $missing is a list of package names
exec sh "$(dirname "$0")/apt-install.sh" $missing
