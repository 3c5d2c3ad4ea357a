# SPDX-License-Identifier: GPL-3.0-or-later
"""Hybrid hearing: Vosk streams while she speaks (partials, the endpoint from its word timings),
and Whisper, which makes far fewer mistakes on conversational Korean, reads the utterance up to
Vosk's endpoint once she has stopped."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from device.audio import chunks, load_audio
from device.stt.transcript import Transcript
from device.stt.vosk import VoskTranscriber


class HybridTranscriber:
    """Vosk's endpoint and partials, Whisper's final text."""

    engine = "hybrid"

    def __init__(self, vosk: VoskTranscriber, whisper, *, tail_s: float = 0.3) -> None:
        self.vosk = vosk
        self.whisper = whisper
        self.tail_s = tail_s
        self.sample_rate = vosk.sample_rate

    def stream(self) -> HybridUtterance:
        return HybridUtterance(self)

    def transcribe(self, samples: np.ndarray) -> Transcript:
        utterance = self.stream()
        for chunk in chunks(np.asarray(samples), self.sample_rate, self.vosk.chunk_s):
            utterance.feed(chunk)
        return utterance.finish()

    def transcribe_file(self, path: Path) -> Transcript:
        return self.transcribe(load_audio(path, sample_rate=self.sample_rate))


class HybridUtterance:
    """One utterance: Vosk hears it live; Whisper reads it up to Vosk's endpoint at the end."""

    def __init__(self, owner: HybridTranscriber) -> None:
        self._owner = owner
        self._vosk = owner.vosk.stream()
        self._pieces: list[np.ndarray] = []

    def feed(self, chunk: np.ndarray) -> str:
        """Hear more audio; returns Vosk's partial text (for endpointing and logs)."""
        self._pieces.append(np.asarray(chunk, dtype=np.int16).reshape(-1))
        return self._vosk.feed(chunk)

    def cancel(self) -> None:
        self._vosk.cancel()

    def __enter__(self) -> HybridUtterance:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cancel()

    def finish(self) -> Transcript:
        heard = self._vosk.finish()
        audio = np.concatenate(self._pieces) if self._pieces else np.zeros(0, np.int16)
        if not heard.text:
            # Vosk heard no word at all: silence or noise. Whisper is not asked, so it cannot
            # invent a sentence out of nothing.
            return replace(heard, engine="hybrid", vosk_text="")
        end = heard.speech_end_s if heard.speech_end_s is not None else heard.audio_s
        cut = min(len(audio), int((end + self._owner.tail_s) * self._owner.sample_rate))
        final = self._owner.whisper.transcribe(audio[:cut])
        return Transcript(
            text=final.text,
            confidence=final.confidence,
            audio_s=heard.audio_s,
            elapsed_s=heard.elapsed_s + final.elapsed_s,
            final_latency_s=heard.final_latency_s + final.elapsed_s,
            engine="hybrid",
            speech_end_s=heard.speech_end_s,
            vosk_text=heard.text,
        )
