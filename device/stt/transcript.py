# SPDX-License-Identifier: GPL-3.0-or-later
"""What every speech recogniser gives: a :class:`Transcript`, and the shape of a recogniser."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Transcript:
    """What the doll understood from one utterance."""

    text: str  # what she said; "" when nothing was recognised
    confidence: float  # 0..1: mean of the recogniser's per-word confidence; 0.0 when text is ""
    audio_s: float  # seconds of audio heard
    elapsed_s: float  # seconds spent recognising (inside the recogniser)
    final_latency_s: float  # seconds from handing over the last chunk to the final result
    engine: str = "vosk"
    speech_end_s: float | None = None  # where the last recognised word ends (Vosk's endpoint)
    vosk_text: str | None = None  # in hybrid mode: what Vosk heard, for the logs


class Utterance(Protocol):
    """One utterance heard live: chunks in as she speaks, the final text when she stops."""

    def feed(self, chunk: np.ndarray) -> str:
        """Hear the next chunk of int16 samples; returns the partial text so far."""

    def finish(self) -> Transcript: ...

    def cancel(self) -> None: ...


class Transcriber(Protocol):
    engine: str
    sample_rate: int

    def transcribe(self, samples: np.ndarray) -> Transcript: ...

    def transcribe_file(self, path: Path) -> Transcript: ...
