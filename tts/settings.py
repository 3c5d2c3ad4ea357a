"""Settings of the speech engines (the ``tts`` section of the doll's configuration)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class EspeakSettings(BaseModel):
    """espeak-ng: robotic, but tiny, fast and always there."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    voice: str = Field(default="ko", min_length=1, description="espeak-ng voice name (text, e.g. 'ko').")
    rate_wpm: int = Field(default=165, ge=80, le=450, description="Speaking rate in words per minute.")
    pitch: int = Field(
        default=50, ge=0, le=99, description="Base pitch on espeak-ng's 0–99 scale (unitless)."
    )
    executable: str = Field(
        default="espeak-ng",
        min_length=1,
        description="espeak-ng program: a name looked up on PATH, or a file path.",
    )


class PiperSettings(BaseModel):
    """Piper: a neural voice in an .onnx file with its .onnx.json config beside it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: Path | None = Field(default=None, description="Path to the Piper voice model (.onnx file).")
    config: Path | None = Field(
        default=None,
        description="Path to the voice config (.onnx.json file); defaults to model + '.json'.",
    )
    speaker_id: int | None = Field(
        default=None,
        ge=0,
        description="Speaker index for multi-speaker voices (integer); None = the default.",
    )
    length_scale: float | None = Field(
        default=None,
        gt=0,
        description="Phoneme duration factor (unitless, >1 slower, <1 faster); None = voice's.",
    )
    use_cuda: bool = Field(default=False, description="Run the voice on a CUDA GPU (true/false).")

    @property
    def config_path(self) -> Path | None:
        """The config file actually used: ``config``, or the model path plus '.json'."""
        if self.config is not None:
            return self.config
        if self.model is None:
            return None
        return self.model.with_name(self.model.name + ".json")


class TTSSettings(BaseModel):
    """Which engine speaks, and how sentences are put together."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: Literal["espeak", "piper"] = Field(
        default="espeak", description="Speech engine name: 'espeak' or 'piper'."
    )
    espeak: EspeakSettings = Field(
        default_factory=EspeakSettings, description="espeak-ng settings (section)."
    )
    piper: PiperSettings = Field(default_factory=PiperSettings, description="Piper settings (section).")
    sentence_gap_ms: int = Field(
        default=120,
        ge=0,
        le=2000,
        description="Silence between sentences when they are joined, in milliseconds.",
    )
    volume: float = Field(
        default=1.0,
        ge=0,
        le=2,
        description="Loudness factor applied to the samples (unitless, 1.0 = unchanged).",
    )

    @model_validator(mode="after")
    def _piper_needs_a_model(self) -> TTSSettings:
        if self.engine == "piper" and self.piper.model is None:
            raise ValueError(
                "engine 'piper' needs a voice: set tts.piper.model to an .onnx voice file "
                "(or set tts.engine to 'espeak')"
            )
        return self
