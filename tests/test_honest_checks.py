"""Honest checks (issue #15): `chacha config` and `chacha doctor` fail exactly when `chacha serve`
would, with the server's own one-line error; the CLI checks audio files before loading models.

Each test is named after the failure it keeps from coming back.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from device.cli import doctor
from device.cli.main import main
from device.config import load_config

pytestmark = pytest.mark.timeout(120)

# --- A: config and doctor load what the server loads --------------------------------------------


def _persona_file(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / "persona.yaml"
    if kind == "missing":
        return path
    if kind == "folder":
        path.mkdir()
    elif kind == "broken-yaml":
        path.write_text("name: [차차\nrules: -\n", encoding="utf-8")
    elif kind == "wrong-keys":
        path.write_text("nmae: 차차\n", encoding="utf-8")
    return path


def _config(tmp_path: Path, problem: str) -> Path:
    data_dir = tmp_path / "data"
    lines = ["memory:\n  enabled: false\n"]  # its model is checked apart: these fail before it
    if problem.startswith("persona-"):
        lines.append(f"persona:\n  file: {_persona_file(tmp_path, problem.removeprefix('persona-'))}\n")
    elif problem == "missing-phrasebook":
        lines.append(f"llm:\n  phrasebook:\n    file: {tmp_path / 'phrasebook.yaml'}\n")
    elif problem == "unwritable-data-dir":
        blocker = tmp_path / "a-file"
        blocker.write_text("not a folder", encoding="utf-8")
        data_dir = blocker / "data"  # even root cannot make a folder inside a file
    lines.append(f"server:\n  data_dir: {data_dir}\n")
    path = tmp_path / "chacha.yaml"
    path.write_text("".join(lines), encoding="utf-8")
    return path


PROBLEMS = {
    "persona-missing": "persona file not found",
    "persona-broken-yaml": "is not valid YAML",
    "persona-folder": "is a folder",
    "persona-wrong-keys": "nmae: unknown key",
    "missing-phrasebook": "phrasebook file not found",
    "unwritable-data-dir": "is not a writable folder",
}


def _one_error(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("chacha: ")]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("problem", list(PROBLEMS))
def test_config_and_doctor_fail_with_the_servers_own_error(tmp_path, capsys, monkeypatch, problem):
    config = _config(tmp_path, problem)
    monkeypatch.setenv("CHACHA_API_TOKEN", "test-token")

    assert main(["--config", str(config), "serve", "--port", "0"]) == 2
    served = _one_error(capsys)
    assert served.startswith("chacha: error: ") and PROBLEMS[problem] in served

    assert main(["--config", str(config), "config"]) == 2
    assert _one_error(capsys) == served

    loaded, _ = load_config(config)
    failed = [c for c in doctor.check_server_start(loaded) if c.status == "FAIL"]
    assert [c.detail for c in failed] == [served.removeprefix("chacha: error: ")]


def test_doctor_shows_every_start_step_and_goes_on_after_a_failure(tmp_path):
    loaded, _ = load_config(_config(tmp_path, "persona-wrong-keys"))
    checks = {c.what: c for c in doctor.check_server_start(loaded)}
    assert checks["data folder"].status == checks["phrasebook"].status == "OK"
    assert checks["persona"].status == "FAIL"
    assert checks["memory"].status == "OK" and "off" in checks["memory"].detail


def test_config_lists_what_the_server_loads_when_all_is_well(tmp_path, capsys):
    config = _config(tmp_path, "none")
    assert main(["--config", str(config), "config"]) == 0
    out = capsys.readouterr().out
    assert "what the server loads at start loads" in out
    assert f"data folder: {tmp_path / 'data'} takes new files" in out
    assert "persona: 차차" in out and "phrasebook: the shipped phrasebook" in out
