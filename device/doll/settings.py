# SPDX-License-Identifier: GPL-3.0-or-later
"""Settings of the live doll: the sound card (``audio:``) and the talking loop (``loop:``).

The GPIO parts have their own section (``hardware:``, :class:`hardware.HardwareSettings`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class AudioSettings(BaseModel):
    """Which microphone and speaker the doll uses, and how audio is cut into blocks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_device: str | int | None = Field(
        default=None,
        description=(
            "Microphone: part of its name as `arecord -l` / `python3 -m sounddevice` shows it "
            "(e.g. 'USB'), or its sounddevice index (integer); None = the system default."
        ),
    )
    output_device: str | int | None = Field(
        default=None,
        description=(
            "Speaker: part of its name as `aplay -l` / `python3 -m sounddevice` shows it, "
            "or its sounddevice index (integer); None = the system default."
        ),
    )
    capture_rate: int = Field(
        default=16000,
        ge=8000,
        le=48000,
        description=(
            "Rate of the microphone audio handed to the recogniser and the VAD (hertz); must equal "
            "stt.sample_rate. A card that cannot record at this rate is opened at its own and resampled."
        ),
    )
    block_ms: int = Field(
        default=30,
        ge=20,
        le=100,
        description=(
            "Length of one block of microphone and speaker audio (milliseconds); also the longest "
            "the speaker keeps sounding after an interruption."
        ),
    )
    volume: float = Field(
        default=1.0,
        ge=0.0,
        le=2.0,
        description="Loudness factor for everything the speaker plays (unitless, 1.0 = unchanged).",
    )


class LoopSettings(BaseModel):
    """How the doll listens, decides she has finished, and copes with a missing server."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    silence_ms: int = Field(
        default=700,
        ge=100,
        le=5000,
        description="She has finished speaking after this much silence, even if the button is held "
        "(milliseconds).",
    )
    max_utterance_s: float = Field(
        default=15.0,
        gt=0,
        le=120,
        description="Longest she may speak in one turn; listening stops there (seconds).",
    )
    min_speech_ms: int = Field(
        default=250,
        ge=0,
        le=5000,
        description="Less speech than this in a turn is taken as an accidental press: the doll goes "
        "back to idle without answering (milliseconds).",
    )
    vad: Literal["silero", "energy"] = Field(
        default="silero",
        description="Voice activity detector: 'silero' (a small neural model shipped with "
        "faster-whisper; robust to noise) or 'energy' (loudness only; no model needed).",
    )
    vad_threshold: float = Field(
        default=0.5,
        gt=0.0,
        lt=1.0,
        description="Silero: speech probability at or above which a block is speech (unitless, 0..1).",
    )
    energy_threshold_dbfs: float = Field(
        default=-40.0,
        ge=-90.0,
        le=0.0,
        description="Energy VAD: RMS level at or above which a block is speech (dB relative to full scale).",
    )
    server_retry_initial_s: float = Field(
        default=1.0,
        gt=0,
        le=600,
        description="After the server failed: first wait before asking its health again (seconds); "
        "each failure doubles it.",
    )
    server_retry_max_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Longest wait between two health checks of a failed server (seconds).",
    )
    long_press: Literal["repeat", "status"] = Field(
        default="repeat",
        description="What holding the button without speaking does: 'repeat' says the last reply "
        "again; 'status' says whether the server answers and which brain answered last.",
    )
    earcons: bool = Field(
        default=True,
        description="Short sounds when listening starts, when a reply is done, and on errors (true/false).",
    )
