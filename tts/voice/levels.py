# SPDX-License-Identifier: GPL-3.0-or-later
"""Measuring recordings of speech: level, clipping, where the speech is, how noisy it is.

Everything works on 20 ms frames of int16 (or float, full scale 1.0) mono samples, with
plain NumPy: no model, so it is the same on a Pi and in CI.

Speech is found by energy against the recording's own noise floor: the floor is the 10th
percentile of the frame levels, the loud end the 95th, and a frame is speech when it is a
quarter of the way up from the floor to the loud end and at least 6 dB over the floor.
A recording whose loud end is under -60 dBFS, or less than 10 dB over its floor (steady
noise, hum, a fan), has no speech.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tts.audio import SILENCE_DBFS, power_dbfs, to_float, to_int16
from tts.audio import peak_dbfs as peak_dbfs  # the voice tools' level meter

FRAME_S = 0.02
SILENCE_DB = SILENCE_DBFS
FULL_SCALE_INT16 = 32767  # the largest int16: a sample this loud is clipped

#: A recording whose loudest frames are under this has nothing in it (dBFS).
MIN_SPEECH_DB = -60.0
#: Speech rises at least this far above the noise floor (dB).
MIN_DYNAMIC_RANGE_DB = 10.0
#: The floor is never taken lower than this, so digital silence does not make every breath speech.
FLOOR_CLAMP_DB = -70.0


def as_float(samples: np.ndarray) -> np.ndarray:
    """Samples as float64 with full scale 1.0 (int16 is divided by 32768)."""
    return to_float(samples, np.float64)


db = power_dbfs  # a mean square (full scale 1.0) in dBFS, floored at -120
power_db = power_dbfs  # the same for an array of them


def clipped_fraction(samples: np.ndarray) -> float:
    """Share of samples at full scale (|x| >= 32767 for int16, >= 0.9999 for float)."""
    x = np.asarray(samples)
    if x.size == 0:
        return 0.0
    if np.issubdtype(x.dtype, np.integer):
        return float(np.count_nonzero(np.abs(x.astype(np.int32)) >= FULL_SCALE_INT16)) / x.size
    return float(np.count_nonzero(np.abs(x) >= 0.9999)) / x.size


def frame_power(samples: np.ndarray, rate: int, frame_s: float = FRAME_S) -> np.ndarray:
    """Mean square of each whole frame (the last partial frame is dropped)."""
    x = as_float(samples)
    size = max(1, round(rate * frame_s))
    count = len(x) // size
    if count == 0:
        return np.zeros(0)
    return np.mean(np.square(x[: count * size].reshape(count, size)), axis=1)


@dataclass(frozen=True)
class SpeechAnalysis:
    """What :func:`analyse` found in one recording."""

    rate: int
    frames: int
    speech: np.ndarray  # bool per frame
    levels_db: np.ndarray  # per frame
    floor_db: float
    loud_db: float
    threshold_db: float
    snr_db: float
    speech_rms_db: float

    @property
    def has_speech(self) -> bool:
        return bool(self.speech.any())

    @property
    def speech_s(self) -> float:
        return float(np.count_nonzero(self.speech)) * FRAME_S

    def speech_bounds(self) -> tuple[int, int] | None:
        """First and one-past-last speech frame, or None."""
        where = np.flatnonzero(self.speech)
        if where.size == 0:
            return None
        return int(where[0]), int(where[-1]) + 1


def analyse(samples: np.ndarray, rate: int, *, min_speech_s: float = 0.15) -> SpeechAnalysis:
    """Frame levels, the noise floor, which frames are speech, and the SNR.

    SNR is the mean power of the speech frames over the mean power of the quietest 10 % of
    all frames, in dB (capped at 100 dB, which is what digital silence gives).
    """
    power = frame_power(samples, rate)
    levels = power_db(power)
    empty = np.zeros(len(levels), dtype=bool)
    if len(levels) == 0:
        return SpeechAnalysis(rate, 0, empty, levels, SILENCE_DB, SILENCE_DB, 0.0, 0.0, SILENCE_DB)
    floor = float(np.percentile(levels, 10))
    loud = float(np.percentile(levels, 95))
    floor_for_threshold = max(floor, FLOOR_CLAMP_DB)
    threshold = max(floor_for_threshold + 0.25 * (loud - floor_for_threshold), floor_for_threshold + 6.0)
    speech = levels > threshold
    speech = _drop_short_runs(speech, round(0.06 / FRAME_S))
    if loud < MIN_SPEECH_DB or loud - floor < MIN_DYNAMIC_RANGE_DB:
        speech = empty
    if np.count_nonzero(speech) * FRAME_S < min_speech_s:
        speech = empty
    quiet_count = max(1, len(power) // 10)
    noise_power = float(np.mean(np.sort(power)[:quiet_count]))
    speech_power = float(np.mean(power[speech])) if speech.any() else 0.0
    if speech_power <= 0:
        snr = 0.0
    elif noise_power <= 0:
        snr = 100.0
    else:
        snr = min(100.0, 10.0 * math.log10(speech_power / noise_power))
    return SpeechAnalysis(
        rate=rate,
        frames=len(levels),
        speech=speech,
        levels_db=levels,
        floor_db=floor,
        loud_db=loud,
        threshold_db=threshold,
        snr_db=snr,
        speech_rms_db=db(speech_power),
    )


def _drop_short_runs(mask: np.ndarray, shortest: int) -> np.ndarray:
    """``mask`` without the runs of True shorter than ``shortest`` frames (clicks, pops)."""
    out = mask.copy()
    for start, end in runs(mask):
        if end - start < shortest:
            out[start:end] = False
    return out


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of every run of True in a boolean array."""
    padded = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def trim(samples: np.ndarray, analysis: SpeechAnalysis, pad_s: float = 0.15) -> np.ndarray:
    """The speech with ``pad_s`` of what surrounds it; the whole input when there is no speech."""
    bounds = analysis.speech_bounds()
    if bounds is None:
        return samples
    size = round(analysis.rate * FRAME_S)
    pad = round(analysis.rate * pad_s)
    start = max(0, bounds[0] * size - pad)
    end = min(len(samples), bounds[1] * size + pad)
    return samples[start:end]


