# SPDX-License-Identifier: GPL-3.0-or-later
"""How well the doll hears: character error rate and speed over a folder of recordings.

The folder holds the recordings and a ``transcripts.tsv`` that says what was said
in each, one recording a line::

    # comment lines and blank lines are skipped
    ko-read-sentence.wav<TAB>그는 이리저리 피하면서 길 한 옆으로 걸어갔다

:func:`evaluate` has every recording transcribed, cleans the text as the doll
would (:func:`device.stt.cleanup.clean_transcript`) and scores it with the pooled
CER of :mod:`device.cer`; ``chacha bench stt DIR`` prints the result.
"""

from __future__ import annotations

import statistics
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device.bench.cer import cer, pooled_cer
from device.errors import STTError
from device.stt.cleanup import clean_transcript
from device.stt.transcript import Transcript

__all__ = ["FileResult", "STTBenchReport", "TRANSCRIPTS", "evaluate", "load_transcripts"]

TRANSCRIPTS = "transcripts.tsv"
_FORMAT_HINT = "write one line per recording: file<TAB>what was said"


def load_transcripts(folder: Path) -> list[tuple[Path, str]]:
    """(recording, reference text) for every line of ``folder/transcripts.tsv``.

    Paths in the file are relative to ``folder``. Raises :class:`STTError` when the
    file is missing or unreadable, a line has no tab or no file name, a listed
    recording does not exist, or no recording is listed at all.
    """
    tsv = folder / TRANSCRIPTS
    if not tsv.is_file():
        raise STTError(f"no {TRANSCRIPTS} in {folder} — {_FORMAT_HINT}")
    try:
        lines = tsv.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as e:
        raise STTError(f"{tsv} is not UTF-8 text ({e}) — save it as UTF-8") from e
    except OSError as e:
        raise STTError(f"cannot read {tsv} ({e})") from e
    entries: list[tuple[Path, str]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{tsv}, line {number}"
        if "\t" not in line:
            raise STTError(f"{where}: no tab between the file name and the text — {_FORMAT_HINT}")
        name, text = (part.strip() for part in line.split("\t", 1))
        if not name:
            raise STTError(f"{where}: no file name before the tab — {_FORMAT_HINT}")
        path = folder / name
        if not path.is_file():
            raise STTError(f"{where}: {name} not found in {folder} — fix the file name or remove the line")
        entries.append((path, text))
    if not entries:
        raise STTError(f"{tsv} lists no recordings — {_FORMAT_HINT}")
    return entries


@dataclass(frozen=True)
class FileResult:
    """One recording: what was said, what was heard, and how fast."""

    path: Path  # as listed in transcripts.tsv, relative to the folder
    reference: str
    hypothesis: str  # the recogniser's text as it came
    cleaned: str  # after clean_transcript(); the CER is computed on this
    cer: float
    audio_s: float
    elapsed_s: float
    final_latency_s: float

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path.as_posix(),
            "reference": self.reference,
            "hypothesis": self.hypothesis,
            "cleaned": self.cleaned,
            "cer": self.cer,
            "audio_s": self.audio_s,
            "elapsed_s": self.elapsed_s,
            "final_latency_s": self.final_latency_s,
        }


@dataclass(frozen=True)
class STTBenchReport:
    """Accuracy and speed of one recogniser over a folder of recordings."""

    engine: str  # the Transcript.engine of the files; several joined by "+"
    folder: Path
    files: tuple[FileResult, ...]
    pooled_cer: float  # all character edits / all reference characters
    median_final_latency_s: float
    total_audio_s: float
    total_elapsed_s: float
    real_time_factor: float | None  # total elapsed / total audio; None without audio

    def as_json(self) -> dict[str, Any]:
        """The report as plain JSON types (``json.dumps`` takes it as it is)."""
        return {
            "engine": self.engine,
            "folder": str(self.folder),
            "pooled_cer": self.pooled_cer,
            "median_final_latency_s": self.median_final_latency_s,
            "total_audio_s": self.total_audio_s,
            "total_elapsed_s": self.total_elapsed_s,
            "real_time_factor": self.real_time_factor,
            "files": [result.as_json() for result in self.files],
        }

    def as_table(self) -> str:
        """A plain-text table: one row per recording, then the pooled line."""
        header = ("file", "audio s", "latency s", "CER", "heard (cleaned)")
        rows = [
            (
                result.path.as_posix(),
                f"{result.audio_s:.1f}",
                f"{result.final_latency_s:.2f}",
                f"{result.cer:.1%}",
                result.cleaned or "(nothing)",
            )
            for result in self.files
        ]
        rtf = "n/a" if self.real_time_factor is None else f"{self.real_time_factor:.2f}"
        pooled = (
            f"pooled ({len(self.files)} file{'' if len(self.files) == 1 else 's'})",
            f"{self.total_audio_s:.1f}",
            f"{self.median_final_latency_s:.2f}",
            f"{self.pooled_cer:.1%}",
            f"median latency; real-time factor {rtf}",
        )
        widths = [max(_width(row[i]) for row in (header, *rows, pooled)) for i in range(4)]

        def line(row: tuple[str, ...]) -> str:
            cells = [_pad(row[0], widths[0])]
            cells += [_pad(cell, width, right=True) for cell, width in zip(row[1:4], widths[1:], strict=True)]
            return "  ".join([*cells, row[4]]).rstrip()

        rule = "  ".join("-" * width for width in widths) + "  " + "-" * 15
        return "\n".join([f"engine: {self.engine}", line(header), rule, *map(line, rows), rule, line(pooled)])


def _width(text: str) -> int:
    """Columns ``text`` takes in a terminal: Hangul and other wide characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int, *, right: bool = False) -> str:
    fill = " " * (width - _width(text))
    return fill + text if right else text + fill


def _relative(path: Path, folder: Path) -> Path:
    try:
        return path.relative_to(folder)
    except ValueError:  # an absolute path in transcripts.tsv
        return path


def evaluate(folder: Path, transcribe: Callable[[Path], Transcript]) -> STTBenchReport:
    """Transcribe every recording listed in ``folder/transcripts.tsv`` and score it.

    ``transcribe`` turns one recording into a :class:`~device.stt.Transcript`
    (for example ``VoskTranscriber(...).transcribe_file``); its errors are not
    caught. Raises :class:`STTError` for a bad ``transcripts.tsv``.
    """
    results = []
    engines: list[str] = []
    for path, reference in load_transcripts(folder):
        transcript = transcribe(path)
        cleaned = clean_transcript(transcript.text, transcript.engine)
        if transcript.engine not in engines:
            engines.append(transcript.engine)
        results.append(
            FileResult(
                path=_relative(path, folder),
                reference=reference,
                hypothesis=transcript.text,
                cleaned=cleaned,
                cer=cer(reference, cleaned),
                audio_s=transcript.audio_s,
                elapsed_s=transcript.elapsed_s,
                final_latency_s=transcript.final_latency_s,
            )
        )
    total_audio = sum(result.audio_s for result in results)
    total_elapsed = sum(result.elapsed_s for result in results)
    return STTBenchReport(
        engine="+".join(engines),
        folder=folder,
        files=tuple(results),
        pooled_cer=pooled_cer((result.reference, result.cleaned) for result in results),
        median_final_latency_s=statistics.median(result.final_latency_s for result in results),
        total_audio_s=total_audio,
        total_elapsed_s=total_elapsed,
        real_time_factor=total_elapsed / total_audio if total_audio > 0 else None,
    )
