# SPDX-License-Identifier: GPL-3.0-or-later
"""Has she finished? Several cues of a pause, combined by a small fitted model.

The words alone (:func:`device.doll.turn_end.ending_cue`) are a weak cue: at a pause the
streaming recogniser's partial text often lacks or mishears her last word, and in conversation
a trailing connective ("…거 같고") can end a turn. The audio says more:

- **pitch**: Korean closes a statement with a falling boundary tone and marks a question or a
  continuation with a rise or a level tone; :class:`Prosody` tracks the pitch (autocorrelation,
  70–400 Hz) of every 30 ms block, and a pause is described by the pitch of her last voiced
  stretch against her median (semitones) and its slope;
- **energy**: a sentence fades out at its end; a breath mid-sentence often cuts off loud;
- **length**: the last syllable of a sentence is drawn out (the last voiced stretch), and a
  long utterance is more likely finished than two words;
- **pause**: the silence so far; every cue grows surer the longer it lasts;
- **words**: the ending of the last word, as before, and whether it arrived during the pause.

:class:`CueModel` is a logistic regression over these features, fitted on a tuning set
(``chacha bench endpoint --fit``) and shipped as ``device/doll/data/turn_model.json``: in every
silent block after her speech it gives the probability that her turn is over, and the turn ends
the first time that reaches the model's threshold (between ``min_pause_s`` and
``max_pause_s``). Everything is in audio time.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from device.doll.turn_end import ending_cue

CUES: dict[str, tuple[str, ...]] = {
    "pause": ("pause_s", "log_pause"),
    "words": (
        "text_final",
        "text_continuing",
        "text_new_final",
        "pause_x_text_final",
        "pause_x_text_continuing",
    ),
    "pitch": ("f0_end", "f0_slope", "voiced_end", "pause_x_f0_end", "pause_x_f0_slope"),
    "energy": ("energy_end", "energy_slope", "pause_x_energy_end"),
    "length": ("last_run_s", "speech_s", "pause_x_last_run_s"),
}
"""Each cue and the features it gives the model; ``pause_x_…``: the feature times the log of the
pause so far, so that a cue may count for more (or less) as the pause grows."""
_CROSSED = ("text_final", "text_continuing", "f0_end", "f0_slope", "energy_end", "last_run_s")
FEATURES: tuple[str, ...] = tuple(name for names in CUES.values() for name in names)

_F0_MIN_HZ, _F0_MAX_HZ = 70.0, 400.0
_VOICED_CORRELATION = 0.45  # a block is voiced at this normalised autocorrelation or above
_QUIET_DBFS = -55.0  # a block quieter than this has no pitch
_END_BLOCKS = 4  # "the end" of her speech: its last this many speech blocks
_SLOPE_S = 0.4  # the pitch slope is over her last this many seconds of voiced speech


@dataclass
class _Block:
    f0_st: float  # semitones above 100 Hz; nan when unvoiced
    level_db: float


@dataclass
class Prosody:
    """Pitch and level of every block of one utterance, and what they say at a pause."""

    sample_rate: int = 16000
    blocks: list[_Block] = field(default_factory=list)
    _previous: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    _speech_index: list[int] = field(default_factory=list)  # the blocks heard as speech
    _durations: list[float] = field(default_factory=list)

    def reset(self) -> None:
        self.blocks.clear()
        self._speech_index.clear()
        self._durations.clear()
        self._previous = np.zeros(0, np.float32)

    def push(self, block: np.ndarray, speech: bool) -> None:
        """One block of int16 audio, and whether the VAD heard speech in it."""
        x = block.astype(np.float32) / 32768.0
        window = np.concatenate([self._previous, x])[-2 * len(x) :]
        self._previous = x
        level = 10 * math.log10(float(np.mean(x * x)) + 1e-12)
        f0 = pitch_st(window, self.sample_rate) if level > _QUIET_DBFS else math.nan
        self.blocks.append(_Block(f0, level))
        self._durations.append(len(block) / self.sample_rate)
        if speech:
            self._speech_index.append(len(self.blocks) - 1)

    def features(self) -> dict[str, float]:
        """What her speech so far says, at the start of a pause (all 0.0 before any speech)."""
        out = {"f0_end": 0.0, "f0_slope": 0.0, "voiced_end": 0.0, "energy_end": 0.0, "energy_slope": 0.0}
        out |= {"last_run_s": 0.0, "speech_s": 0.0}
        if not self._speech_index:
            return out
        speech = [self.blocks[i] for i in self._speech_index]
        block_s = self._durations[self._speech_index[-1]]
        out["speech_s"] = len(speech) * block_s
        voiced = np.array([b.f0_st for b in speech])
        levels = np.array([b.level_db for b in speech])
        end = speech[-_END_BLOCKS:]
        out["voiced_end"] = float(np.mean([not math.isnan(b.f0_st) for b in end]))
        median_level = float(np.median(levels))
        out["energy_end"] = float(np.mean([b.level_db for b in end])) - median_level
        tail = levels[-round(_SLOPE_S / block_s) :]
        if len(tail) >= 3:
            out["energy_slope"] = _slope(tail, block_s)
        pitched = voiced[~np.isnan(voiced)]
        if len(pitched) >= 3:
            median_f0 = float(np.median(pitched))
            end_f0 = [b.f0_st for b in end if not math.isnan(b.f0_st)]
            if end_f0:
                out["f0_end"] = float(np.mean(end_f0)) - median_f0
            recent = voiced[-round(_SLOPE_S / block_s) :]
            recent = recent[~np.isnan(recent)]
            if len(recent) >= 3:
                out["f0_slope"] = _slope(recent, block_s)
        index, run = self._speech_index, 1
        while run < len(index) and index[-1 - run] == index[-1] - run:  # the last unbroken run
            run += 1
        out["last_run_s"] = min(run * block_s, 2.0)
        return out


def _slope(values: np.ndarray, step_s: float) -> float:
    t = np.arange(len(values)) * step_s
    return float(np.polyfit(t, values, 1)[0])


def pitch_st(window: np.ndarray, sample_rate: int) -> float:
    """The pitch of ``window`` (float audio) in semitones above 100 Hz, or nan when unvoiced."""
    x = window - window.mean()
    n = len(x)
    lo, hi = int(sample_rate / _F0_MAX_HZ), int(sample_rate / _F0_MIN_HZ)
    if n < 2 * lo or not np.any(x):
        return math.nan
    size = 1 << (2 * n - 1).bit_length()
    spectrum = np.fft.rfft(x, size)
    corr = np.fft.irfft(spectrum * np.conj(spectrum), size)[:n]
    if corr[0] <= 0:
        return math.nan
    hi = min(hi, n // 2)
    lags = corr[lo:hi] / (corr[0] * (n - np.arange(lo, hi)) / n)  # unbiased, normalised
    if not len(lags):
        return math.nan
    peak = float(lags.max())
    if peak < _VOICED_CORRELATION:
        return math.nan
    # the shortest lag nearly as good as the best: a period's multiples correlate as well
    best = int(np.argmax(lags >= 0.9 * peak))
    while best + 1 < len(lags) and lags[best + 1] > lags[best]:
        best += 1  # up to the top of that peak
    return 12.0 * math.log2(sample_rate / (lo + best) / 100.0)


def pause_features(
    prosody: dict[str, float], pause_s: float, text: str, text_at_pause: str
) -> dict[str, float]:
    """Every feature of a pause ``pause_s`` long: the prosody at its start, the words now."""
    cue = ending_cue(text)
    features = {
        "pause_s": pause_s,
        "log_pause": math.log(max(pause_s, 0.03)),
        "text_final": float(cue == "final"),
        "text_continuing": float(cue == "continuing"),
        "text_new_final": float(cue == "final" and text != text_at_pause),
        **prosody,
    }
    scale = features["log_pause"] - math.log(0.03)  # 0 when the pause begins
    features |= {f"pause_x_{name}": features[name] * scale for name in _CROSSED}
    return features


@dataclass(frozen=True)
class CueModel:
    """A logistic regression over :data:`FEATURES` (or some of them): the probability that
    her turn is over, from a pause's features."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float = 0.5
    min_pause_s: float = 0.2
    max_pause_s: float = 1.5
    about: dict = field(default_factory=dict, compare=False)

    def probability(self, features: dict[str, float]) -> float:
        z = self.intercept + sum(
            c * (features[name] - m) / s
            for name, m, s, c in zip(self.features, self.mean, self.scale, self.coef, strict=True)
        )
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def ends(self, features: dict[str, float]) -> bool:
        """Whether a pause with these features ends her turn now."""
        pause_s = features["pause_s"]
        if pause_s < self.min_pause_s - 1e-9:
            return False
        return pause_s >= self.max_pause_s - 1e-9 or self.probability(features) >= self.threshold

    def with_threshold(self, threshold: float) -> CueModel:
        return CueModel(**{**self.as_fields(), "threshold": threshold})

    def as_fields(self) -> dict:
        return {
            "features": self.features,
            "mean": self.mean,
            "scale": self.scale,
            "coef": self.coef,
            "intercept": self.intercept,
            "threshold": self.threshold,
            "min_pause_s": self.min_pause_s,
            "max_pause_s": self.max_pause_s,
            "about": self.about,
        }

    def as_json(self) -> dict:
        fields = self.as_fields()
        return {**fields, **{k: list(v) for k, v in fields.items() if isinstance(v, tuple)}}

    @classmethod
    def from_json(cls, data: dict) -> CueModel:
        try:
            names = tuple(data["features"])
            unknown = sorted(set(names) - set(FEATURES))
            if unknown:
                raise ValueError(f"unknown features {unknown}")
            model = cls(
                features=names,
                mean=tuple(float(v) for v in data["mean"]),
                scale=tuple(float(v) for v in data["scale"]),
                coef=tuple(float(v) for v in data["coef"]),
                intercept=float(data["intercept"]),
                threshold=float(data.get("threshold", 0.5)),
                min_pause_s=float(data.get("min_pause_s", 0.2)),
                max_pause_s=float(data.get("max_pause_s", 1.5)),
                about=dict(data.get("about", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an end-of-turn model: {exc}") from None
        if not len(model.mean) == len(model.scale) == len(model.coef) == len(names):
            raise ValueError("not an end-of-turn model: its lists differ in length")
        if not 0.0 < model.threshold < 1.0 or not 0.0 <= model.min_pause_s <= model.max_pause_s:
            raise ValueError("not an end-of-turn model: threshold or pause limits out of range")
        return model

    @classmethod
    def load(cls, path: Path | None = None) -> CueModel:
        """The model at ``path``, or the shipped one (read once)."""
        if path is None:
            return _shipped()
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))


@functools.cache
def _shipped() -> CueModel:
    text = resources.files("device.doll").joinpath("data/turn_model.json").read_text("utf-8")
    return CueModel.from_json(json.loads(text))


def fit(
    rows: Sequence[dict[str, float]],
    labels: Sequence[int],
    features: Sequence[str] = FEATURES,
    *,
    l2: float = 1.0,
    weights: Sequence[float] | None = None,
    iterations: int = 50,
) -> CueModel:
    """A logistic regression of ``labels`` (1: her turn is over) on ``features`` of ``rows``,
    by Newton's method with an L2 penalty (on standardised features).

    Fitting a dozen weights needs no library: this is the whole of it, and the doll only ever
    evaluates the fitted sum.
    """
    x = np.array([[row[name] for name in features] for row in rows], dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(y) == 0 or y.min() == y.max():
        raise ValueError("fitting needs examples of both an ended and a continuing turn")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = np.hstack([np.ones((len(y), 1)), (x - mean) / scale])
    beta = np.zeros(z.shape[1])
    penalty = np.full(z.shape[1], l2)
    penalty[0] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ beta, -60, 60)))
        gradient = z.T @ (w * (p - y)) + penalty * beta
        hessian = (z * (w * p * (1 - p))[:, None]).T @ z + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return CueModel(
        features=tuple(features),
        mean=tuple(float(v) for v in mean),
        scale=tuple(float(v) for v in scale),
        coef=tuple(float(v) for v in beta[1:]),
        intercept=float(beta[0]),
    )
