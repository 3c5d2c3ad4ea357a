# SPDX-License-Identifier: GPL-3.0-or-later
"""Earcons: the doll's short non-speech sounds, made with numpy at any rate (no files).

- ``listening``: a rising two-tone (E5 then B5, 60 ms each): "I'm listening, talk now".
- ``done``: the same two tones falling: "my turn is over".
- ``error``: a low buzz (150 Hz with odd harmonics, 250 ms): "something is wrong".

All peak at -12 dBFS, quieter than speech, and every tone fades in and out over 5 ms so
nothing clicks.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from tts.audio import to_int16

LEVEL_DBFS = -12.0
"""Peak level of every earcon (dB relative to full scale)."""
FADE_MS = 5.0
"""Fade-in and fade-out of each tone (milliseconds)."""

EarconName = Literal["listening", "done", "error"]
NAMES: tuple[EarconName, ...] = ("listening", "done", "error")

_LOW_HZ = 659.3  # E5
_HIGH_HZ = 987.8  # B5
_BUZZ_HZ = 150.0


def _tone(rate: int, seconds: float, freqs: tuple[tuple[float, float], ...]) -> np.ndarray:
    """A sum of (frequency Hz, relative amplitude) partials, faded, normalised to peak 1.0."""
    t = np.arange(round(rate * seconds)) / rate
    wave = sum(amp * np.sin(2 * np.pi * hz * t) for hz, amp in freqs)
    wave = np.asarray(wave, dtype=np.float64)
    fade = min(len(t) // 2, round(rate * FADE_MS / 1000))
    if fade > 0:
        ramp = (1 - np.cos(np.linspace(0, np.pi, fade))) / 2
        wave[:fade] *= ramp
        wave[-fade:] *= ramp[::-1]
    peak = np.abs(wave).max() if len(wave) else 0.0
    return wave / peak if peak > 0 else wave


def _to_int16(wave: np.ndarray) -> np.ndarray:
    return to_int16(wave * 10 ** (LEVEL_DBFS / 20))


def make_earcon(name: EarconName, rate: int) -> np.ndarray:
    """The earcon ``name`` as int16 mono samples at ``rate`` hertz."""
    if rate <= 0:
        raise ValueError(f"rate must be a positive number of hertz, not {rate!r}")
    match name:
        case "listening":
            parts = [_tone(rate, 0.06, ((_LOW_HZ, 1.0),)), _tone(rate, 0.06, ((_HIGH_HZ, 1.0),))]
        case "done":
            parts = [_tone(rate, 0.06, ((_HIGH_HZ, 1.0),)), _tone(rate, 0.06, ((_LOW_HZ, 1.0),))]
        case "error":
            harmonics = tuple((_BUZZ_HZ * k, 1.0 / k) for k in (1, 3, 5, 7))
            parts = [_tone(rate, 0.25, harmonics)]
        case _:
            raise ValueError(f"unknown earcon {name!r}: choose from {', '.join(NAMES)}")
    return _to_int16(np.concatenate(parts))


def make_earcons(rate: int) -> dict[EarconName, np.ndarray]:
    """Every earcon at ``rate`` hertz, by name."""
    return {name: make_earcon(name, rate) for name in NAMES}
