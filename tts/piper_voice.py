"""Piper as a speech engine: a neural voice loaded once, run in this process."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from tts.audio import SpeechAudio, as_int16
from tts.errors import TTSError
from tts.normalize import speakable_sentence
from tts.settings import PiperSettings

_LOGGER = logging.getLogger(__name__)


class PiperEngine:
    """Speech from a Piper voice (.onnx model plus its .onnx.json config)."""

    name = "piper"

    def __init__(self, settings: PiperSettings) -> None:
        self.settings = settings
        model_path, config_path = self._voice_files(settings)
        try:
            from piper import PiperVoice, SynthesisConfig
        except ImportError as exc:
            raise TTSError(f"piper-tts is not installed ({exc}): run `pip install -e '.[device]'`") from exc
        started = time.perf_counter()
        try:
            self._voice = PiperVoice.load(model_path, config_path=config_path, use_cuda=settings.use_cuda)
        except Exception as exc:  # onnxruntime and json raise many kinds
            message = " ".join(str(exc).split())[:200]
            raise TTSError(
                f"Piper cannot load the voice {model_path} ({type(exc).__name__}: {message}) — "
                "set tts.piper.model to a valid Piper .onnx voice with its matching .onnx.json"
            ) from exc
        self._synthesis = SynthesisConfig(speaker_id=settings.speaker_id, length_scale=settings.length_scale)
        self.sample_rate: int = self._voice.config.sample_rate
        _LOGGER.info(
            "Piper voice %s loaded in %.1f s (%d Hz, espeak voice %s)",
            model_path.name,
            time.perf_counter() - started,
            self.sample_rate,
            self._voice.config.espeak_voice,
        )

    @staticmethod
    def _voice_files(settings: PiperSettings) -> tuple[Path, Path]:
        model_path = settings.model
        config_path = settings.config_path
        if model_path is None or config_path is None:
            raise TTSError("no Piper voice configured: set tts.piper.model to an .onnx voice file")
        if not model_path.is_file():
            raise TTSError(
                f"Piper voice not found: {model_path} — set tts.piper.model to an .onnx voice "
                "file (its .onnx.json must sit beside it)"
            )
        if not config_path.is_file():
            raise TTSError(
                f"Piper voice config not found: {config_path} — put the voice's .onnx.json "
                "beside the model or set tts.piper.config to it"
            )
        return model_path, config_path

    def synthesize_sentence(self, sentence: str) -> SpeechAudio:
        """One sentence of audio (Piper may cut it further; the pieces are joined)."""
        spoken = speakable_sentence(sentence)
        if not spoken:
            return SpeechAudio(sentence, np.zeros(0, dtype=np.int16), self.sample_rate)
        started = time.perf_counter()
        try:
            pieces = [
                as_int16(chunk.audio_int16_array) for chunk in self._voice.synthesize(spoken, self._synthesis)
            ]
        except Exception as exc:  # piper wraps espeak-ng and onnxruntime
            raise TTSError(
                f"Piper failed on {spoken[:40]!r} ({type(exc).__name__}: {exc}) — "
                "check the voice files, or switch tts.engine to 'espeak'"
            ) from exc
        samples = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int16)
        _LOGGER.debug(
            "Piper: %d chars → %.2f s of audio in %.3f s",
            len(spoken),
            len(samples) / self.sample_rate,
            time.perf_counter() - started,
        )
        return SpeechAudio(sentence, samples, self.sample_rate)
