# SPDX-License-Identifier: GPL-3.0-or-later
"""``chacha bench wake``: the enrolled wake phrase (:mod:`device.doll.wake`) on real speech.

No recording of "차차야" exists to measure with, so the method is measured on other short
phrases that real speakers said several times: each speaker is enrolled on a few of her own
recordings of a phrase (cut from her sentences, as ``chacha wake enroll`` would keep them), and
then

- **detection**: her other sentences that contain the phrase are streamed whole; it counts when
  the doll wakes between the phrase's start and 0.5 s after its end;
- **false wakes per hour**: recordings without the phrase, streamed one after another through one
  detector that is never reset, as the doll hears a room; a wake anywhere is false;
- **cost**: processor time per second of audio on that stream, the VAD included, on one core
  with ``--cores 1``.

A corpus is a JSON manifest (``--corpus``): ``{"source": {...}, "phrases": {phrase: {"positives":
[{"path", "speaker", "room", "start", "end"}], "negatives": [path, ...]}}}``, paths relative to the
manifest, 16 kHz mono. Its phrases are split in two sets that share none: the **tuning** set
chooses ``loop.wake.threshold`` (the highest on a grid whose false wakes stay within
:data:`TARGET_FALSE_PER_HOUR` there), the **held-out** set reports it. Without ``--corpus`` the
bench runs on the repository's own samples (one phrase, two recordings): it proves the bench,
not the method.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.doll.wake import HOP, RATE, REFRACTORY_S, WakeDetector, template, trim

WINDOW_AFTER_S = 0.5
"""A wake up to this long after the phrase ended still counts as hearing it."""
TARGET_FALSE_PER_HOUR = 0.5
GRID = tuple(round(0.20 + 0.01 * i, 2) for i in range(26))  # 0.20 .. 0.45

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@dataclass(frozen=True, slots=True)
class Occurrence:
    """The phrase, said in ``path`` from ``start`` to ``end`` seconds."""

    path: Path
    speaker: str
    room: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Corpus:
    phrases: dict[str, list[Occurrence]]
    negatives: dict[str, list[Path]]
    source: dict


def load_corpus(manifest: Path) -> Corpus:
    """The corpus a manifest describes; a missing file or field raises ValueError saying which."""
    try:
        meta = json.loads(manifest.read_text(encoding="utf-8"))
        base = manifest.parent
        phrases, negatives = {}, {}
        for phrase, entry in meta["phrases"].items():
            phrases[phrase] = [
                Occurrence(
                    base / p["path"], str(p["speaker"]), str(p["room"]), float(p["start"]), float(p["end"])
                )
                for p in entry["positives"]
            ]
            negatives[phrase] = [base / path for path in entry["negatives"]]
    except OSError as exc:
        raise ValueError(f"cannot read the corpus manifest {manifest}: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{manifest} is not a wake corpus manifest ({exc!r} missing or wrong)") from None
    return Corpus(phrases, negatives, meta.get("source", {}))


def samples_corpus() -> Corpus:
    """The repository's own recordings: 빅스비 twice (Picovoice, Apache-2.0; samples/README.md),
    and the other samples as speech without it (22 s: far too little to count false wakes)."""
    voices = SAMPLES / "voices"
    phrase = [
        Occurrence(voices / "ko-keywords.wav", "picovoice", "keywords", 3.30, 3.95),
        Occurrence(voices / "ko-bixby.wav", "picovoice", "bixby", 0.65, 1.35),
    ]
    negatives = [
        voices / "ko-light-command.wav",
        voices / "ko-out-of-context.wav",
        SAMPLES / "ko-read-sentence.wav",
    ]
    return Corpus(
        {"빅스비": phrase}, {"빅스비": negatives}, {"what": "samples/ (Picovoice test audio, Apache-2.0)"}
    )


def _read(path: Path) -> np.ndarray:
    from device.audio import load_audio

    return load_audio(path, sample_rate=RATE)


@dataclass
class Enrolled:
    phrase: str
    speaker: str
    room: str
    templates: list[np.ndarray]
    tests: list[Occurrence]


def enrolments(corpus: Corpus, phrases: list[str], *, enrol: int) -> list[Enrolled]:
    """Per phrase and speaker: ``enrol`` of her recordings from the room she said it most in are
    enrolled; the rest are her tests. Speakers with fewer than ``enrol + 1`` are left out."""
    found = []
    for phrase in phrases:
        by_speaker: dict[str, list[Occurrence]] = defaultdict(list)
        for occurrence in corpus.phrases[phrase]:
            by_speaker[occurrence.speaker].append(occurrence)
        for speaker, occurrences in sorted(by_speaker.items()):
            if len(occurrences) < enrol + 1:
                continue
            rooms: dict[str, list[Occurrence]] = defaultdict(list)
            for occurrence in sorted(occurrences, key=lambda o: (str(o.path), o.start)):
                rooms[occurrence.room].append(occurrence)
            room = max(sorted(rooms), key=lambda r: len(rooms[r]))
            chosen = rooms[room][:enrol]
            recordings = []
            for occurrence in chosen:
                samples = _read(occurrence.path)
                cut = samples[int(occurrence.start * RATE) : int(occurrence.end * RATE)]
                recordings.append((str(occurrence.path), cut))
            clips = [trim(cut) for _, cut in recordings]  # as `chacha wake enroll` keeps them
            tests = [o for o in occurrences if o not in chosen]
            found.append(Enrolled(phrase, speaker, room, [template(c) for c in clips], tests))
    return found


def _events(trace: list[tuple[float, bool]], threshold: float) -> list[float]:
    """Where (seconds) the detector would wake at ``threshold`` (its refractory time kept)."""
    events, quiet_until = [], -1.0
    for index, (distance, speech) in enumerate(trace):
        at = (index + 1) * HOP / RATE
        if distance < threshold and speech and at >= quiet_until:
            events.append(at)
            quiet_until = at + REFRACTORY_S
    return events


def _negatives_trace(enrolled: Enrolled, negatives: list[Path], make_vad) -> tuple[list, float, float]:
    """Every frame's distance over the phrase-free stream; its length (s) and CPU (s)."""
    detector = WakeDetector(enrolled.templates, 0.0, speech=make_vad())
    detector.trace = []
    audio_s = cpu_s = 0.0
    for path in negatives:
        samples = _read(path)
        audio_s += len(samples) / RATE
        started = time.process_time()
        detector.scan(samples)
        cpu_s += time.process_time() - started
    return detector.trace, audio_s, cpu_s


