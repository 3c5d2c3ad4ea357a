# SPDX-License-Identifier: GPL-3.0-or-later
"""The doll's mute: muted, it listens only while the button is held, never by itself (no
follow-up window after a reply).

Her choice is kept in a small JSON file (``doll.json`` in ``server.data_dir``) so that a restart
or a power cut keeps it, and ``chacha status`` reads it from there. A file that cannot be read is
taken as "not muted" and said in the log; one that cannot be written (a full SD card) is said in
the log and the mute holds until the doll stops.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

_LOGGER = logging.getLogger(__name__)

STATE_FILE = "doll.json"
"""The doll's kept state, in ``server.data_dir``."""


def read_muted(path: Path | None) -> bool:
    """Whether the file at ``path`` says the doll is muted (no file, or None: not muted)."""
    if path is None:
        return False
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return False
    except (OSError, ValueError) as exc:
        _LOGGER.warning("cannot read the doll's state in %s (%s): taken as not muted", path, exc)
        return False
    return isinstance(state, dict) and state.get("muted") is True


class MuteSwitch:
    """Muted or not, kept at ``path`` (None: in memory only)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.muted = read_muted(path)

    def set(self, muted: bool) -> None:
        """Mute or unmute, and keep it (written whole, then moved into place)."""
        self.muted = muted
        if self.path is None:
            return
        part = self.path.with_name(f".{self.path.name}.part")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(part, "w", encoding="utf-8") as file:
                json.dump({"muted": muted}, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(part, self.path)
        except OSError as exc:
            _LOGGER.warning(
                "cannot keep the mute in %s (%s): it holds until the doll stops; free space or fix "
                "the folder's permissions",
                self.path,
                exc,
            )
