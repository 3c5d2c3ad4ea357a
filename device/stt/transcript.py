# SPDX-License-Identifier: GPL-3.0-or-later
"""What every speech recogniser gives: a :class:`Transcript`, and the shape of a recogniser."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

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


T = TypeVar("T")
U = TypeVar("U")


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


def then(future: Future[T], fn: Callable[[T], U]) -> Future[U]:
    """A future of ``fn(result)`` once ``future`` is done (its failure or cancellation passed on).

    Cancelling the new future cancels ``future`` too (which stops it only if it has not started).
    """
    out: Future[U] = Future()

    def done(finished: Future[T]) -> None:
        if finished.cancelled():
            out.cancel()
            return
        error = finished.exception()
        if error is None:
            try:
                value = fn(finished.result())
            except Exception as exc:
                error = exc
        with contextlib.suppress(InvalidStateError):  # cancelled meanwhile: nobody wants it
            if error is not None:
                out.set_exception(error)
            else:
                out.set_result(value)

    out.add_done_callback(lambda result: future.cancel() if result.cancelled() else None)
    future.add_done_callback(done)
    return out
