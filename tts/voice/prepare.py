# SPDX-License-Identifier: GPL-3.0-or-later
"""`chacha voice prepare`: reviewed clips → a Piper/LJSpeech dataset, and a report of what was left out.

Input: every row of ``recorded/review.tsv`` and ``imported/review.tsv`` with status ``ok``
(and ``todo`` only with ``accept_all``). For each clip:

1. read it (any format and rate), mono, 22.05 kHz;
2. reject it when more than 0.1 % of its samples sit at full scale (clipped), when no speech
   is found in it, or when its SNR is under ``min_snr_db`` (speech-frame power over the power
   of its quietest 10 % of 20 ms frames, measured before trimming);
3. trim the silence around the speech, keeping 0.15 s;
4. reject it when what is left is under 1 s or over 15 s;
5. make the text what the voice will be given at run time (:mod:`tts.voice.speech_text`) and
   reject it when something in it cannot be spoken;
6. normalise the loudness: one gain for the whole clip so that the RMS of its speech frames
   is -20 dBFS, lowered where needed so no peak passes -1 dBFS (no compression, no
   limiter), and write ``dataset/wavs/<id>.wav`` (16-bit PCM, 22.05 kHz mono).

Output: ``dataset/metadata.csv`` (``id|text``, no header), ``dataset/wavs/``, and
``dataset/report.json`` (kept clips, minutes, every rejected clip with its reason), also
printed as a table. The dataset is rebuilt from scratch each time.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tts.voice import levels
from tts.voice.errors import UnreadableAudio, VoiceError
from tts.voice.review import read_review
from tts.voice.speech_text import training_text
from tts.voice.workspace import SAMPLE_RATE, Load, VoiceDir

MIN_CLIP_S = 1.0
MAX_CLIP_S = 15.0
MIN_SNR_DB = 20.0
TARGET_RMS_DB = -20.0
PEAK_LIMIT_DB = -1.0

Say = Callable[[str], None]


@dataclass
class Rejected:
    clip: str
    reason: str


@dataclass
class PrepareReport:
    kept: int = 0
    seconds: float = 0.0
    rejected: list[Rejected] = field(default_factory=list)
    not_reviewed: int = 0
    skipped_by_you: int = 0
    sources: dict[str, int] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    @property
    def minutes(self) -> float:
        return self.seconds / 60

    def as_json(self) -> dict:
        data = asdict(self)
        data["minutes"] = round(self.minutes, 2)
        data["seconds"] = round(self.seconds, 2)
        data["rejected_by_reason"] = dict(Counter(_reason_kind(r.reason) for r in self.rejected))
        return data

    def table(self) -> str:
        lines = [
            f"{'kept':<22}{self.kept:>6} clips  {self.minutes:6.1f} min",
            f"{'rejected':<22}{len(self.rejected):>6} clips",
        ]
        for kind, count in sorted(Counter(_reason_kind(r.reason) for r in self.rejected).items()):
            lines.append(f"  {kind:<20}{count:>6}")
        if self.not_reviewed:
            lines.append(f"{'not reviewed (todo)':<22}{self.not_reviewed:>6} clips (not used)")
        if self.skipped_by_you:
            lines.append(f"{'skipped by you':<22}{self.skipped_by_you:>6} clips")
        for rejected in self.rejected[:20]:
            lines.append(f"  ✗ {rejected.clip}: {rejected.reason}")
        if len(self.rejected) > 20:
            lines.append(f"  … and {len(self.rejected) - 20} more in report.json")
        return "\n".join(lines)


def _reason_kind(reason: str) -> str:
    return reason.split(" (", 1)[0].split(":", 1)[0]


def check_clip(samples: np.ndarray, raw_text: str, *, min_snr_db: float = MIN_SNR_DB):
    """``(int16 samples ready for training, text, None)`` or ``(None, None, reason)``."""
    clipped = levels.clipped_fraction(samples)
    if clipped > 0.001:
        return None, None, f"clipped ({clipped * 100:.2f} % of samples at full scale)"
    analysis = levels.analyse(samples, SAMPLE_RATE)
    if not analysis.has_speech:
        return None, None, "no speech (silence or steady noise only)"
    if analysis.snr_db < min_snr_db:
        return (
            None,
            None,
            f"low SNR ({analysis.snr_db:.0f} dB, under {min_snr_db:.0f} dB: too much background noise)",
        )
    trimmed = levels.trim(samples, analysis)
    seconds = len(trimmed) / SAMPLE_RATE
    if seconds < MIN_CLIP_S:
        return None, None, f"too short ({seconds:.2f} s of speech, under {MIN_CLIP_S:g} s)"
    if seconds > MAX_CLIP_S:
        return None, None, f"too long ({seconds:.1f} s, over {MAX_CLIP_S:g} s: split it)"
    text, problem = training_text(raw_text)
    if problem:
        return None, None, f"text: {problem}"
    ready = levels.normalise(trimmed, SAMPLE_RATE, target_db=TARGET_RMS_DB, peak_limit_db=PEAK_LIMIT_DB)
    return ready, text, None


def prepare_dataset(
    vdir: VoiceDir,
    *,
    load: Load,
    accept_all: bool = False,
    min_snr_db: float = MIN_SNR_DB,
    say: Say = print,
) -> PrepareReport:
    """Build ``dataset/`` from the reviewed clips; raises VoiceError when nothing can be used.

    ``load(path, sample_rate)`` reads a clip as int16 mono (:class:`UnreadableAudio` if it cannot).
    """
    reviews = vdir.review_files()
    entries: list[tuple[str, Path, str]] = []  # (id, audio path, text)
    report = PrepareReport(
        settings={
            "sample_rate": SAMPLE_RATE,
            "loudness": f"speech RMS to {TARGET_RMS_DB:g} dBFS, peaks at most {PEAK_LIMIT_DB:g} dBFS",
            "min_clip_s": MIN_CLIP_S,
            "max_clip_s": MAX_CLIP_S,
            "min_snr_db": min_snr_db,
            "accept_all": accept_all,
        }
    )
    todo_files: dict[Path, int] = {}
    for review in reviews:
        kind = "rec" if review.parent.name == "recorded" else "imp"
        for row in read_review(review):
            if row.status == "skip":
                report.skipped_by_you += 1
                continue
            if row.status == "todo" and not accept_all:
                report.not_reviewed += 1
                todo_files[review] = todo_files.get(review, 0) + 1
                continue
            clip_id = f"{kind}_{Path(row.clip).stem}"
            entries.append((clip_id, review.parent / row.clip, row.text))
            report.sources[kind] = report.sources.get(kind, 0) + 1

    if not entries:
        if todo_files:
            where = ", ".join(f"{n} in {p}" for p, n in todo_files.items())
            raise VoiceError(
                f"no reviewed clips yet ({where} still 'todo'): correct their text and set status to ok, "
                "or use the transcripts as they are with `chacha voice prepare --accept-all`"
            )
        raise VoiceError(
            f"nothing to prepare in {vdir.root}: record with `chacha voice record` "
            "or import recordings with `chacha voice import DIR` first"
        )

    if vdir.dataset_wavs.exists():
        shutil.rmtree(vdir.dataset_wavs)
    vdir.dataset_wavs.mkdir(parents=True)
    metadata: list[str] = []
    for clip_id, path, raw_text in entries:
        shown = str(path.relative_to(vdir.root)) if path.is_relative_to(vdir.root) else str(path)
        try:
            samples = load(path, SAMPLE_RATE)
        except UnreadableAudio as exc:
            report.rejected.append(Rejected(shown, f"unreadable ({exc})"))
            continue
        ready, text, reason = check_clip(samples, raw_text, min_snr_db=min_snr_db)
        if reason is not None:
            report.rejected.append(Rejected(shown, reason))
            continue
        _write_wav(vdir.dataset_wavs / f"{clip_id}.wav", ready)
        metadata.append(f"{clip_id}|{text}")
        report.kept += 1
        report.seconds += len(ready) / SAMPLE_RATE

    vdir.metadata.write_text("".join(line + "\n" for line in metadata), encoding="utf-8")
    vdir.report.write_text(json.dumps(report.as_json(), ensure_ascii=False, indent=1), encoding="utf-8")
    say(report.table())
    say(f"Report: {vdir.report}")
    if report.kept == 0:
        raise VoiceError(
            f"no clip passed the checks ({len(report.rejected)} rejected; reasons in {vdir.report}): "
            "fix the recordings or their text and run prepare again"
        )
    say(
        f"Dataset: {vdir.metadata} ({report.kept} clips, {report.minutes:.1f} min). "
        "Next: `chacha voice train`."
    )
    return report


def _write_wav(path: Path, samples: np.ndarray) -> None:
    import soundfile

    soundfile.write(str(path), np.asarray(samples, dtype=np.int16), SAMPLE_RATE, subtype="PCM_16")
