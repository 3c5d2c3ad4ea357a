#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
# Installs Chachaping on a Raspberry Pi as three systemd services, from the checkout this
# script is in. Safe to run again: every step checks first, and says "already in place"
# when there is nothing to do. See systemd/README.md.
set -eu

usage() {
    cat <<'USAGE'
usage: sudo sh systemd/install.sh [--start] [--no-telegram] [--dry-run] [--python PATH]
       sh systemd/install.sh --root DIR [--dry-run]

Installs Chachaping as systemd services: the system user "chachaping" (groups audio, gpio),
a virtual environment in /opt/chachaping/venv with this checkout installed in it,
/etc/chachaping/chacha.yaml and /etc/chachaping/chachaping.env (only when absent), and the
units chachaping-server, chachaping-doll and chachaping-telegram, enabled at boot.

  --start         also start the services now (after the secrets are filled in)
  --no-telegram   leave out the Telegram bot's unit
  --dry-run       print what would be done, change nothing (needs no root)
  --python PATH   the Python that makes the virtual environment (default /usr/bin/python3)
  --root DIR      install the files under DIR instead of / (also: CHACHA_ROOT=DIR); steps
                  that need the real system (users, pip, systemctl start) are only printed
  -h, --help      this text
USAGE
}

die() {
    printf 'install.sh: %s\n' "$*" >&2
    exit 1
}

ROOT=${CHACHA_ROOT:-}
DRY_RUN=0
START=0
TELEGRAM=1
PYTHON=/usr/bin/python3
while [ $# -gt 0 ]; do
    case $1 in
        --root)
            [ $# -ge 2 ] || die "--root needs a folder"
            ROOT=$2
            shift 2
            ;;
        --root=*)
            ROOT=${1#--root=}
            shift
            ;;
        --python)
            [ $# -ge 2 ] || die "--python needs a path"
            PYTHON=$2
            shift 2
            ;;
        --python=*)
            PYTHON=${1#--python=}
            shift
            ;;
        --start) START=1; shift ;;
        --no-telegram) TELEGRAM=0; shift ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done

if [ -n "$ROOT" ]; then
    [ -d "$ROOT" ] || die "--root $ROOT: no such folder"
    ROOT=$(cd "$ROOT" && pwd)
    if [ "$ROOT" = / ]; then
        ROOT=""
    fi
fi
if [ -z "$ROOT" ] && [ "$DRY_RUN" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
    die "must run as root: sudo sh systemd/install.sh (or --root DIR to install into a folder, --dry-run to look)"
fi

REPO=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -f "$REPO/pyproject.toml" ] || [ ! -f "$REPO/chacha.example.yaml" ]; then
    die "$REPO does not look like a Chachaping checkout (no pyproject.toml / chacha.example.yaml)"
fi
# The Python must be one the lock covers, or pip would skip every locked package in silence.
if [ -z "$ROOT" ]; then
    if ! out=$(PYTHON_OPTION="--python " sh "$REPO/scripts/check-python.sh" check "$PYTHON" 2>&1); then
        die "${out#error: }"
    fi
fi

USER_NAME=chachaping
HOME_DIR=/var/lib/chachaping
VENV=/opt/chachaping/venv
ETC=/etc/chachaping
UNIT_DIR=/etc/systemd/system
EXTRAS=device,server,telegram
UNITS="chachaping-server.service chachaping-doll.service"
if [ "$TELEGRAM" -eq 1 ]; then
    UNITS="$UNITS chachaping-telegram.service"
fi

# What to do where the archives lack python3-lgpio: said once, by apt-install.sh.
LGPIO_MISSING="gpiozero cannot drive the Pi's pins without it: it is in Raspberry Pi OS's own archive \
(archive.raspberrypi.com, in /etc/apt/sources.list.d/raspi.sources on Raspberry Pi OS); elsewhere \
set hardware.pin_factory: mock in /etc/chachaping/chacha.yaml to run the doll without its button and light"
# Pure-Python packages that the lock has only as source (no wheel): pip builds just these, and
# refuses to build anything else, so a package without an arm64 build fails the install instead
# of compiling for an hour on the Pi (tests/test_lock.py keeps this list true to uv.lock).
SOURCE_ONLY="srt"

