# SPDX-License-Identifier: GPL-3.0-or-later
"""The wake phrase ("차차야", opt-in): matched on the doll against recordings of her own voice.

No model of Korean knows "차차야" (the Vosk model's vocabulary lacks it, and no recordings of it
exist to train one), so the doll is *enrolled* instead: ``chacha wake enroll`` keeps three to
ten recordings of her saying the phrase, and :class:`WakeDetector` compares the microphone with
each of them as it arrives, by dynamic time warping over cepstra (query by example). Nothing of
what it hears leaves the doll, and nothing is kept: a turn begins only once the phrase matched.

The front end is log-mel cepstra (25 ms windows every 10 ms, 40 bands, c1..c12), with the mean
of her speech frames taken out so the room and the microphone matter less. Each template is
matched by a subsequence DTW updated once per frame, in numpy over the template's frames:
every input frame advances the template by 0, 1 or 2 frames (she may say it up to three times
slower or twice as fast), at most two stays in a row, and the score is the mean cosine distance
along the best path. The phrase is heard when a template's score falls below
``loop.wake.threshold`` while the VAD hears speech over most of it. Everything is counted in
audio time (the blocks' own length), never the clock.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_LOGGER = logging.getLogger(__name__)

RATE = 16000
"""The sample rate the detector works at (the doll's microphone rate)."""
HOP = 160  # 10 ms
_WINDOW = 400  # 25 ms
_FFT = 512
_BANDS = 40
_CEPSTRA = 12  # c1..c12: c0 (loudness) is left out
_MEAN_TAU_S = 2.0  # the running mean of her speech frames
_FLOOR_RISE_DB_PER_S = 3.0
_SPEECH_OVER_FLOOR_DB = 12.0
_MAX_STAYS = 2
REFRACTORY_S = 1.0
"""After the phrase was heard, it is not heard again for this long (its own tail)."""
MIN_SPEECH_SHARE = 0.5
"""Of the audio the best match spans, at least this share must be speech to the VAD."""
WAKE_DIR = "wake"
"""Her enrolled recordings, in ``server.data_dir``."""
MIN_CLIPS, MAX_CLIPS = 3, 10
MAX_CLIP_S = 2.0
"""An enrolled recording of the phrase, its silence trimmed, may be this long at most."""
MIN_CLIP_S = 0.25
MIN_LEVEL_DBFS = -45.0
"""An enrolled recording's loudest 100 ms must reach this (else it is taken for silence)."""


def _mel_bank() -> np.ndarray:
    def mel(hz):
        return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)

    def hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    edges = hz(np.linspace(mel(80.0), mel(7600.0), _BANDS + 2))
    bins = np.fft.rfftfreq(_FFT, 1.0 / RATE)
    bank = np.zeros((_BANDS, len(bins)), np.float32)
    for band in range(_BANDS):
        low, mid, high = edges[band : band + 3]
        rising = (bins - low) / (mid - low)
        falling = (high - bins) / (high - mid)
        bank[band] = np.clip(np.minimum(rising, falling), 0.0, None)
    return bank


def _dct() -> np.ndarray:
    n = np.arange(_BANDS)
    k = np.arange(1, _CEPSTRA + 1)[:, None]
    return (np.cos(np.pi * k * (2 * n + 1) / (2 * _BANDS)) * np.sqrt(2.0 / _BANDS)).astype(np.float32)


_MEL = _mel_bank()
_DCT = _dct()
_HAMMING = np.hamming(_WINDOW).astype(np.float32)