def _positive_traces(enrolled: Enrolled, make_vad) -> list[tuple[Occurrence, list]]:
    traces = []
    for occurrence in enrolled.tests:
        detector = WakeDetector(enrolled.templates, 0.0, speech=make_vad())
        detector.trace = []
        detector.scan(_read(occurrence.path))
        traces.append((occurrence, detector.trace))
    return traces


def _detected(occurrence: Occurrence, events: list[float]) -> bool:
    return any(occurrence.start <= at <= occurrence.end + WINDOW_AFTER_S for at in events)


def _score(measured: list[dict], threshold: float) -> dict:
    """Detection and false wakes of a set at ``threshold``, from its traces."""
    hits = tests = false = 0
    hours = 0.0
    elsewhere = 0
    for m in measured:
        for occurrence, trace in m["positives"]:
            events = _events(trace, threshold)
            tests += 1
            hit = _detected(occurrence, events)
            hits += hit
            elsewhere += sum(not (occurrence.start <= at <= occurrence.end + WINDOW_AFTER_S) for at in events)
        false += len(_events(m["negatives"], threshold))
        hours += m["negatives_s"] / 3600
    return {
        "threshold": threshold,
        "detected": hits,
        "tests": tests,
        "detection": hits / tests if tests else None,
        "false_wakes": false,
        "hours": hours,
        "false_per_hour": false / hours if hours else None,
        "wakes_elsewhere_in_her_sentences": elsewhere,
    }


def measure(
    enrolled: list[Enrolled], corpus: Corpus, make_vad, progress: Callable[[str], None]
) -> list[dict]:
    measured = []
    for e in enrolled:
        progress(f"  {e.phrase} / {e.speaker}: {len(e.templates)} enrolled, {len(e.tests)} tests")
        trace, audio_s, cpu_s = _negatives_trace(e, corpus.negatives[e.phrase], make_vad)
        measured.append(
            {
                "phrase": e.phrase,
                "speaker": e.speaker,
                "room": e.room,
                "positives": _positive_traces(e, make_vad),
                "negatives": trace,
                "negatives_s": audio_s,
                "cpu_share": cpu_s / audio_s if audio_s else None,
            }
        )
    return measured