CHANGED=0       # something was (or, in a dry run, would be) changed
UNITS_CHANGED=0 # a unit file was written: systemd must reload

# -- output and running ---------------------------------------------------------------------

say() { printf '%s\n' "$*"; }
in_place() { say "  $1: already in place"; }
# A step that changes something: $1 what, $2 what was done.
changed() {
    CHANGED=1
    if [ "$DRY_RUN" -eq 1 ]; then
        say "  $1: would be $2"
    else
        say "  $1: $2"
    fi
}
# Run a command, or only print it in a dry run.
run() {
    if [ "$DRY_RUN" -eq 1 ]; then
        say "      would run: $*"
    else
        "$@"
    fi
}
# Under --root, steps on the real system are printed, not run; true when skipped.
skipped_under_root() {
    what=$1
    shift
    if [ -n "$ROOT" ]; then
        say "  $what: skipped under --root (would run: $*)"
        return 0
    fi
    return 1
}
is_root() { [ "$(id -u)" -eq 0 ]; }

# -- files ----------------------------------------------------------------------------------

# Make sure folder $1 (a path on the target system) exists, with mode $2.
ensure_dir() {
    if [ -d "$ROOT$1" ]; then
        return 0
    fi
    changed "$1/" "created"
    run mkdir -p "$ROOT$1"
    run chmod "$2" "$ROOT$1"
}

# Set mode $2 and owner root:root on $1 (a path on the target system) if they differ.
ensure_mode() {
    file=$ROOT$1
    [ -e "$file" ] || return 0
    if [ "$(stat -c %a "$file")" != "$2" ]; then
        changed "$1" "mode set to $2"
        run chmod "$2" "$file"
    fi
    if is_root && [ "$(stat -c %u:%g "$file")" != 0:0 ]; then
        changed "$1" "owner set to root:root"
        run chown root:root "$file"
    fi
}

# Put the contents of file $2 at $1 (a path on the target system) with mode $3, atomically.
put_file() {
    if [ "$DRY_RUN" -eq 1 ]; then
        return 0
    fi
    tmp="$ROOT$1.tmp.$$"
    cp "$2" "$tmp"
    chmod "$3" "$tmp"
    if is_root; then
        chown root:root "$tmp"
    fi
    mv -f "$tmp" "$ROOT$1"
}

# -- steps ----------------------------------------------------------------------------------

debian_packages() {
    skipped_under_root "Debian packages" sh "$REPO/scripts/install-system-deps.sh" "$PYTHON" && return 0
    if [ "$DRY_RUN" -eq 1 ]; then
        say "  Debian packages: would run: sh scripts/install-system-deps.sh $PYTHON"
    else
        out=$(sh "$REPO/scripts/install-system-deps.sh" "$PYTHON")
        if [ -n "$out" ]; then
            say "$out"
            changed "Debian packages (libportaudio2, espeak-ng, libatomic1, python3-venv)" "installed"
        else
            in_place "Debian packages (libportaudio2, espeak-ng, libatomic1, python3-venv)"
        fi
    fi
    # gpiozero reaches the pins through lgpio (a Pi 5 only so). Raspberry Pi OS packages it for
    # the system Python in its own archive, and the virtual environment sees it
    # (--system-site-packages). Debian's own archive has no python3-lgpio, and PyPI's lgpio has
    # no build for Python 3.13: on plain Debian the doll runs, without its button and light.
    if dpkg-query -W -f='${Status}' python3-lgpio 2>/dev/null | grep -q "install ok installed"; then
        in_place "python3-lgpio (GPIO)"
    elif [ "$DRY_RUN" -eq 1 ]; then
        changed "python3-lgpio (GPIO)" "installed (apt-get, where the archives have it)"
    else
        out=$(sh "$REPO/scripts/apt-install.sh" --optional "$LGPIO_MISSING" python3-lgpio)
        if dpkg-query -W -f='${Status}' python3-lgpio 2>/dev/null | grep -q "install ok installed"; then
            say "$out"
            changed "python3-lgpio (GPIO)" "installed"
        fi
    fi
}