class FrontEnd:
    """Streaming cepstra: :meth:`push` takes samples (int16 or float, :data:`RATE`) and returns
    the new frames' cepstra and their energy in dB (one row per 10 ms)."""

    def __init__(self) -> None:
        self._rest = np.zeros(0, np.float32)
        self._last = 0.0  # for pre-emphasis across blocks

    def push(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(samples)
        x = x.astype(np.float32) / 32768.0 if x.dtype == np.int16 else x.astype(np.float32)
        emphasised = np.empty_like(x)
        if len(x):
            emphasised[0] = x[0] - 0.97 * self._last
            emphasised[1:] = x[1:] - 0.97 * x[:-1]
            self._last = float(x[-1])
        buffer = np.concatenate([self._rest, emphasised])
        count = 0 if len(buffer) < _WINDOW else 1 + (len(buffer) - _WINDOW) // HOP
        if count == 0:
            self._rest = buffer
            return np.zeros((0, _CEPSTRA), np.float32), np.zeros(0, np.float32)
        frames = np.lib.stride_tricks.sliding_window_view(buffer, _WINDOW)[::HOP][:count]
        self._rest = buffer[count * HOP :]
        power = np.abs(np.fft.rfft(frames * _HAMMING, _FFT)) ** 2
        energy_db = 10.0 * np.log10(power.sum(axis=1) / _FFT + 1e-10)
        cepstra = np.log(power @ _MEL.T + 1e-8) @ _DCT.T
        return cepstra.astype(np.float32), energy_db.astype(np.float32)


def cepstra(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cepstra and frame energies of a whole recording (see :class:`FrontEnd`)."""
    return FrontEnd().push(samples)


def trim(samples: np.ndarray, *, margin_s: float = 0.05) -> np.ndarray:
    """``samples`` without the silence before and after the loudest stretch of speech: frames
    within 30 dB of the loudest count as sound."""
    _, energy = cepstra(samples)
    if not len(energy):
        return samples[:0]
    loud = np.flatnonzero(energy > energy.max() - 30.0)
    margin = int(margin_s * RATE)
    start = max(0, loud[0] * HOP - margin)
    end = min(len(samples), loud[-1] * HOP + _WINDOW + margin)
    return samples[start:end]


def template(samples: np.ndarray) -> np.ndarray:
    """A trimmed recording of the phrase as the detector matches it: unit-length cepstra with
    the recording's own mean taken out."""
    features, _ = cepstra(samples)
    return _unit(features - features.mean(axis=0))


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-6)


class _Match:
    """Subsequence DTW of every template against the stream, one column per input frame (the
    templates side by side in one array, so a frame costs a few numpy calls however many)."""

    def __init__(self, templates: Sequence[np.ndarray]) -> None:
        self.templates = np.concatenate(templates)
        lengths = [len(t) for t in templates]
        self.ends = np.cumsum(lengths) - 1
        first = self.ends - np.asarray(lengths) + 1
        self._first = np.zeros(len(self.templates), bool)
        self._first[first] = True
        self._no_skip = np.zeros(len(self.templates), bool)
        self._no_skip[first] = self._no_skip[first + 1] = True
        self.reset()

    def reset(self) -> None:
        n = len(self.templates)
        self._cost = np.full(n, np.inf)  # sum of distances along the best path ending here
        self._length = np.zeros(n)  # input frames on that path
        self._stays = np.zeros(n, np.int8)
        self._shifted_cost = np.full(n + 2, np.inf)
        self._shifted_length = np.zeros(n + 2)

    def step(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Take one input frame (unit cepstra); per template, the mean distance of the best path
        that ends at its last frame now, and how many input frames that path spans."""
        d = 1.0 - self.templates @ frame
        cost, length = self._cost, self._length
        shifted_cost, shifted_length = self._shifted_cost, self._shifted_length
        shifted_cost[2:] = cost
        shifted_length[2:] = length
        diagonal_cost, diagonal_length = shifted_cost[1:-1].copy(), shifted_length[1:-1].copy()
        diagonal_cost[self._first] = 0.0  # a new start at a template's first frame
        diagonal_length[self._first] = 0.0
        skip_cost = np.where(self._no_skip, np.inf, shifted_cost[:-2])
        skip_length = shifted_length[:-2]
        stay_cost = np.where(self._stays < _MAX_STAYS, cost, np.inf)
        stay = (stay_cost + d) / (length + 1)
        diagonal = (diagonal_cost + d) / (diagonal_length + 1)
        skip = (skip_cost + d) / (skip_length + 1)
        take_stay = (stay <= diagonal) & (stay <= skip)
        take_skip = ~take_stay & (skip < diagonal)
        self._cost = np.where(take_stay, stay_cost, np.where(take_skip, skip_cost, diagonal_cost)) + d
        self._length = np.where(take_stay, length, np.where(take_skip, skip_length, diagonal_length)) + 1
        self._stays = np.where(take_stay, self._stays + 1, 0).astype(np.int8)
        return self._cost[self.ends] / self._length[self.ends], self._length[self.ends]


@dataclass(frozen=True, slots=True)
class WakeHeard:
    """The phrase was heard: ``at_s`` into the stream (where it ended), with ``distance``."""

    at_s: float
    distance: float


class WakeDetector:
    """Fed the microphone block by block while the doll rests; :meth:`push` says when the phrase
    was heard. ``speech`` is the VAD (a block's speech probability), or None to skip that check.
    """

    def __init__(
        self,
        templates: Sequence[np.ndarray],
        threshold: float,
        *,
        speech: Callable[[np.ndarray], float] | None = None,
        speech_threshold: float = 0.5,
    ) -> None:
        if not templates:
            raise ValueError("the wake phrase needs at least one enrolled recording")
        self._match = _Match(templates)
        self.threshold = threshold
        self._speech = speech
        self._speech_threshold = speech_threshold
        self._longest = max(len(t) for t in templates) * 3
        self.trace: list[tuple[float, bool]] | None = None
        """When a list (the benchmark's), every frame's best distance and whether the VAD heard
        speech over most of its match are appended to it."""
        self.reset()

    def reset(self) -> None:
        self._match.reset()
        self._front = FrontEnd()
        self._mean: np.ndarray | None = None
        self._floor: float | None = None
        self._speech_frames: list[bool] = []  # per frame, for the last ``_longest`` frames
        self._quiet_until = 0
        self._frames = 0
        self.best = float("inf")
        """The lowest distance heard since the last :meth:`reset` (for tuning)."""
        if self._speech is not None and hasattr(self._speech, "reset"):
            self._speech.reset()

    @property
    def elapsed_s(self) -> float:
        return self._frames * HOP / RATE

    def push(self, blocks: Iterable[np.ndarray]) -> WakeHeard | None:
        """Hear ``blocks``; the phrase, if it ended inside them (the first time only)."""
        heard = None
        for block in blocks:
            is_speech = True if self._speech is None else self._speech(block) >= self._speech_threshold
            features, energy = self._front.push(block)
            for row, level in zip(features, energy, strict=True):
                found = self._frame(row, float(level), is_speech)
                if found is not None and heard is None:
                    heard = found
        return heard

    def scan(self, samples: np.ndarray, block: int = RATE * 30 // 1000) -> list[WakeHeard]:
        """A whole recording, in ``block``-sample pieces as a microphone gives it; every wake."""
        heard = []
        for start in range(0, len(samples), block):
            found = self.push([samples[start : start + block]])
            if found is not None:
                heard.append(found)
        return heard

    def _frame(self, row: np.ndarray, level: float, is_speech: bool) -> WakeHeard | None:
        self._frames += 1
        step = HOP / RATE
        if self._floor is None or level < self._floor:
            self._floor = level
        else:
            self._floor += _FLOOR_RISE_DB_PER_S * step
        voiced = level > self._floor + _SPEECH_OVER_FLOOR_DB
        if self._mean is None:
            self._mean = row.copy()
        elif voiced:
            self._mean += (row - self._mean) * (step / _MEAN_TAU_S)
        self._speech_frames.append(is_speech)
        if len(self._speech_frames) > self._longest:
            del self._speech_frames[0]
        frame = _unit(row - self._mean)
        distances, spans = self._match.step(frame)
        which = int(np.argmin(distances))
        distance = float(distances[which])
        self.best = min(self.best, distance)
        if self.trace is None and (distance >= self.threshold or self._frames < self._quiet_until):
            return None
        recent = self._speech_frames[-int(spans[which]) :]
        speech = sum(recent) >= MIN_SPEECH_SHARE * len(recent)
        if self.trace is not None:
            self.trace.append((distance, speech))
        if distance >= self.threshold or self._frames < self._quiet_until or not speech:
            return None
        self._quiet_until = self._frames + int(REFRACTORY_S * RATE / HOP)
        self._match.reset()
        return WakeHeard(self.elapsed_s, distance)


# -- the enrolled phrase on disk --------------------------------------------------------------


class WakeEnrolmentError(ValueError):
    """The recordings cannot be enrolled (too few, too long, silent); the message says why."""


@dataclass(frozen=True, slots=True)
class Enrolment:
    """Her recordings of the phrase, kept in ``folder`` (``server.data_dir``/wake)."""

    folder: Path
    phrase: str
    clips: tuple[np.ndarray, ...]

    MANIFEST = "wake.json"

    @classmethod
    def load(cls, folder: Path) -> Enrolment:
        """The enrolment in ``folder``; a missing or broken one raises WakeEnrolmentError."""
        import soundfile

        manifest = folder / cls.MANIFEST
        try:
            meta = json.loads(manifest.read_text(encoding="utf-8"))
            clips = []
            for name in meta["clips"]:
                samples, rate = soundfile.read(folder / name, dtype="int16")
                if rate != RATE or samples.ndim != 1:
                    raise ValueError(f"{name} is not {RATE} Hz mono")
                if len(samples) < MIN_CLIP_S * RATE:
                    raise ValueError(f"{name} is shorter than {MIN_CLIP_S:g} s")
                clips.append(samples)
            return cls(folder, str(meta["phrase"]), tuple(clips))
        except FileNotFoundError:
            raise WakeEnrolmentError(
                f"no wake phrase is enrolled in {folder}: record her saying it three to ten "
                "times and run `chacha wake enroll FILE...`"
            ) from None
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise WakeEnrolmentError(
                f"the wake enrolment in {folder} cannot be read ({exc}): enrol again with "
                "`chacha wake enroll FILE...`"
            ) from None

    def templates(self) -> list[np.ndarray]:
        return [template(clip) for clip in self.clips]

    def save(self) -> None:
        """Write the clips under new names, then the manifest that names them, then remove the
        old clips: until the manifest is replaced the old enrolment stands whole, so a cut power
        leaves either the old one or the new one."""
        import soundfile

        self.folder.mkdir(parents=True, exist_ok=True)
        generation = uuid.uuid4().hex[:8]
        names = []
        for number, clip in enumerate(self.clips, 1):
            name = f"clip-{generation}-{number:02d}.wav"
            partial = self.folder / f".{name}.part"
            soundfile.write(partial, clip, RATE, subtype="PCM_16", format="WAV")
            partial.replace(self.folder / name)
            names.append(name)
        manifest = self.folder / f".{self.MANIFEST}.part"
        manifest.write_text(
            json.dumps({"phrase": self.phrase, "clips": names}, ensure_ascii=False, indent=1),
            encoding="utf-8",
        )
        manifest.replace(self.folder / self.MANIFEST)
        for stale in self.folder.glob("clip-*.wav"):
            if stale.name not in names:
                stale.unlink()


def prepare_clips(recordings: Sequence[tuple[str, np.ndarray]]) -> list[np.ndarray]:
    """Her recordings (name, int16 samples at :data:`RATE`), trimmed and checked for enrolment."""
    if not MIN_CLIPS <= len(recordings) <= MAX_CLIPS:
        raise WakeEnrolmentError(
            f"{len(recordings)} recording(s) given: enrol {MIN_CLIPS} to {MAX_CLIPS} recordings of "
            "her saying the phrase, each on its own"
        )
    return [prepare_clip(name, samples) for name, samples in recordings]


def prepare_clip(name: str, samples: np.ndarray) -> np.ndarray:
    """One recording of the phrase, trimmed to its sound; WakeEnrolmentError (naming ``name``)
    when it is silent or holds more than the phrase."""
    clip = trim(samples)
    length_s = len(clip) / RATE
    if length_s < MIN_CLIP_S or _loudest_dbfs(clip) < MIN_LEVEL_DBFS:
        raise WakeEnrolmentError(f"{name}: no phrase heard in it (silent or too short)")
    if length_s > MAX_CLIP_S:
        raise WakeEnrolmentError(
            f"{name}: {length_s:.1f} s of sound: record only the phrase (at most {MAX_CLIP_S:g} s), "
            "in a quiet room"
        )
    return clip.astype(np.int16)


def _loudest_dbfs(samples: np.ndarray) -> float:
    """The level of the loudest 100 ms (dB relative to full scale)."""
    x = np.asarray(samples, np.float64) / 32768.0
    window = RATE // 10
    if len(x) < window:
        return -120.0
    power = np.convolve(x**2, np.ones(window) / window, mode="valid")
    return float(10 * np.log10(power.max() + 1e-12))


def leave_one_out(clips: Sequence[np.ndarray], threshold: float) -> list[float]:
    """For each clip, the best distance the other clips' templates give it (what enrolment checks:
    a clip far from all the others was likely said differently, or is not the phrase)."""
    templates = [template(c) for c in clips]
    pad = np.zeros(int(0.3 * RATE), np.int16)
    distances = []
    for index, clip in enumerate(clips):
        detector = WakeDetector([t for i, t in enumerate(templates) if i != index], threshold)
        detector.push([np.concatenate([pad, clip, pad])])
        distances.append(detector.best)
    return distances
