# SPDX-License-Identifier: GPL-3.0-or-later
"""Korean utterances with a pause in the middle, for the end-of-turn benchmark.

Built at run time, the same every time, into a folder (WAVs and ``items.json``):

- **real**: the licensed sample (``samples/ko-read-sentence.wav``) with a pause spliced in at
  one word boundary. The boundaries come from Vosk's word timings, Vosk's morphemes grouped
  into words the way the doll's text cleaning joins them ("그 는" → "그는"); each cut is moved
  to the quietest 10 ms within 50 ms of the boundary.
- **espeak**: short conversational sentences spoken by espeak-ng's Korean voice phrase by
  phrase, joined with the same pauses at one phrase boundary (the other phrases follow each
  other with no pause).
- every utterance also **whole** (no pause), for the delay after a finished sentence.

Each utterance is paused at one boundary only, for each of :data:`PAUSES_MS`. Pauses are
not digital silence: Gaussian noise at the sample's own noise floor (its quietest 30 ms
frames), seeded by the item's name; the espeak speech gets the same noise all through, and
every item ends with :data:`TAIL_S` of it. Every item knows where her speech truly ends and
where its last stretch of speech begins, in samples.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from device.audio import load_audio, to_float, to_int16
from device.stt.cleanup import clean_transcript
from tts.audio import power_dbfs, write_wav

RATE = 16000
PAUSES_MS = (300, 450, 600, 800)
TAIL_S = 2.0  # noise after the end of her speech
MIN_NOISE_DBFS = -90.0  # about one int16 step: the quietest noise that is not digital silence
LEAD_S = 0.5  # noise before the espeak speech (the real sample has its own)
SAMPLE = Path("samples/ko-read-sentence.wav")
MANIFEST = "items.json"

SENTENCES: tuple[tuple[str, ...], ...] = (
    ("버스에서 내려서", "어떻게", "찾아가죠?"),
    ("오늘 학교에서", "친구랑", "싸웠는데", "기분이 안 좋아."),
    ("내일 아침에", "비가 오면", "우산 좀 챙겨 줘."),
    ("점심은", "김치찌개 먹고", "싶어."),
    ("엄마가", "저녁에", "전화한다고 했어."),
    ("이번 주말에는", "그냥 집에서", "쉬고 싶어요."),
    ("아까 말한 거", "기억나?"),
    ("음", "그러니까", "나도 잘 모르겠어."),
)
"""Phrases of each espeak sentence; a pause goes between two of them."""

_CUT_SEARCH_S = 0.05  # a real cut may move this far to the quietest spot near the boundary
_CUT_WINDOW_S = 0.01
_FADE_S = 0.005  # the speech fades out and in over this much at a cut, so the cut cannot click
_FRAME_S = 0.03


@dataclass(frozen=True)
class Item:
    """One utterance: its audio and where her speech is."""

    name: str
    source: str  # real | espeak (the paused set) | a corpus source's id
    utterance: str  # which utterance it is made from ("real", "espeak-1", …)
    pause_ms: int  # 0: whole, no pause
    boundary: int  # which boundary the pause is at (1 = after the first word/phrase; 0: whole)
    text: str  # what she says
    before_pause: str  # what she has said when the pause begins ("" when whole)
    speech_end: int  # sample index just after her speech ends
    last_segment_start: int  # where the speech after the pause begins (whole: where speech begins)
    pause_start: int | None  # the pause, in samples (None when whole)
    pause_end: int | None
    samples: np.ndarray
    speaker: str = ""  # who is speaking (a corpus's speaker id; "" for the sample and espeak-ng)
    split: str = ""  # tune | test (a corpus's); "" for the paused set
    natural: bool = False  # the pause is her own (a corpus recording's), not spliced in

    @property
    def paused(self) -> bool:
        return self.pause_ms > 0

    def as_json(self) -> dict:
        entry = asdict(self)
        del entry["samples"]
        return entry


def noise_floor_dbfs(samples: np.ndarray, rate: int = RATE) -> float:
    """The level of the quietest tenth of a recording's 30 ms frames (their median, dBFS), and
    at least ``MIN_NOISE_DBFS``: a pause is never digital silence."""
    frame = round(rate * _FRAME_S)
    usable = len(samples) // frame * frame
    frames = to_float(samples[:usable], np.float64).reshape(-1, frame)
    levels = np.sort(power_dbfs((frames**2).mean(axis=1)))
    return max(MIN_NOISE_DBFS, float(np.median(levels[: max(1, len(levels) // 10)])))


def noise(count: int, floor_dbfs: float, seed_text: str) -> np.ndarray:
    """``count`` samples of Gaussian noise at ``floor_dbfs`` (float, full scale 1.0), seeded."""
    rng = np.random.default_rng(zlib.crc32(seed_text.encode("utf-8")))
    return rng.normal(0.0, 10 ** (floor_dbfs / 20), count)


def _fade(speech: np.ndarray, *, out: bool, rate: int = RATE) -> np.ndarray:
    """``speech`` (float) with its last (``out``) or first ``_FADE_S`` ramped to nothing."""
    n = min(len(speech), round(rate * _FADE_S))
    if n == 0:
        return speech
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n))  # 0 → 1
    result = speech.copy()
    if out:
        result[-n:] *= ramp[::-1]
    else:
        result[:n] *= ramp
    return result


def _splice(before: np.ndarray, after: np.ndarray, pause: np.ndarray) -> np.ndarray:
    """Float speech ``before`` and ``after`` with the float ``pause`` between them, faded at the cut."""
    return np.concatenate([_fade(before, out=True), pause, _fade(after, out=False)])


def _quietest(samples: np.ndarray, at: int, rate: int = RATE) -> int:
    """The start of the quietest ``_CUT_WINDOW_S`` within ``_CUT_SEARCH_S`` of sample ``at``."""
    window = round(rate * _CUT_WINDOW_S)
    reach = round(rate * _CUT_SEARCH_S)
    x = to_float(samples, np.float64) ** 2
    best, best_energy = at, np.inf
    for start in range(max(0, at - reach), min(len(samples) - window, at + reach) + 1, 16):
        energy = x[start : start + window].sum()
        if energy < best_energy:
            best, best_energy = start, energy
    return best + window // 2


def word_boundaries(words: Sequence) -> list[tuple[float, str]]:
    """(time, text before it) of every boundary between two of the doll's words.

    ``words`` are Vosk's (:class:`device.stt.vosk.Word`); Vosk writes Korean in morphemes, so a
    boundary counts only where the doll's text cleaning keeps the space ("그 는" is one word).
    """
    tokens = [w.text for w in words]
    whole = clean_transcript(" ".join(tokens), "vosk")
    found = []
    for i in range(1, len(tokens)):
        before = clean_transcript(" ".join(tokens[:i]), "vosk")
        after = clean_transcript(" ".join(tokens[i:]), "vosk")
        if f"{before} {after}" == whole:
            found.append(((words[i - 1].end_s + words[i].start_s) / 2, before))
    return found


def real_items(
    samples: np.ndarray, words: Sequence, text: str, pauses_ms: Sequence[int] = PAUSES_MS
) -> list[Item]:
    """The real recording whole and with each pause at each word boundary Vosk found.

    ``text`` is what she says (the reference transcript): the text before a pause is the
    reference up to the word boundary that lines up with Vosk's (:func:`reference_prefix`).
    """
    floor = noise_floor_dbfs(samples)
    speech = to_float(samples, np.float64)
    start, end = speech_edges(samples)
    tail = noise(round(RATE * TAIL_S), floor, "real/tail")
    items = [
        Item(
            "real-whole", "real", "real", 0, 0, text, "", end, start, None, None,
            to_int16(np.concatenate([speech, tail])),
        )
    ]  # fmt: skip
    heard = clean_transcript(" ".join(w.text for w in words), "vosk")
    for number, (at_s, heard_before) in enumerate(word_boundaries(words), start=1):
        cut = _quietest(samples, round(at_s * RATE))
        before_text = reference_prefix(text, heard, heard_before) if text else heard_before
        for pause_ms in pauses_ms:
            name = f"real-b{number}-{pause_ms}ms"
            gap = round(RATE * pause_ms / 1000)
            pause = noise(gap, floor, name)
            audio = np.concatenate([_splice(speech[:cut], speech[cut:], pause), tail])
            items.append(
                Item(
                    name, "real", "real", pause_ms, number, text, before_text, end + gap,
                    cut + gap, cut, cut + gap, to_int16(audio),
                )
            )  # fmt: skip
    return items


def reference_prefix(reference: str, heard: str, heard_before: str) -> str:
    """The words of ``reference`` said before the point that is the end of ``heard_before``
    in ``heard`` (a recogniser's text of the same speech, mistakes and all).

    The two texts are lined up character by character (spaces aside) with the fewest edits,
    and the point is moved to the nearest word boundary of ``reference``.
    """
    ref, hyp = reference.replace(" ", ""), heard.replace(" ", "")
    at = len(heard_before.replace(" ", ""))
    # cost[i][j]: fewest edits turning ref[:i] into hyp[:j]
    cost = [[i + j if i == 0 or j == 0 else 0 for j in range(len(hyp) + 1)] for i in range(len(ref) + 1)]
    for i in range(1, len(ref) + 1):
        for j in range(1, len(hyp) + 1):
            cost[i][j] = min(
                cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]), cost[i - 1][j] + 1, cost[i][j - 1] + 1
            )
    i, j = len(ref), len(hyp)
    while j > at:  # walk the cheapest path back to the point in hyp
        if i and cost[i][j] == cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            i, j = i - 1, j - 1
        elif cost[i][j] == cost[i][j - 1] + 1:
            j -= 1
        else:
            i -= 1
    words = reference.split()
    ends = np.cumsum([len(w) for w in words])
    count = int(np.argmin(np.abs(ends - i))) + 1
    return " ".join(words[:count])


def speech_edges(samples: np.ndarray, floor_dbfs: float = -45.0) -> tuple[int, int]:
    """Where her speech starts and ends in a recording: the first 30 ms frame louder than
    ``floor_dbfs``, and the sample just after the last one ((0, 0) when none is)."""
    frame = round(RATE * _FRAME_S)
    usable = len(samples) // frame * frame
    frames = to_float(samples[:usable], np.float64).reshape(-1, frame)
    loud = np.nonzero(power_dbfs((frames**2).mean(axis=1)) > floor_dbfs)[0]
    if not len(loud):
        return 0, 0
    return int(loud[0] * frame), int((loud[-1] + 1) * frame)


def _trim(samples: np.ndarray, floor_dbfs: float = -50.0) -> np.ndarray:
    """``samples`` without the quiet before and after the speech (10 ms frames)."""
    frame = RATE // 100
    usable = len(samples) // frame * frame
    frames = to_float(samples[:usable], np.float64).reshape(-1, frame)
    loud = np.nonzero(power_dbfs((frames**2).mean(axis=1)) > floor_dbfs)[0]
    if not len(loud):
        return samples[:0]
    return samples[loud[0] * frame : (loud[-1] + 1) * frame]


def espeak_phrases(folder: Path, sentences: Sequence[Sequence[str]] = SENTENCES) -> list[list[np.ndarray]]:
    """Every phrase spoken by espeak-ng (its Korean voice, as the doll sets it), 16 kHz, trimmed.

    The raw audio is kept in ``folder/espeak/`` and read back at 16 kHz.
    """
    from tts.espeak import EspeakEngine

    engine = EspeakEngine()
    phrases = []
    for s, sentence in enumerate(sentences, start=1):
        audio = []
        for p, phrase in enumerate(sentence, start=1):
            path = folder / "espeak" / f"{s}-{p}.wav"
            write_wav(path, engine.synthesize_sentence(phrase).samples, engine.sample_rate)
            audio.append(_trim(load_audio(path, sample_rate=RATE)))
        phrases.append(audio)
    return phrases


def espeak_items(
    phrases: Sequence[Sequence[np.ndarray]],
    floor_dbfs: float,
    sentences: Sequence[Sequence[str]] = SENTENCES,
    pauses_ms: Sequence[int] = PAUSES_MS,
) -> list[Item]:
    """Each sentence whole (its phrases back to back) and with each pause at each phrase boundary."""
    items = []
    lead = round(RATE * LEAD_S)
    tail = round(RATE * TAIL_S)
    for s, (sentence, audio) in enumerate(zip(sentences, phrases, strict=True), start=1):
        parts = [to_float(a, np.float64) for a in audio]
        text = " ".join(sentence)
        utterance = f"espeak-{s}"
        variants = [(0, 0)] + [(b, ms) for b in range(1, len(parts)) for ms in pauses_ms]
        for boundary, pause_ms in variants:
            name = f"{utterance}-whole" if not pause_ms else f"{utterance}-b{boundary}-{pause_ms}ms"
            if pause_ms:
                gap = round(RATE * pause_ms / 1000)
                before = np.concatenate(parts[:boundary])
                after = np.concatenate(parts[boundary:])
                speech = _splice(before, after, np.zeros(gap))
                pause_start, pause_end = lead + len(before), lead + len(before) + gap
                last_start = pause_end
                before_text = " ".join(sentence[:boundary])
            else:
                speech = np.concatenate(parts)
                pause_start = pause_end = None
                last_start = lead
                before_text = ""
            audio_f = np.concatenate([np.zeros(lead), speech, np.zeros(tail)])
            audio_f += noise(len(audio_f), floor_dbfs, name)
            items.append(
                Item(
                    name, "espeak", utterance, pause_ms, boundary, text, before_text,
                    lead + len(speech), last_start, pause_start, pause_end, to_int16(audio_f),
                )
            )  # fmt: skip
    return items


def build_set(
    folder: Path,
    vosk,
    *,
    sample: Path = SAMPLE,
    sample_text: str | None = None,
    sentences: Sequence[Sequence[str]] = SENTENCES,
    pauses_ms: Sequence[int] = PAUSES_MS,
    espeak: bool = True,
) -> list[Item]:
    """Build the whole set into ``folder`` (WAVs and ``items.json``) and return it.

    ``vosk`` (a :class:`device.stt.vosk.VoskTranscriber`) finds the sample's word boundaries;
    ``sample_text`` defaults to the sample's line in the ``transcripts.tsv`` beside it.
    """
    samples = load_audio(sample, sample_rate=RATE)
    if sample_text is None:
        sample_text = _reference(sample)
    items = real_items(samples, vosk.words(samples), sample_text, pauses_ms)
    if espeak and sentences:
        phrases = espeak_phrases(folder, sentences)
        items += espeak_items(phrases, noise_floor_dbfs(samples), sentences, pauses_ms)
    write_set(folder, items)
    return items


def _reference(sample: Path) -> str:
    from device.bench.stt import load_transcripts

    for path, text in load_transcripts(sample.parent):
        if path.name == sample.name:
            return text
    return ""


def write_set(folder: Path, items: Sequence[Item]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for item in items:
        write_wav(folder / f"{item.name}.wav", item.samples, RATE)
    manifest = [{**item.as_json(), "file": f"{item.name}.wav"} for item in items]
    text = json.dumps(manifest, ensure_ascii=False, indent=1) + "\n"
    (folder / MANIFEST).write_text(text, encoding="utf-8")


def load_set(folder: Path) -> list[Item]:
    """A set written by :func:`build_set`."""
    entries = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    items = []
    for entry in entries:
        file = entry.pop("file")
        items.append(Item(**entry, samples=load_audio(folder / file, sample_rate=RATE)))
    return items
