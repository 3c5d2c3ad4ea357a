# SPDX-License-Identifier: GPL-3.0-or-later
"""The lock: uv.lock agrees with pyproject.toml, and this venv holds exactly what it says.

`make test` installs with `uv sync --locked --all-extras`, so the venv the tests run in is the
lock's test set and nothing else: every package at the locked version, none missing, none
extra. The doll on the Pi and `make demo` install subsets of the same lock.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from conftest import ROOT
from packaging.markers import Marker
from packaging.utils import canonicalize_name

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


def locked_test_set() -> dict[str, str]:
    """Name → version of every package the lock installs for the tests on this machine."""
    return exported()


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
    checked = run_uv("sync", "--locked", "--all-extras", "--check")
    assert checked.returncode == 0, checked.stderr + checked.stdout


def test_every_install_path_uses_the_lock() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "sync --locked" in makefile and "pip install -e" not in makefile
    assert "uv export --frozen" in (ROOT / "systemd" / "install.sh").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "UV_CACHE_DIR" in ci and "make test" in ci
    pinned = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["required-version"]
    assert pinned.removeprefix("==") in (ROOT / "scripts" / "uv-requirements.txt").read_text()


def exported(*extras: str, environment: dict[str, str] | None = None) -> dict[str, str]:
    """Name → version the lock installs for ``extras`` where ``environment`` holds (None: here)."""
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


PI = {
    "sys_platform": "linux",
    "platform_machine": "aarch64",
    "platform_system": "Linux",
    "python_version": "3.11",
    "python_full_version": "3.11.2",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}


def test_the_pi_can_install_every_package_of_the_doll_from_the_lock() -> None:
    """Raspberry Pi OS (aarch64, Python 3.11): every locked package of the doll's extras has a
    wheel for it (or for any platform), or a source distribution to build."""
    wanted = exported("device", "server", "telegram", environment=PI)
    assert {"vosk", "faster-whisper", "piper-tts", "gpiozero", "sounddevice", "fastapi"} <= set(wanted)
    lock = {
        (canonicalize_name(p["name"]), p["version"]): p
        for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"]
    }
    unbuildable = []
    for name, version in wanted.items():
        package = lock[(name, version)]
        wheels = [wheel["url"].rsplit("/", 1)[-1] for wheel in package.get("wheels", [])]
        fits = any(w.endswith(("-any.whl", "_aarch64.whl")) or "aarch64" in w for w in wheels)
        if not fits and "sdist" not in package:
            unbuildable.append(f"{name}=={version}")
    assert not unbuildable, f"no aarch64 wheel nor source for: {unbuildable}"
