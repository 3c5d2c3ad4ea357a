# SPDX-License-Identifier: GPL-3.0-or-later
"""Real Korean speech with pauses, for fitting and testing the end of turn.

A corpus is a manifest (JSON) of real recordings, each with its speaker and its split::

    {"sources": [{"id": "krsc", "repo": "…", "commit": "…", "licence": "…"}, …],
     "utterances": [{"path": "wav/a/1.wav", "speaker": "krsc-a", "source": "krsc",
                     "split": "tune", "text": "…" or null}, …]}

Paths are relative to the manifest's folder (or absolute). Nothing of a corpus is in the
repository: the recordings are other people's, under their own licences (docs/benchmarks.md
says which were measured). From every utterance :func:`corpus_items` makes:

- the utterance **whole**, her speech ending where Vosk's last word does (and the recording
  after it replaced by noise at its own floor): the delay after a finished sentence; when she
  paused for 300 ms or more between two words of her own, it is also a *natural* pause;
- the utterance with a pause of 300–1000 ms (drawn, seeded by its name) spliced in at up to
  ``per_utterance`` of its word boundaries (found by Vosk's alignment, as for the paused set),
  the pause being noise at the recording's own floor.

Every item keeps its speaker and split: nothing is fitted on the ``test`` split.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.audio import load_audio, to_float, to_int16
from device.bench.paused import (
    RATE,
    TAIL_S,
    Item,
    _quietest,
    _splice,
    noise,
    noise_floor_dbfs,
    word_boundaries,
)
from device.stt.cleanup import clean_transcript

PAUSE_RANGE_MS = (300, 1000)
NATURAL_PAUSE_S = 0.3  # a gap between two of her words this long is a pause of her own
SPLITS = ("tune", "test")
MAX_UTTERANCE_S = 12.0  # longer utterances are left out (the doll listens 15 s at most)


class CorpusError(ValueError):
    """A corpus manifest that cannot be used, with what is wrong."""


@dataclass(frozen=True)
class Utterance:
    path: Path
    speaker: str
    source: str
    split: str
    text: str | None


def load_manifest(path: Path) -> tuple[list[dict], list[Utterance]]:
    """The sources and utterances of a corpus manifest (``CorpusError`` says what is wrong)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        sources, entries = list(data["sources"]), list(data["utterances"])
    except FileNotFoundError:
        raise CorpusError(f"{path}: no such corpus manifest") from None
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CorpusError(f"{path}: not a corpus manifest ({exc}); see device/bench/turn_corpus.py") from None
    folder = Path(path).parent
    utterances = []
    for n, entry in enumerate(entries):
        try:
            split = entry["split"]
            if split not in SPLITS:
                raise CorpusError(f"{path}: utterance {n} has split {split!r}, not one of {SPLITS}")
            utterances.append(
                Utterance(folder / entry["path"], entry["speaker"], entry["source"], split, entry.get("text"))
            )
        except (KeyError, TypeError) as exc:
            raise CorpusError(f"{path}: utterance {n} lacks {exc}") from None
    missing = [str(u.path) for u in utterances if not u.path.is_file()]
    if missing:
        raise CorpusError(f"{path}: {len(missing)} recording(s) missing, e.g. {missing[0]}")
    return sources, utterances


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode("utf-8")))


def utterance_items(
    utterance: Utterance,
    samples: np.ndarray,
    words: Sequence,
    name: str,
    *,
    per_utterance: int = 2,
    pause_range_ms: tuple[int, int] = PAUSE_RANGE_MS,
) -> list[Item]:
    """The items of one utterance (none when Vosk heard fewer than two words in it)."""
    if len(words) < 2:
        return []
    floor = noise_floor_dbfs(samples)
    speech_end = min(len(samples), round(words[-1].end_s * RATE))
    speech_start = max(0, round(words[0].start_s * RATE))
    speech = to_float(samples[:speech_end], np.float64)
    tail = noise(round(RATE * TAIL_S), floor, f"{name}/tail")
    heard = clean_transcript(" ".join(w.text for w in words), "vosk")
    text = utterance.text or heard
    gaps = [(b.start_s - a.end_s, b.start_s) for a, b in zip(words, words[1:], strict=False)]
    natural = [(gap, start) for gap, start in gaps if gap >= NATURAL_PAUSE_S]
    longest = max(natural, default=(0.0, 0.0))

    def item(suffix, pause_ms, boundary, before, end, last_start, pause_at, audio, is_natural):
        return Item(
            f"{name}-{suffix}", utterance.source, name, pause_ms, boundary, text, before, end,
            last_start, pause_at[0], pause_at[1], to_int16(audio),
            speaker=utterance.speaker, split=utterance.split, natural=is_natural,
        )  # fmt: skip

    whole_audio = np.concatenate([speech, tail])
    if natural:
        last_start = round(longest[1] * RATE)
        gap = round(longest[0] * RATE)
        items = [
            item("whole", round(longest[0] * 1000), 0, "", speech_end, last_start,
                 (last_start - gap, last_start), whole_audio, True)
        ]  # fmt: skip
    else:
        items = [item("whole", 0, 0, "", speech_end, speech_start, (None, None), whole_audio, False)]
    boundaries = word_boundaries(words)
    rng = _rng(name)
    chosen = sorted(rng.choice(len(boundaries), min(per_utterance, len(boundaries)), replace=False))
    for b in chosen:
        at_s, before = boundaries[b]
        cut = _quietest(samples, round(at_s * RATE))
        if cut >= speech_end:
            continue
        pause_ms = int(rng.integers(pause_range_ms[0] // 10, pause_range_ms[1] // 10 + 1)) * 10
        gap = round(RATE * pause_ms / 1000)
        pause = noise(gap, floor, f"{name}/b{b + 1}")
        audio = np.concatenate([_splice(speech[:cut], speech[cut:], pause), tail])
        items.append(
            item(f"b{b + 1}-{pause_ms}ms", pause_ms, b + 1, before, speech_end + gap, cut + gap,
                 (cut, cut + gap), audio, False)
        )  # fmt: skip
    return items


def corpus_items(
    manifest: Path,
    vosk,
    *,
    per_utterance: int = 2,
    pause_range_ms: tuple[int, int] = PAUSE_RANGE_MS,
    limit: int | None = None,
) -> tuple[list[dict], list[Item]]:
    """The corpus's sources and items; ``vosk`` (a :class:`device.stt.vosk.VoskTranscriber`)
    aligns every utterance; ``limit``: at most this many utterances per speaker (the first)."""
    sources, utterances = load_manifest(manifest)
    seen: dict[str, int] = {}
    items: list[Item] = []
    for utterance in utterances:
        if limit is not None and seen.get(utterance.speaker, 0) >= limit:
            continue
        samples = load_audio(utterance.path, sample_rate=RATE)
        if len(samples) > MAX_UTTERANCE_S * RATE:
            continue
        seen[utterance.speaker] = seen.get(utterance.speaker, 0) + 1
        name = f"{utterance.speaker}-{seen[utterance.speaker]:03d}"
        items += utterance_items(
            utterance, samples, vosk.words(samples), name,
            per_utterance=per_utterance, pause_range_ms=pause_range_ms,
        )  # fmt: skip
    return sources, items
