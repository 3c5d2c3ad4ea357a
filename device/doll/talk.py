"""One whole turn at the doll, headless: her words (a WAV or text) in, 차차's spoken reply out."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from device.stt.transcript import Transcript
from inference_server.api import InferenceClient, ReplyFinal, ReplySentence, Timings
from tts.engines import SpeechAudio, SpeechEngine, join_audio, speak, write_wav

_LOGGER = logging.getLogger(__name__)

NOTHING_HEARD = "응? 잘 안 들렸어. 한 번만 더 말해줄래?"
"""What the doll says when speech recognition heard nothing; no server call is made for it."""


@dataclass
class TurnResult:
    transcript: Transcript | None  # None when the turn started from text
    text: str  # what was sent to 차차
    reply: str
    backend: str  # which brain answered ("none": nothing was asked)
    fallbacks: list[dict] = field(default_factory=list)
    timings_ms: dict[str, float | None] = field(default_factory=dict)
    audio: np.ndarray | None = None
    sample_rate: int = 0
    engine: str = ""

    @property
    def audio_s(self) -> float:
        return 0.0 if self.audio is None or not self.sample_rate else len(self.audio) / self.sample_rate

    def as_json(self, output: Path | None) -> dict:
        return {
            "transcript": self.text,
            "confidence": self.transcript.confidence if self.transcript else None,
            "reply": self.reply,
            "backend": self.backend,
            "fallbacks": self.fallbacks,
            "timings_ms": self.timings_ms,
            "output": str(output) if output else None,
            "audio_s": round(self.audio_s, 3),
            "sample_rate": self.sample_rate,
            "tts_engine": self.engine,
        }


def encode_utterance(samples: np.ndarray, sample_rate: int) -> tuple[str, bytes]:
    """Her recording for the trip to Gemini: FLAC, lossless, ~40 % smaller than WAV.

    Ogg/Opus would be five times smaller again, but Google lists only Ogg *Vorbis* among the
    audio types Gemini accepts, so the doll sends what is sure to be understood.
    """
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, samples, sample_rate, format="FLAC", subtype="PCM_16")
    return "audio/flac", buffer.getvalue()


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


async def reply_to_text(
    text: str,
    client: InferenceClient,
    engine: SpeechEngine,
    *,
    conversation: str,
    channel: str = "doll",
    volume: float = 1.0,
    audio: tuple[str, bytes] | None = None,
) -> tuple[ReplyFinal, list[SpeechAudio], dict[str, float | None]]:
    """Ask the server and synthesise each sentence the moment it arrives.

    Synthesis runs in a worker thread while the next sentences stream in, so the first
    sentence is ready to play long before the whole reply is written.
    """
    started = time.perf_counter()
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    spoken: list[SpeechAudio] = []
    marks: dict[str, float | None] = dict.fromkeys(
        ("llm_first_sentence", "llm_total", "tts_first_audio", "first_audio")
    )

    async def synthesise() -> None:
        while (sentence := await queue.get()) is not None:
            t0 = time.perf_counter()
            chunks = await asyncio.to_thread(lambda s=sentence: list(speak(engine, s, volume=volume)))
            spoken.extend(chunks)
            if marks["tts_first_audio"] is None and any(len(c.samples) for c in chunks):
                marks["tts_first_audio"] = _ms(time.perf_counter() - t0)
                marks["first_audio"] = _ms(time.perf_counter() - started)

    worker = asyncio.create_task(synthesise())
    final: ReplyFinal | None = None
    try:
        async for event in client.chat(text, conversation=conversation, channel=channel, audio=audio):
            if isinstance(event, ReplySentence):
                if marks["llm_first_sentence"] is None:
                    marks["llm_first_sentence"] = _ms(time.perf_counter() - started)
                queue.put_nowait(event.text)
            else:
                final = event
                marks["llm_total"] = _ms(time.perf_counter() - started)
        queue.put_nowait(None)
        await worker
    finally:
        if not worker.done():
            worker.cancel()
    if final is None:
        final = ReplyFinal(
            conversation=conversation,
            reply="",
            backend="none",
            timings_ms=Timings(first_sentence=None, total=0.0),
        )
    return final, spoken, marks


async def run_turn(
    client: InferenceClient,
    engine: SpeechEngine,
    *,
    conversation: str,
    text: str | None = None,
    transcript: Transcript | None = None,
    gap_ms: int = 120,
    volume: float = 1.0,
    recording: tuple[np.ndarray, int] | None = None,
) -> TurnResult:
    """A whole turn from text or from a transcript; the reply audio is joined for writing."""
    started = time.perf_counter()
    heard = transcript.text if transcript is not None else (text or "").strip()
    timings: dict[str, float | None] = {
        "stt": _ms(transcript.elapsed_s) if transcript is not None else None,
    }
    if heard:
        audio = encode_utterance(*recording) if recording is not None else None
        final, chunks, marks = await reply_to_text(
            heard, client, engine, conversation=conversation, volume=volume, audio=audio
        )
        timings.update(marks)
        reply, backend = final.reply, final.backend
        fallbacks = [f.model_dump() for f in final.fallbacks]
    else:
        _LOGGER.info("heard nothing; answering locally without asking the server")
        t0 = time.perf_counter()
        chunks = await asyncio.to_thread(lambda: list(speak(engine, NOTHING_HEARD, volume=volume)))
        spent = _ms(time.perf_counter() - t0)
        timings.update(llm_first_sentence=None, llm_total=None, tts_first_audio=spent, first_audio=spent)
        reply, backend, fallbacks = NOTHING_HEARD, "none", []
    samples, rate = join_audio(chunks, gap_ms) if chunks else (np.zeros(0, np.int16), engine.sample_rate)
    stt_s = transcript.elapsed_s if transcript is not None else 0.0
    timings["total"] = _ms(stt_s + time.perf_counter() - started)
    return TurnResult(transcript, heard, reply, backend, fallbacks, timings, samples, rate, engine.name)


def write_reply(result: TurnResult, output: Path) -> None:
    if result.audio is None:
        raise ValueError("the turn has no audio")
    write_wav(output, result.audio, result.sample_rate)