def normalise(samples: np.ndarray, rate: int, *, target_db: float = -20.0, peak_limit_db: float = -1.0):
    """Scale so the speech frames' RMS is ``target_db`` dBFS, never letting a peak over ``peak_limit_db``.

    Returns int16 samples. The gain is one number for the whole clip (no compression), so
    the voice keeps its own dynamics; a clip whose peaks would pass the limit comes out
    quieter than the target instead.
    """
    x = as_float(samples)
    analysis = analyse(samples, rate)
    if analysis.has_speech:
        level = analysis.speech_rms_db
    else:
        level = db(float(np.mean(np.square(x)))) if x.size else SILENCE_DB
    if level <= SILENCE_DB:
        return to_int16(x)
    gain = 10 ** ((target_db - level) / 20)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 0:
        gain = min(gain, 10 ** (peak_limit_db / 20) / peak)
    return to_int16(x * gain)


def split_on_silence(
    samples: np.ndarray,
    rate: int,
    *,
    min_clip_s: float = 1.0,
    max_clip_s: float = 15.0,
    pause_s: float = 0.45,
    join_gap_s: float = 1.2,
    pad_s: float = 0.15,
) -> list[tuple[int, int]]:
    """Cut a long recording into clips of ``min_clip_s``–``max_clip_s`` seconds at its pauses.

    Returns (start, end) sample positions. Pauses of ``pause_s`` or more end a clip; a piece
    shorter than ``min_clip_s`` joins a neighbour across a pause shorter than ``join_gap_s``
    when the result still fits, and is left out otherwise; a stretch of speech longer than
    ``max_clip_s`` without a pause is cut at its quietest frame. Each clip keeps ``pad_s``
    of the silence around it (never past the middle of a pause).
    """
    analysis = analyse(samples, rate)
    if not analysis.has_speech:
        return []
    frame = round(rate * FRAME_S)
    longest = int(max_clip_s / FRAME_S) - 2 * int(pad_s / FRAME_S)
    pause = round(pause_s / FRAME_S)

    # Speech regions, with pauses shorter than `pause_s` bridged.
    regions: list[list[int]] = []
    for start, end in runs(analysis.speech):
        if regions and start - regions[-1][1] < pause:
            regions[-1][1] = end
        else:
            regions.append([start, end])

    # Regions longer than a clip are cut at their quietest frame.
    pieces: list[list[int]] = []
    for start, end in regions:
        while end - start > longest:
            window = analysis.levels_db[start + longest // 3 : start + longest]
            cut = start + longest // 3 + int(np.argmin(window))
            pieces.append([start, cut])
            start = cut
        pieces.append([start, end])

    # Short pieces join the nearer neighbour when the pause is short and the result fits.
    shortest = math.ceil(min_clip_s / FRAME_S)
    join = round(join_gap_s / FRAME_S)
    changed = True
    while changed:
        changed = False
        for i, (start, end) in enumerate(pieces):
            if end - start >= shortest:
                continue
            options = []
            if i > 0 and start - pieces[i - 1][1] < join and end - pieces[i - 1][0] <= longest:
                options.append((start - pieces[i - 1][1], i - 1))
            if i + 1 < len(pieces) and pieces[i + 1][0] - end < join and pieces[i + 1][1] - start <= longest:
                options.append((pieces[i + 1][0] - end, i + 1))
            if options:
                _, other = min(options)
                first, second = sorted((i, other))
                pieces[first] = [pieces[first][0], pieces[second][1]]
                del pieces[second]
                changed = True
                break

    clips = []
    pad = round(pad_s / FRAME_S)
    for i, (start, end) in enumerate(pieces):
        if (end - start) + 2 * pad < shortest:
            continue
        low = start - pad
        if i > 0:
            low = max(low, (pieces[i - 1][1] + start) // 2)
        high = end + pad
        if i + 1 < len(pieces):
            high = min(high, (end + pieces[i + 1][0]) // 2)
        low, high = max(0, low), min(analysis.frames, high)
        clips.append((low * frame, min(len(samples), high * frame)))
    return clips
