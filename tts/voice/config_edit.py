# SPDX-License-Identifier: GPL-3.0-or-later
"""Point chacha.yaml at a Piper voice: ``tts.engine: piper`` and ``tts.piper.model: PATH``.

No round-trip YAML library is available (ruamel is not installed), and re-dumping the file
with PyYAML would throw away his comments and ordering. So the edit is made line by line,
touching only the lines it must:

* the ``tts:`` section is found as a top-level ``tts:`` line; its block is every following
  line that is indented, blank or a comment;
* in it, an ``engine:`` line at the section's indentation gets the value ``piper`` (a
  comment at the end of that line goes: it described the old value), or one is added
  under ``tts:``;
* a ``piper:`` block gets ``model: "PATH"`` (and ``config: "PATH.json"`` if it had a
  ``config:`` line), or one is added;
* with no ``tts:`` section, one is appended at the end of the file.

A section written in flow style (``tts: {engine: espeak}``) is not edited:
:class:`CannotEdit` is raised and the caller prints the lines to add. The result is parsed
again and must say what was intended, or nothing is written.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

_TOP_TTS = re.compile(r"^tts:\s*(#.*)?$")
_ANY_TTS = re.compile(r"^tts\s*:", re.MULTILINE)


class CannotEdit(Exception):
    """The file is laid out in a way the line editor will not touch; say it in one line."""


def snippet(model: Path) -> str:
    """The lines to add by hand."""
    return f"tts:\n  engine: piper\n  piper:\n    model: {_quote(model)}\n"


def _quote(path: Path) -> str:
    return json.dumps(str(path), ensure_ascii=False)


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _content(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _set_key(
    block: list[str], indent: str, key: str, value: str, insert_at: int, add: bool = True
) -> list[str]:
    pattern = re.compile(rf"^{re.escape(indent)}{key}\s*:(?!\S)")
    for i, line in enumerate(block):
        if pattern.match(line) and _indent(line) == indent:
            block[i] = f"{indent}{key}: {value}\n"  # its old comment described the old value
            return block
    if add:
        block.insert(insert_at, f"{indent}{key}: {value}\n")
    return block


def set_piper_voice(text: str, model: Path, config: Path | None = None) -> str:
    """``text`` (a chacha.yaml) with the Piper voice switched on; raises CannotEdit."""
    if text and not text.endswith("\n"):
        text += "\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if _TOP_TTS.match(line.rstrip("\r\n"))), None)
    if start is None:
        if _ANY_TTS.search(text):
            raise CannotEdit("its tts section is written inline (flow style)")
        gap = "\n" if text.strip() else ""
        return text + gap + "# 차차's own voice (set by `chacha voice install`)\n" + snippet(model)
    end = start + 1
    while end < len(lines) and (not _content(lines[end]) or lines[end][0] in " \t"):
        end += 1
    block = lines[start + 1 : end]
    content = [line for line in block if _content(line)]
    indent = _indent(content[0]) if content else "  "
    if not indent:
        indent = "  "
    block = _set_key(block, indent, "engine", "piper", 0)

    piper_at = next(
        (
            i
            for i, line in enumerate(block)
            if re.match(rf"^{re.escape(indent)}piper\s*:", line) and _indent(line) == indent
        ),
        None,
    )
    if piper_at is None:
        engine_at = next(
            i for i, line in enumerate(block) if re.match(rf"^{re.escape(indent)}engine\s*:", line)
        )
        block[engine_at + 1 : engine_at + 1] = [
            f"{indent}piper:\n",
            f"{indent}{indent}model: {_quote(model)}\n",
        ]
    else:
        after = block[piper_at].split(":", 1)[1].strip()
        if after.split("#", 1)[0].strip() in ("{}", "null", "~"):
            block[piper_at] = f"{indent}piper:\n"
        elif after and not after.startswith("#"):
            raise CannotEdit("its tts.piper section is written inline (flow style)")
        sub_end = piper_at + 1
        while sub_end < len(block) and (
            not _content(block[sub_end]) or len(_indent(block[sub_end])) > len(indent)
        ):
            sub_end += 1
        sub = block[piper_at + 1 : sub_end]
        sub_content = [line for line in sub if _content(line)]
        inner = _indent(sub_content[0]) if sub_content else indent + indent
        sub = _set_key(sub, inner, "model", _quote(model), 0)
        if config is not None:
            sub = _set_key(sub, inner, "config", _quote(config), 0, add=False)
        block[piper_at + 1 : sub_end] = sub
    return "".join(lines[: start + 1] + block + lines[end:])


def check_edit(text: str, model: Path) -> None:
    """The edited file parses and says engine piper with this model; CannotEdit otherwise."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise CannotEdit(f"the edited file would not parse ({' '.join(str(exc).split())[:120]})") from None
    tts = data.get("tts") if isinstance(data, dict) else None
    piper = tts.get("piper") if isinstance(tts, dict) else None
    if not (
        isinstance(tts, dict)
        and tts.get("engine") == "piper"
        and isinstance(piper, dict)
        and Path(str(piper.get("model"))) == model
    ):
        raise CannotEdit("the edit did not come out as intended")
