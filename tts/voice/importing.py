# SPDX-License-Identifier: GPL-3.0-or-later
"""`chacha voice import`: recordings he already has, cut into clips and transcribed for review.

Any WAV, FLAC or OGG (Vorbis or Opus, as Telegram voice notes are) at any rate is read,
mixed to mono and resampled to 22.05 kHz, cut at its pauses into clips of 1–15 s
(:func:`tts.voice.levels.split_on_silence`), and each clip is transcribed with the project's
speech recogniser. Clips go to ``imported/clips/``; ``imported/review.tsv`` lists them with
the recogniser's text and status ``todo``. Nothing is trained on until he has corrected the
text and set the status to ``ok`` (or accepted the transcripts as they are with
``--accept-all``). Importing the same file again does nothing.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tts.voice import levels
from tts.voice.errors import UnreadableAudio, VoiceError
from tts.voice.review import ReviewRow, clean_text, read_review, write_review
from tts.voice.workspace import SAMPLE_RATE, Load, VoiceDir

_LOGGER = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus")
Say = Callable[[str], None]


@dataclass
class ImportResult:
    files: int
    skipped_files: int  # imported before
    clips: int
    seconds: float
    review: Path


def find_recordings(sources: list[Path]) -> list[Path]:
    """Audio files named directly or found (recursively) in the folders given."""
    found: list[Path] = []
    for source in sources:
        if source.is_file():
            found.append(source)
        elif source.is_dir():
            found.extend(
                sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
            )
        else:
            raise VoiceError(f"{source} does not exist — give a folder of recordings or an audio file")
    if not found:
        names = ", ".join(str(s) for s in sources)
        raise VoiceError(
            f"no recordings in {names}: put WAV, FLAC or OGG files there (voice notes, phone recordings) "
            "or record new ones with `chacha voice record`"
        )
    return found


def _prefix(path: Path) -> str:
    """A clip-name prefix unique to the file: its name, made safe, plus a short hash of its path."""
    stem = re.sub(r"[^0-9A-Za-z가-힣_-]+", "-", path.stem).strip("-")[:40] or "audio"
    digest = hashlib.sha1(str(path.resolve()).encode("utf-8")).hexdigest()[:6]
    return f"{stem}-{digest}"


def import_recordings(
    vdir: VoiceDir,
    sources: list[Path],
    transcriber,
    *,
    load: Load,
    accept_all: bool = False,
    say: Say = print,
) -> ImportResult:
    """Cut, transcribe and list for review every recording in ``sources``.

    ``transcriber`` has ``sample_rate`` and ``transcribe(int16 samples) -> object with .text``
    (the doll's speech recognisers are such); ``load(path, sample_rate)`` reads a recording as
    int16 mono, raising :class:`UnreadableAudio` for one it cannot read (which is skipped).
    """
    files = find_recordings(sources)
    folder = vdir.imported
    review_path = folder / "review.tsv"
    rows = read_review(review_path)
    known_prefixes = {row.clip.split("/")[-1].rsplit("_", 1)[0] for row in rows}
    status = "ok" if accept_all else "todo"
    imported = skipped = clip_count = 0
    seconds = 0.0
    for path in files:
        prefix = _prefix(path)
        if prefix in known_prefixes:
            skipped += 1
            continue
        try:
            audio = load(path, SAMPLE_RATE)
        except UnreadableAudio as exc:
            say(f"  {path}: skipped, {exc}")
            continue
        spans = levels.split_on_silence(audio, SAMPLE_RATE)
        if not spans:
            say(f"  {path}: no speech found, nothing imported")
            continue
        for index, (start, end) in enumerate(spans, start=1):
            clip = audio[start:end]
            name = f"clips/{prefix}_{index:03d}.wav"
            _write_wav(folder / name, clip)
            text = _transcribe(transcriber, clip)
            rows.append(ReviewRow(name, text, status if text else "todo"))
            clip_count += 1
            seconds += len(clip) / SAMPLE_RATE
        write_review(review_path, rows)  # after every file, so an interruption loses little
        known_prefixes.add(prefix)
        imported += 1
        say(f"  {path.name}: {len(spans)} clip(s)")
    if imported:
        write_review(review_path, rows)
    return ImportResult(imported, skipped, clip_count, seconds, review_path)


def _transcribe(transcriber, clip: np.ndarray) -> str:
    rate = int(getattr(transcriber, "sample_rate", SAMPLE_RATE))
    samples = clip
    if rate != SAMPLE_RATE:
        import soxr

        samples = levels.to_int16(soxr.resample(levels.as_float(clip), SAMPLE_RATE, rate, quality="HQ"))
    try:
        return clean_text(transcriber.transcribe(samples).text)
    except Exception as exc:  # a recogniser failing on one clip must not lose the others
        _LOGGER.warning(
            "transcription failed (%s: %s); the clip is left for you to write", type(exc).__name__, exc
        )
        return ""


def _write_wav(path: Path, samples: np.ndarray) -> None:
    import soundfile

    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), np.asarray(samples, dtype=np.int16), SAMPLE_RATE, subtype="PCM_16")
