# SPDX-License-Identifier: GPL-3.0-or-later
"""The systemd units and the installer: systemd-analyze, shellcheck, install.sh under --root."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from device.config import load_config
from device.stt.settings import default_cache_dir
from inference_server.settings import default_data_dir

ROOT = Path(__file__).resolve().parent.parent
UNIT_DIR = ROOT / "systemd"
INSTALL = UNIT_DIR / "install.sh"
UNITS = ("chachaping-server.service", "chachaping-doll.service", "chachaping-telegram.service")
EXEC = "/opt/chachaping/venv/bin/chacha"

pytestmark = pytest.mark.timeout(120)


def need(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} not found: install the Debian package {package} (scripts/install-test-deps.sh)")
    return path


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """section → key → every value given (keys such as DeviceAllow= repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path.name}: a setting outside a section: {line}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


# -- the units -------------------------------------------------------------------------------


def verify(unit_file: Path) -> tuple[int, list[str]]:
    """systemd-analyze verify; its return code and the lines that concern this unit."""
    result = subprocess.run(
        [need("systemd-analyze", "systemd"), "verify", str(unit_file)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0", "SYSTEMD_PAGER": ""},
    )
    lines = (result.stdout + result.stderr).splitlines()
    # Lines about other units (the distribution's own, in a container) are not ours to judge.
    return result.returncode, [line for line in lines if unit_file.name in line]


def copy_with_fake_exec(unit: str, tmp_path: Path) -> Path:
    """The unit, with ExecStart's program replaced by an executable that exists here."""
    fake = tmp_path / "bin" / "chacha"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    text = (UNIT_DIR / unit).read_text(encoding="utf-8")
    assert f"ExecStart={EXEC} " in text
    target = tmp_path / "units" / unit
    target.parent.mkdir(exist_ok=True)
    target.write_text(text.replace(EXEC, str(fake)), encoding="utf-8")
    return target


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_analyze_verify_finds_nothing_wrong(unit: str, tmp_path: Path) -> None:
    code, ours = verify(copy_with_fake_exec(unit, tmp_path))
    assert ours == [], "\n".join(ours)
    assert code == 0


def test_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    """The check above is not vacuous: a typo and a missing program are reported."""
    unit = copy_with_fake_exec("chachaping-doll.service", tmp_path)
    text = unit.read_text().replace("Restart=on-failure", "Restart=on-failur\nNicee=-5")
    unit.write_text(text.replace(str(tmp_path / "bin" / "chacha"), "/nonexistent/chacha"))
    code, ours = verify(unit)
    joined = "\n".join(ours)
    assert "Nicee" in joined and "on-failur" in joined
    assert "/nonexistent/chacha" in joined and code != 0


@pytest.mark.parametrize("unit", UNITS)
def test_every_unit_runs_as_chachaping_with_its_config_and_state(unit: str) -> None:
    service = parse_unit(UNIT_DIR / unit)["Service"]
    command = {"chachaping-server.service": "serve", "chachaping-doll.service": "run"}.get(unit, "telegram")
    assert service["ExecStart"] == [f"{EXEC} {command}"]
    # the server and the doll say READY=1 and feed a watchdog; the bot is started once executed
    if unit == "chachaping-telegram.service":
        assert service["Type"] == ["exec"]
    else:
        assert service["Type"] == ["notify"] and service["NotifyAccess"] == ["main"]
        assert service["WatchdogSec"] == ["60"]
    assert service["User"] == service["Group"] == ["chachaping"]
    assert service["EnvironmentFile"] == ["/etc/chachaping/chachaping.env"]
    environment = " ".join(service["Environment"]).split()
    for setting in (
        "CHACHA_CONFIG=/etc/chachaping/chacha.yaml",
        "XDG_DATA_HOME=/var/lib",
        "XDG_CACHE_HOME=/var/cache",
    ):
        assert setting in environment
    assert service["StateDirectory"] == service["CacheDirectory"] == ["chachaping"]
    assert (service["Restart"], service["RestartSec"]) == (["on-failure"], ["3"])
    for key in (
        "NoNewPrivileges",
        "ProtectHome",
        "PrivateTmp",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectControlGroups",
        "RestrictSUIDSGID",
        "LockPersonality",
    ):
        assert service[key] == ["yes"], key
    assert service["ProtectSystem"] == ["strict"]
    assert service["MemoryMax"]
    families = service["RestrictAddressFamilies"][0].split()
    assert {"AF_UNIX", "AF_INET", "AF_INET6"} <= set(families)
    assert parse_unit(UNIT_DIR / unit)["Install"]["WantedBy"] == ["multi-user.target"]


def test_the_doll_reaches_audio_and_gpio_and_nothing_else() -> None:
    unit = parse_unit(UNIT_DIR / "chachaping-doll.service")
    service = unit["Service"]
    assert service["SupplementaryGroups"][0].split() == ["audio", "gpio"]
    assert service["PrivateDevices"] == ["no"] and service["DevicePolicy"] == ["closed"]
    allowed = [value.split()[0] for value in service["DeviceAllow"]]
    assert "char-alsa" in allowed and "char-gpiochip" in allowed
    assert service["RestrictRealtime"] == ["no"] and service["Nice"] == ["-5"]
    assert "chachaping-server.service" in unit["Unit"]["Wants"][0].split()
    assert "chachaping-server.service" in unit["Unit"]["After"][0].split()


@pytest.mark.parametrize("unit", ["chachaping-server.service", "chachaping-telegram.service"])
def test_server_and_bot_see_no_devices(unit: str) -> None:
    service = parse_unit(UNIT_DIR / unit)["Service"]
    assert service["PrivateDevices"] == ["yes"]
    assert service["RestrictRealtime"] == ["yes"]
    assert "SupplementaryGroups" not in service
    if unit == "chachaping-telegram.service":
        assert "chachaping-server.service" in parse_unit(UNIT_DIR / unit)["Unit"]["After"][0].split()


def test_the_units_environment_puts_data_and_cache_where_systemd_makes_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """XDG_DATA_HOME=/var/lib + StateDirectory=chachaping: the project's defaults land there."""
    monkeypatch.setenv("XDG_DATA_HOME", "/var/lib")
    monkeypatch.setenv("XDG_CACHE_HOME", "/var/cache")
    assert default_data_dir() == Path("/var/lib/chachaping")
    assert default_cache_dir() == Path("/var/cache/chachaping")


# -- the scripts ---------------------------------------------------------------------------


def test_shell_scripts_pass_shellcheck() -> None:
    scripts = [INSTALL, *sorted((ROOT / "scripts").glob("*.sh"))]
    result = subprocess.run(
        [need("shellcheck", "shellcheck"), *map(str, scripts)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def fake_non_root(tmp_path: Path) -> dict[str, str]:
    """An environment in which `id -u` answers 1000, so the script believes it is not root."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir(exist_ok=True)
    fake_id = bin_dir / "id"
    fake_id.write_text(
        f'#!/bin/sh\nif [ "$1" = -u ]; then echo 1000; else exec {shutil.which("id")} "$@"; fi\n'
    )
    fake_id.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "CHACHA_ROOT"}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


def install(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    if env is None:
        env = {k: v for k, v in os.environ.items() if k != "CHACHA_ROOT"}
    return subprocess.run(["sh", str(INSTALL), *args], capture_output=True, text=True, timeout=60, env=env)


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under folder → (mtime in ns, mode), links not followed."""
    result = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        result[str(path.relative_to(folder))] = (info.st_mtime_ns, info.st_mode)
    return result


def test_install_twice_under_a_root_folder(tmp_path: Path) -> None:
    target = tmp_path / "root"
    target.mkdir()
    first = install("--root", str(target), env=fake_non_root(tmp_path))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "skipped under --root" in first.stdout  # useradd, pip, daemon-reload: printed, not run

    env_file = target / "etc/chachaping/chachaping.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    secrets = env_file.read_text()
    for name in ("GEMINI_API_KEY", "CHACHA_API_TOKEN", "TELEGRAM_BOT_TOKEN"):
        assert f"\n{name}=\n" in secrets  # present, empty, with a comment above
    config_file = target / "etc/chachaping/chacha.yaml"
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o644
    config, _ = load_config(config_file)  # a valid configuration, set for the services
    assert config.server.data_dir == Path("/var/lib/chachaping")
    assert config.stt.cache_dir == Path("/var/cache/chachaping")
    assert config.client.url == "http://127.0.0.1:8750"
    for unit in UNITS:
        installed = target / "etc/systemd/system" / unit
        assert installed.read_bytes() == (UNIT_DIR / unit).read_bytes()
        if shutil.which("systemctl"):
            assert (target / "etc/systemd/system/multi-user.target.wants" / unit).is_symlink()

    before = snapshot(target)
    second = install("--root", str(target), env=fake_non_root(tmp_path))
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.strip().splitlines()[-1] == "Nothing changed: everything was already in place."
    assert snapshot(target) == before


def test_install_repairs_what_drifted(tmp_path: Path) -> None:
    target = tmp_path / "root"
    target.mkdir()
    assert install("--root", str(target)).returncode == 0
    env_file = target / "etc/chachaping/chachaping.env"
    env_file.chmod(0o644)
    env_file.write_text(env_file.read_text() + "# her note\n")
    unit = target / "etc/systemd/system/chachaping-doll.service"
    unit.write_text("# edited by hand\n")

    again = install("--root", str(target))
    assert again.returncode == 0, again.stderr
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert env_file.read_text().endswith("# her note\n")  # secrets are never overwritten
    assert unit.read_bytes() == (UNIT_DIR / "chachaping-doll.service").read_bytes()
    assert "mode set to 600" in again.stdout and "updated" in again.stdout
    assert "Nothing changed" not in again.stdout


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "root"
    target.mkdir()
    env = fake_non_root(tmp_path) | {"CHACHA_ROOT": str(target)}
    result = install("--dry-run", env=env)
    assert result.returncode == 0, result.stderr
    assert "would be written" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "Dry run: nothing was changed."
    assert list(target.iterdir()) == []


def test_install_refuses_without_root_and_without_root_folder(tmp_path: Path) -> None:
    result = install(env=fake_non_root(tmp_path))
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("install.sh: must run as root: sudo sh systemd/install.sh")
    assert "--root DIR" in lines[0]


def test_install_rejects_an_unknown_option(tmp_path: Path) -> None:
    result = install("--root", str(tmp_path), "--bogus")
    assert result.returncode != 0
    assert result.stderr.strip() == "install.sh: unknown option '--bogus' (see --help)"


def test_the_server_tells_systemd_when_it_is_ready(tmp_path):
    """`chacha serve` sends READY=1 and watchdog pings to $NOTIFY_SOCKET (Type=notify)."""
    import os
    import socket
    import subprocess
    import sys

    notify = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(notify))
        listener.settimeout(30)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = {
            **os.environ,
            "NOTIFY_SOCKET": str(notify),
            "WATCHDOG_USEC": "400000",
            "CHACHA_API_TOKEN": "t",
            "XDG_DATA_HOME": str(tmp_path),
        }
        env.pop("WATCHDOG_PID", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "device.cli", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            first = listener.recv(256).decode()
            assert first.startswith("READY=1") and f":{port}" in first
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                pass  # it really listens once it says so
            assert listener.recv(256) == b"WATCHDOG=1"
        finally:
            proc.terminate()
            proc.wait(timeout=15)


def test_notify_is_silent_outside_systemd(monkeypatch):
    from inference_server import sd_notify

    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert sd_notify.notify("READY=1") is False
    assert sd_notify.watchdog_interval_s() is None


def test_install_refuses_a_python_the_lock_does_not_cover(tmp_path: Path) -> None:
    """pip would skip every locked package in silence (their markers do not fit) and leave a doll
    that dies on its first import: the installer stops first, in one line."""
    python = tmp_path / "python3.10"
    python.write_text(f'#!/bin/sh\necho "aarch64 3.10 {python}"\n')
    python.chmod(0o755)
    result = install("--dry-run", "--python", str(python), env=fake_non_root(tmp_path))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        f"install.sh: {python} is Python 3.10, which the lock (uv.lock) does not cover: "
        "use Python 3.11, 3.12 or 3.13 (--python /usr/bin/python3.13)\n"
    )


# -- Debian packages: scripts/apt-install.sh ---------------------------------------------------

POLICY = """{name}:
  Installed: (none)
  Candidate: {version}
  Version table:
     {version} 500
        500 {archive} amd64 Packages
"""


def fake_apt(tmp_path: Path, archives: dict[str, tuple[str, str]]) -> tuple[dict[str, str], Path]:
    """apt-get and apt-cache stand-ins: apt-cache knows ``archives`` (name → version, archive
    line); apt-get writes what it was asked to do into a log."""
    bin_dir = tmp_path / "apt-bin"
    bin_dir.mkdir()
    log = tmp_path / "apt-get.log"
    cases = "".join(
        f"    {name}) cat <<'EOF'\n{POLICY.format(name=name, version=version, archive=archive)}EOF\n    ;;\n"
        for name, (version, archive) in archives.items()
    )
    (bin_dir / "apt-cache").write_text(f'#!/bin/sh\ncase "$2" in\n{cases}    *) ;;\nesac\n')
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    for tool in ("apt-cache", "apt-get"):
        (bin_dir / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    return env, log


APT_INSTALL = ROOT / "scripts" / "apt-install.sh"
TRIXIE = "http://deb.debian.org/debian trixie/main arm64"


def apt_install(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(APT_INSTALL), *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_apt_install_names_each_package_and_its_archive(tmp_path: Path) -> None:
    env, log = fake_apt(
        tmp_path, {"libportaudio2": ("19.6.0-1.2+b3", TRIXIE), "espeak-ng": ("1.52.0", TRIXIE)}
    )
    result = apt_install("libportaudio2", "espeak-ng", env=env)
    assert result.returncode == 0, result.stderr
    assert "  libportaudio2 19.6.0-1.2+b3 deb.debian.org/debian trixie/main" in result.stdout
    assert "  espeak-ng 1.52.0 deb.debian.org/debian trixie/main" in result.stdout
    assert log.read_text().splitlines() == [
        "update -qq",
        "install -y -qq --no-install-recommends libportaudio2 espeak-ng",
    ]


def test_apt_install_stops_on_a_needed_package_no_archive_has(tmp_path: Path) -> None:
    env, log = fake_apt(tmp_path, {"libportaudio2": ("19.6.0-1.2+b3", TRIXIE)})
    result = apt_install("libportaudio2", "libatomic1", env=env)
    assert result.returncode == 1
    assert result.stderr.startswith("error: not in this system's package archives (")
    assert "): libatomic1\n" in result.stderr
    assert log.read_text().splitlines() == ["update -qq"]  # nothing installed


def test_apt_install_goes_on_without_an_optional_package_and_says_why(tmp_path: Path) -> None:
    env, log = fake_apt(tmp_path, {"espeak-ng": ("1.52.0", TRIXIE)})
    why = "gpiozero cannot drive the Pi's pins without it"
    result = apt_install("--optional", why, "python3-lgpio", "espeak-ng", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("note: not in this system's package archives (")
    assert result.stderr.rstrip().endswith(f"python3-lgpio: {why}")
    assert log.read_text().splitlines()[-1] == "install -y -qq --no-install-recommends espeak-ng"
