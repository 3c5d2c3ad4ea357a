# SPDX-License-Identifier: GPL-3.0-or-later
"""review.tsv: the clips of a folder, what is said in each, and whether it may be trained on.

One clip a line, tab-separated: ``clip`` (path relative to the file's folder), ``text``,
``status``. Status is ``todo`` (not checked yet: never trained on), ``ok`` (the text is
exactly what is spoken) or ``skip`` (leave the clip out). Lines starting with ``#`` are
comments. He edits the file in any text editor; `chacha voice prepare` reads it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tts.voice.errors import VoiceError

HEADER = "clip\ttext\tstatus"
STATUSES = ("todo", "ok", "skip")
COMMENT = (
    "# Correct each transcript so it is exactly what is said in the clip, then set its status\n"
    "# to ok (train on it) or skip (leave it out). Clips still todo are never trained on.\n"
)


@dataclass
class ReviewRow:
    clip: str
    text: str
    status: str = "todo"


def clean_text(text: str) -> str:
    """One line, no tabs: what fits in a review.tsv cell."""
    return " ".join(str(text).split())


def read_review(path: Path) -> list[ReviewRow]:
    """The rows of a review file; a malformed line is an error naming the line."""
    rows: list[ReviewRow] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return rows
    except (OSError, UnicodeDecodeError) as exc:
        raise VoiceError(f"cannot read {path}: {exc} — save it as UTF-8 text") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith("#") or line.strip() == HEADER:
            continue
        cells = line.split("\t")
        if len(cells) != 3:
            raise VoiceError(
                f"{path}, line {number}: expected 3 tab-separated cells (clip, text, status), found "
                f"{len(cells)} — keep the tabs between the cells (an editor may have turned them into spaces)"
            )
        clip, text, status = (cell.strip() for cell in cells)
        status = status.lower()
        if status not in STATUSES:
            raise VoiceError(
                f"{path}, line {number}: status {status!r} is not one of todo, ok, skip — fix it"
            )
        rows.append(ReviewRow(clip, text, status))
    return rows


def write_review(path: Path, rows: list[ReviewRow]) -> None:
    """Write the file whole (through a temporary file, so a crash never leaves half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = COMMENT + HEADER + "\n" + "".join(f"{r.clip}\t{clean_text(r.text)}\t{r.status}\n" for r in rows)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(body, encoding="utf-8")
    os.replace(temporary, path)
