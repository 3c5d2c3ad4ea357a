"""Speech engines behind one small interface, and speaking a whole reply with them.

The engines themselves live in :mod:`tts.espeak` and :mod:`tts.piper_voice`; this module
imports them only when one is created, so choosing espeak never loads Piper.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Protocol

from tts.audio import SpeechAudio, join_audio, scale_volume, write_wav
from tts.normalize import normalize_for_speech
from tts.sentences import split_sentences
from tts.settings import TTSSettings

_LOGGER = logging.getLogger(__name__)

__all__ = [
    "SpeechAudio",
    "SpeechEngine",
    "create_engine",
    "join_audio",
    "speak",
    "write_wav",
]


class SpeechEngine(Protocol):
    """Turns one sentence into audio."""

    name: str
    """'espeak' or 'piper'."""
    sample_rate: int
    """Hertz; every SpeechAudio from this engine carries it."""

    def synthesize_sentence(self, sentence: str) -> SpeechAudio: ...


def speak(engine: SpeechEngine, text: str, volume: float = 1.0) -> Iterator[SpeechAudio]:
    """Normalise, split into sentences, yield one SpeechAudio per sentence as it is made.

    ``volume`` scales the samples (1.0 unchanged), clipping at the int16 limits.
    """
    for sentence in split_sentences(normalize_for_speech(text)):
        audio = engine.synthesize_sentence(sentence)
        if volume != 1.0:
            audio = SpeechAudio(audio.text, scale_volume(audio.samples, volume), audio.sample_rate)
        yield audio


def create_engine(settings: TTSSettings) -> SpeechEngine:
    """The engine ``settings.engine`` names, configured from its section."""
    _LOGGER.debug("creating the %s speech engine", settings.engine)
    if settings.engine == "piper":
        from tts.piper_voice import PiperEngine

        return PiperEngine(settings.piper)
    from tts.espeak import EspeakEngine

    return EspeakEngine(settings.espeak)
