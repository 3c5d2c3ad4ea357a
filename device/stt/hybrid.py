# SPDX-License-Identifier: GPL-3.0-or-later
"""Hybrid hearing: Vosk streams while she speaks (partials, the endpoint from its word timings),
and Whisper, which makes far fewer mistakes on conversational Korean, reads what she said.

Whisper cannot stream, and one pass costs about as much for a short utterance as for a long
one, so it is started *speculatively*: when a pause in her speech begins (:meth:`pause`), on
one reader thread, while Vosk and the VAD go on in real time on theirs. If she speaks again
(:meth:`resume`) that pass is dropped and the next pause starts another; never two at once.
When her turn ends, the pass already under way is the final text, nearly ready; only when
there was none does a fresh pass start then. :meth:`HybridUtterance.finish_later` gives
Vosk's text at once (the draft) and Whisper's as a future.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from device.audio import chunks, load_audio
from device.stt.transcript import Transcript, then
from device.stt.vosk import VoskTranscriber

if TYPE_CHECKING:
    from device.stt.registry import BuildContext


class HybridTranscriber:
    """Vosk's endpoint and partials, Whisper's final text."""

    engine = "hybrid"

    def __init__(self, vosk: VoskTranscriber, whisper, *, tail_s: float = 0.3) -> None:
        self.vosk = vosk
        self.whisper = whisper
        self.tail_s = tail_s
        self.sample_rate = vosk.sample_rate
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="chacha-whisper")
        self.passes = 0  # Whisper passes started (speculative or not), for tests and benchmarks

    def stream(self) -> HybridUtterance:
        return HybridUtterance(self)

    def transcribe(self, samples: np.ndarray) -> Transcript:
        utterance = self.stream()
        for chunk in chunks(np.asarray(samples), self.sample_rate, self.vosk.chunk_s):
            utterance.feed(chunk)
        return utterance.finish()

    def transcribe_file(self, path: Path) -> Transcript:
        return self.transcribe(load_audio(path, sample_rate=self.sample_rate))

    def read(self, audio: np.ndarray) -> Future[Transcript]:
        """Have Whisper read ``audio`` on the reader thread (after any pass already queued)."""
        self.passes += 1
        return self._reader.submit(self.whisper.transcribe, audio)


@dataclass
class _Pass:
    """One Whisper pass over the first ``samples`` of the utterance."""

    samples: int
    future: Future[Transcript]


class HybridUtterance:
    """One utterance: Vosk hears it live; Whisper reads it at its pauses and at its end."""

    def __init__(self, owner: HybridTranscriber) -> None:
        self._owner = owner
        self._vosk = owner.vosk.stream()
        self._pieces: list[np.ndarray] = []
        self._samples = 0
        self._pass: _Pass | None = None
        self._lock = threading.Lock()
        self.speculative_passes = 0  # passes started at a pause
        self.dropped_passes = 0  # of those, dropped because she went on

    def feed(self, chunk: np.ndarray) -> str:
        """Hear more audio; returns Vosk's partial text (for endpointing and logs)."""
        pcm = np.asarray(chunk, dtype=np.int16).reshape(-1)
        self._pieces.append(pcm)
        self._samples += len(pcm)
        return self._vosk.feed(chunk)

    def pause(self, last_speech_s: float) -> None:
        """A pause began after speech that ended ``last_speech_s`` in: start reading up to there."""
        cut = min(self._samples, int((last_speech_s + self._owner.tail_s) * self._owner.sample_rate))
        with self._lock:
            if self._pass is not None and self._pass.samples >= cut:
                return  # already reading all of it
            self._drop()
            self._pass = _Pass(cut, self._owner.read(self._audio(cut)))
            self.speculative_passes += 1

    def resume(self) -> None:
        """She went on after a pause: what was read at the pause is out of date."""
        with self._lock:
            if self._pass is not None:
                self.dropped_passes += 1
            self._drop()

    def cancel(self) -> None:
        with self._lock:
            self._drop()
        self._vosk.cancel()

    def __enter__(self) -> HybridUtterance:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cancel()

    def finish(self) -> Transcript:
        draft, final = self.finish_later()
        return draft if final is None else final.result()

    def finish_later(self) -> tuple[Transcript, Future[Transcript] | None]:
        """Vosk's text now (the draft), and Whisper's final text as a future (None: no words)."""
        started = time.perf_counter()
        heard = replace(self._vosk.finish(), engine="hybrid")
        with self._lock:
            reading, self._pass = self._pass, None
        if not heard.text:
            # Vosk heard no word at all: silence or noise. Whisper's text is not used, so it
            # cannot invent a sentence out of nothing.
            if reading is not None:
                reading.future.cancel()
            return replace(heard, vosk_text=""), None
        if reading is None:
            end = heard.speech_end_s if heard.speech_end_s is not None else heard.audio_s
            cut = min(self._samples, int((end + self._owner.tail_s) * self._owner.sample_rate))
            reading = _Pass(cut, self._owner.read(self._audio(cut)))

        def final(whisper: Transcript) -> Transcript:
            waited = time.perf_counter() - started
            return Transcript(
                text=whisper.text,
                confidence=whisper.confidence,
                audio_s=heard.audio_s,
                elapsed_s=heard.elapsed_s + whisper.elapsed_s,
                final_latency_s=heard.final_latency_s + waited,
                engine="hybrid",
                speech_end_s=heard.speech_end_s,
                vosk_text=heard.text,
            )

        return replace(heard, vosk_text=heard.text), then(reading.future, final)

    def _audio(self, samples: int) -> np.ndarray:
        audio = np.concatenate(self._pieces) if self._pieces else np.zeros(0, np.int16)
        return audio[:samples]

    def _drop(self) -> None:
        if self._pass is not None:
            self._pass.future.cancel()  # only stops a pass still queued; a running one finishes
            self._pass = None


def build(context: BuildContext) -> HybridTranscriber:
    """Hybrid as the registry builds it: the context's Vosk and Whisper (shared, loaded once)."""
    return HybridTranscriber(
        context.engine("vosk"), context.engine("whisper"), tail_s=context.settings.hybrid_tail_ms / 1000
    )