user_and_groups() {
    for group in audio gpio; do
        skipped_under_root "group $group" groupadd --system "$group" && continue
        if getent group "$group" >/dev/null; then
            in_place "group $group"
        else
            changed "group $group" "created"
            run groupadd --system "$group"
        fi
    done
    skipped_under_root "user $USER_NAME" useradd --system --user-group --home-dir "$HOME_DIR" \
        --no-create-home --shell /usr/sbin/nologin --groups audio,gpio "$USER_NAME" && return 0
    if ! getent passwd "$USER_NAME" >/dev/null; then
        changed "user $USER_NAME" "created (no login, home $HOME_DIR, groups audio gpio)"
        run useradd --system --user-group --home-dir "$HOME_DIR" --no-create-home \
            --shell /usr/sbin/nologin --groups audio,gpio --comment "Chachaping doll" "$USER_NAME"
        return 0
    fi
    missing=""
    for group in audio gpio; do
        id -nG "$USER_NAME" | tr ' ' '\n' | grep -qx "$group" || missing="$missing,$group"
    done
    if [ -n "$missing" ]; then
        changed "user $USER_NAME" "added to ${missing#,}"
        run usermod -a -G "${missing#,}" "$USER_NAME"
    else
        in_place "user $USER_NAME (groups audio gpio)"
    fi
}

# A fingerprint of the package's sources, so an unchanged checkout is not reinstalled.
source_fingerprint() {
    (
        cd "$REPO"
        find pyproject.toml uv.lock device inference_server tts hardware telegram_collector \
            -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -exec sha256sum {} + 2>/dev/null |
            LC_ALL=C sort -k2 | sha256sum | cut -c1-64
    )
}

virtual_environment() {
    skipped_under_root "virtual environment $VENV" "$PYTHON" -m venv --system-site-packages "$VENV" &&
        return 0
    if [ -x "$VENV/bin/python" ]; then
        in_place "virtual environment $VENV"
    else
        command -v "$PYTHON" >/dev/null || die "no Python at $PYTHON: give --python PATH"
        changed "virtual environment $VENV" "created"
        run mkdir -p "$(dirname "$VENV")"
        run "$PYTHON" -m venv --system-site-packages "$VENV"
    fi
}