def choose(tuning: list[dict]) -> tuple[float, list[dict]]:
    """The highest threshold on :data:`GRID` whose false wakes per hour on the tuning set stay
    within :data:`TARGET_FALSE_PER_HOUR` (the lowest on the grid if none does), and the grid."""
    grid = [_score(tuning, t) for t in GRID]
    within = [
        g for g in grid if g["false_per_hour"] is not None and g["false_per_hour"] <= TARGET_FALSE_PER_HOUR
    ]
    best = max(within, key=lambda g: g["threshold"]) if within else grid[0]
    return best["threshold"], grid


def _rows(measured: list[dict], threshold: float) -> list[dict]:
    rows = []
    for m in measured:
        row = _score([m], threshold)
        row.update(phrase=m["phrase"], speaker=m["speaker"], cpu_share=m["cpu_share"])
        rows.append(row)
    return rows


def run(
    corpus: Corpus,
    *,
    enrol: int = 3,
    threshold: float | None = None,
    make_vad: Callable[[], object] | None = None,
    progress: Callable[[str], None] = print,
) -> dict:
    """Tune on half the phrases and report on the other half (one phrase: no tuning, the given or
    default threshold). ``make_vad``: a new VAD for each stream (Silero by default)."""
    from device.doll.settings import LoopSettings, WakeSettings
    from device.doll.vad import create_vad

    make_vad = make_vad or (lambda: create_vad(LoopSettings(), RATE))
    phrases = sorted(corpus.phrases)
    tuning_phrases, held_out_phrases = phrases[0::2], phrases[1::2]
    if not held_out_phrases:
        tuning_phrases, held_out_phrases = [], phrases
    report: dict = {"source": corpus.source, "enrol": enrol, "target_false_per_hour": TARGET_FALSE_PER_HOUR}
    grid: list[dict] = []
    if tuning_phrases:
        progress(f"tuning set: {', '.join(tuning_phrases)}")
        tuning = measure(enrolments(corpus, tuning_phrases, enrol=enrol), corpus, make_vad, progress)
        chosen, grid = choose(tuning)
        report["tuning"] = _score(tuning, chosen) | {"phrases": tuning_phrases}
    else:
        chosen = WakeSettings().threshold
    if threshold is not None:
        chosen = threshold
    progress(f"held-out set: {', '.join(held_out_phrases)} (threshold {chosen:g})")
    held_out = measure(enrolments(corpus, held_out_phrases, enrol=enrol), corpus, make_vad, progress)
    report["threshold"] = chosen
    report["grid"] = grid
    report["held_out"] = _score(held_out, chosen) | {"phrases": held_out_phrases}
    report["held_out_rows"] = _rows(held_out, chosen)
    report["held_out_grid"] = [_score(held_out, t) for t in GRID]
    shares = [m["cpu_share"] for m in held_out if m["cpu_share"] is not None]
    report["cpu_share_median"] = statistics.median(shares) if shares else None
    return report


def table(report: dict) -> str:
    def line(name: str, s: dict) -> str:
        detection = "n/a" if s["detection"] is None else f"{s['detection']:.1%} of {s['tests']}"
        per_hour = "n/a" if s["false_per_hour"] is None else f"{s['false_per_hour']:.2f}"
        return (
            f"{name:<10} {detection:>14}  {s['false_wakes']:>4} in {s['hours']:.2f} h = {per_hour:>6}/h  "
            f"({', '.join(s['phrases'])})"
        )

    lines = [
        f"wake phrase, enrolled on {report['enrol']} recordings; threshold {report['threshold']:g}",
        f"{'set':<10} {'detected':>14}  false wakes",
    ]
    if "tuning" in report:
        lines.append(line("tuning", report["tuning"]))
    lines.append(line("held out", report["held_out"]))
    for row in report["held_out_rows"]:
        detection = "n/a" if row["detection"] is None else f"{row['detected']}/{row['tests']}"
        lines.append(
            f"  {row['phrase']} / {row['speaker']}: {detection} detected, {row['false_wakes']} false "
            f"in {row['hours']:.2f} h, CPU {row['cpu_share']:.1%} of a core"
        )
    if report.get("cpu_share_median") is not None:
        lines.append(f"cost: {report['cpu_share_median']:.1%} of one core (median; VAD included)")
    return "\n".join(lines)
