"""The `chacha` command line as a user runs it: a subprocess, with no secrets from this shell."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def chacha(
    *args: str, env_extra: dict | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run `chacha ARGS…` (python -m device.cli) without GEMINI_API_KEY, CHACHA_API_TOKEN or
    CHACHA_CONFIG from the environment, unless `env_extra` gives them."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("GEMINI_API_KEY", "CHACHA_API_TOKEN", "CHACHA_CONFIG")
    }
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "device.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd or ROOT,
        timeout=timeout,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """The command failed with exactly one `chacha: …` line holding every fragment, no traceback."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("chacha: ")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]