python_package() {
    what="package chachaping[$EXTRAS] from $REPO"
    skipped_under_root "$what" "$VENV/bin/pip" install "${REPO}[$EXTRAS]" && return 0
    stamp="$VENV/.chachaping-source"
    fingerprint=$(source_fingerprint)
    if [ -x "$VENV/bin/chacha" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$fingerprint" ]; then
        in_place "$what"
        return 0
    fi
    changed "$what" "installed"
    if [ "$DRY_RUN" -eq 1 ]; then
        say "      would run: uv export --frozen (uv.lock's $EXTRAS set) | $VENV/bin/pip install --require-hashes"
        return 0
    fi
    # Build from a copy, so the checkout does not fill with root-owned build files.
    build=$(mktemp -d)
    trap 'rm -rf "$build"' EXIT
    tar -C "$REPO" --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./.make \
        --exclude='*.egg-info' --exclude=__pycache__ -cf - . | tar -C "$build" -xf -
    # Exactly the versions in uv.lock, checked against their hashes: uv (pinned itself, with
    # its hashes) writes the lock's Pi set out, pip installs it, then the package without deps.
    "$VENV/bin/pip" install --disable-pip-version-check --quiet --require-hashes --no-deps \
        -r "$build/scripts/uv-requirements.txt"
    extras=$(printf '%s' "$EXTRAS" | tr ',' '\n' | sed 's/^/--extra /' | tr '\n' ' ')
    # shellcheck disable=SC2086  # $extras is a list of options
    "$VENV/bin/uv" export --frozen --project "$build" $extras --no-emit-project --quiet \
        --output-file "$build/locked-requirements.txt"
    if ! grep -q '^[a-z0-9]' "$build/locked-requirements.txt"; then
        die "uv.lock has no packages for $PYTHON (Python $("$PYTHON" -V 2>&1)): use a Python the lock covers"
    fi
    "$VENV/bin/pip" install --disable-pip-version-check --quiet --require-hashes \
        --only-binary :all: --no-binary "$SOURCE_ONLY" -r "$build/locked-requirements.txt" ||
        die "pip could not install the locked packages (above): a package without a wheel for" \
            "$(uname -m) and Python $("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
            "is refused rather than compiled here"
    "$VENV/bin/pip" install --disable-pip-version-check --quiet --no-deps "$build"
    # pip skips a requirement whose markers do not fit without a word: prove the doll starts.
    "$VENV/bin/chacha" --help >/dev/null 2>&1 ||
        die "the installed doll does not start: run $VENV/bin/chacha --help to see why"
    rm -rf "$build"
    trap - EXIT
    printf '%s\n' "$fingerprint" >"$stamp"
}

config_file() {
    target=$ETC/chacha.yaml
    if [ -e "$ROOT$target" ]; then
        in_place "$target (never overwritten)"
        ensure_mode "$target" 644
        return 0
    fi
    changed "$target" "written from chacha.example.yaml"
    [ "$DRY_RUN" -eq 1 ] && return 0
    tmp=$(mktemp)
    {
        say "# Written by systemd/install.sh from chacha.example.yaml for the systemd services:"
        say "# server.data_dir, stt.cache_dir and client.url are set for them. Edit freely; the"
        say "# installer never overwrites this file. Secrets go in $ETC/chachaping.env."
        say "#"
        sed -e 's|^\(  data_dir:\) ~/\.local/share/chachaping|\1 /var/lib/chachaping|' \
            -e 's|^\(  cache_dir:\) ~/\.cache/chachaping|\1 /var/cache/chachaping|' \
            -e '/^client:/,/^[^ #]/s|^\(  url:\) null |\1 http://127.0.0.1:8750 |' \
            "$REPO/chacha.example.yaml"
    } >"$tmp"
    for line in "data_dir: /var/lib/chachaping" "cache_dir: /var/cache/chachaping" \
        "url: http://127.0.0.1:8750"; do
        grep -q "^  $line" "$tmp" ||
            say "      note: could not set '$line' in $target: set it by hand"
    done
    put_file "$target" "$tmp" 644
    rm -f "$tmp"
}

secrets_file() {
    target=$ETC/chachaping.env
    if [ -e "$ROOT$target" ]; then
        in_place "$target (never overwritten)"
        ensure_mode "$target" 600
        return 0
    fi
    changed "$target" "written (mode 600): fill in the secrets"
    [ "$DRY_RUN" -eq 1 ] && return 0
    tmp=$(umask 077 && mktemp)
    cat >"$tmp" <<'ENV'
# Secrets of the Chachaping services, read by systemd (EnvironmentFile=) and handed to them.
# Mode 600, owned by root: only root reads this file. Never commit it, never paste it.
# After editing: sudo systemctl restart chachaping-server chachaping-doll chachaping-telegram

# Google AI Studio API key: lets Gemini answer. Empty: 차차 answers from the offline phrasebook.
GEMINI_API_KEY=

# Bearer token the server requires and its clients (the doll, Telegram) send. Required.
# Make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'
CHACHA_API_TOKEN=

# Telegram bot token from @BotFather. Only chachaping-telegram needs it.
TELEGRAM_BOT_TOKEN=
ENV
    put_file "$target" "$tmp" 600
    rm -f "$tmp"
}

unit_files() {
    for unit in $UNITS; do
        target=$UNIT_DIR/$unit
        if [ -f "$ROOT$target" ] && cmp -s "$REPO/systemd/$unit" "$ROOT$target"; then
            in_place "$target"
            ensure_mode "$target" 644
            continue
        fi
        if [ -f "$ROOT$target" ]; then
            changed "$target" "updated (local edits belong in 'systemctl edit ${unit%.service}')"
        else
            changed "$target" "installed"
        fi
        UNITS_CHANGED=1
        put_file "$target" "$REPO/systemd/$unit" 644
    done
}

# Whether systemd is this system's init (sd_booted's test): not so in a chroot, or in an image
# being prepared, where the units are enabled all the same and load at its first boot.
systemd_running() { [ -d /run/systemd/system ]; }

reload_and_enable() {
    if [ "$UNITS_CHANGED" -eq 1 ]; then
        if skipped_under_root "systemd" systemctl daemon-reload; then
            :
        elif ! systemd_running; then
            say "  systemd: not running here (a chroot, or an image not booted yet): the units load at its next boot"
        else
            changed "systemd" "reloaded (the units changed)"
            run systemctl daemon-reload
        fi
    fi
    for unit in $UNITS; do
        if [ -n "$ROOT" ]; then
            # systemctl --root works on a folder: it only makes the boot symlinks.
            if ! command -v systemctl >/dev/null 2>&1; then
                say "  $unit: skipped under --root (no systemctl here; would run: systemctl enable $unit)"
                continue
            fi
            set -- systemctl --root="$ROOT"
        else
            set -- systemctl
        fi
        if "$@" is-enabled --quiet "$unit" 2>/dev/null; then
            in_place "$unit enabled at boot"
        else
            changed "$unit" "enabled at boot"
            if [ "$DRY_RUN" -eq 1 ]; then
                say "      would run: $* enable $unit"
            elif ! out=$("$@" enable "$unit" 2>&1); then
                die "could not enable $unit: $out"
            fi
        fi
    done
}

start_services() {
    [ "$START" -eq 1 ] || return 0
    for unit in $UNITS; do
        skipped_under_root "$unit" systemctl start "$unit" && continue
        if ! systemd_running; then
            say "  $unit: not started: systemd is not running here (it starts at the next boot)"
            continue
        fi
        if systemctl is-active --quiet "$unit"; then
            in_place "$unit running"
            continue
        fi
        if [ -r "$ETC/chachaping.env" ] && ! grep -q '^CHACHA_API_TOKEN=..*' "$ETC/chachaping.env"; then
            say "  $unit: not started: set CHACHA_API_TOKEN in $ETC/chachaping.env first"
            continue
        fi
        changed "$unit" "started"
        run systemctl start "$unit"
    done
}

# -- main -----------------------------------------------------------------------------------

mode=""
if [ -n "$ROOT" ]; then
    mode=" under $ROOT"
fi
if [ "$DRY_RUN" -eq 1 ]; then
    mode="$mode (dry run: nothing is changed)"
fi
say "Installing Chachaping from $REPO$mode"

debian_packages
user_and_groups
virtual_environment
python_package
ensure_dir /etc 755
ensure_dir "$ETC" 755
config_file
secrets_file
ensure_dir "$UNIT_DIR" 755
unit_files
reload_and_enable
start_services

if [ "$CHANGED" -eq 0 ]; then
    say "Nothing changed: everything was already in place."
elif [ "$DRY_RUN" -eq 1 ]; then
    say "Dry run: nothing was changed."
else
    say "Done. Next: put the secrets in $ETC/chachaping.env, then"
    say "  sudo systemctl start ${UNITS}"
    say "  journalctl -u chachaping-doll -f"
fi
