"""Where the project keeps its files: one data folder and one cache folder, through platformdirs.

On Linux: $XDG_DATA_HOME/chachaping (else ~/.local/share/chachaping) and $XDG_CACHE_HOME/chachaping
(else ~/.cache/chachaping). The systemd units set XDG_DATA_HOME=/var/lib and XDG_CACHE_HOME=/var/cache.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import platformdirs

APP = "chachaping"


def data_dir() -> Path:
    """History, the quota ledger, the persona's memory, the Telegram collector."""
    return platformdirs.user_data_path(APP)


def cache_dir() -> Path:
    """Derived files that can be made again (the assembled Whisper model, the speed probe)."""
    return platformdirs.user_cache_path(APP)


def cannot_write(folder: Path) -> str | None:
    """Why no new file can be written in ``folder`` (an existing folder), or None if one can.

    Permission bits do not say it (root passes them all; a read-only mount does not show in
    them), so a scratch file is created and removed.
    """
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".chacha-write-test-"):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None
