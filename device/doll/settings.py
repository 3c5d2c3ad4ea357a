# SPDX-License-Identifier: GPL-3.0-or-later
"""Settings of the live doll: the sound card (``audio:``) and the talking loop (``loop:``).

The GPIO parts have their own section (``hardware:``, :class:`hardware.HardwareSettings`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


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


class BargeInSettings(BaseModel):
    """How her voice stops him while he speaks (``loop.barge_in``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    by: Literal["voice", "button"] = Field(
        default="button",
        description="What stops 차차 mid-reply: 'button' only, or 'voice' (her speech too, heard "
        "through the echo canceller that takes his own voice out of the microphone). Voice works "
        "where his echo at the microphone is well below her voice (docs/turn-taking.md).",
    )
    min_speech_ms: int = Field(
        default=150,
        ge=30,
        le=2000,
        description="How much of her speech stops him: shorter sounds (a cough, a word of his that "
        "the canceller left) do not (milliseconds).",
    )
    threshold: float = Field(
        default=0.8,
        gt=0.0,
        lt=1.0,
        description="Silero: speech probability at or above which a block counts towards "
        "min_speech_ms while he speaks (unitless, 0..1).",
    )


class WakeSettings(BaseModel):
    """The wake phrase (``loop.wake``): she says it, and the doll listens with no press."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        default=False,
        description="Listen, on the doll and nowhere else, for her enrolled wake phrase while it "
        'rests (`chacha wake enroll` first; docs/turn-taking.md, "The wake phrase").',
    )
    threshold: float = Field(
        default=0.25,
        gt=0.0,
        lt=1.0,
        description="How close the microphone must come to one of her recordings of the phrase: "
        "lower wakes less often by mistake and misses more (cosine distance, 0..1).",
    )
    listen_s: float = Field(
        default=5.0,
        ge=1.0,
        le=30.0,
        description="After the phrase, how long the doll waits for her to begin talking (seconds).",
    )


class LoopSettings(BaseModel):
    """How the doll listens, decides she has finished, and copes with a missing server."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    end_of_turn: Literal["cues", "adaptive", "fixed"] = Field(
        default="adaptive",
        description="How the doll decides she has finished, even with the button held: 'cues' asks "
        "a model fitted on real Korean speech, in every silent block, from the pitch, level and "
        "length of her last words, their ending and the pause so far; 'adaptive' "
        "waits min_silence_ms after a finished Korean sentence, max_silence_ms after a connective "
        "or a filler (…는데, …고, 음), silence_ms otherwise; 'fixed' always waits silence_ms.",
    )
    silence_ms: int = Field(
        default=900,
        ge=100,
        le=5000,
        description="Silence that ends her turn when her last words give no cue either way (adaptive), "
        "or always (fixed) (milliseconds).",
    )
    min_silence_ms: int = Field(
        default=300,
        ge=100,
        le=5000,
        description="Adaptive: the shortest silence that ends her turn, after a finished sentence "
        "(milliseconds).",
    )
    max_silence_ms: int = Field(
        default=1500,
        ge=100,
        le=10000,
        description="Adaptive: the longest silence she may pause for after a connective or a filler "
        "before her turn ends (milliseconds).",
    )
    tentative_end: bool = Field(
        default=False,
        description="Ask for his reply as soon as her turn is probably over and keep listening: if "
        "she goes on before his first sound, the reply is dropped unheard (and not stored) and her "
        "turn goes on as one. Costs a request each time she does (never from the doll's quota "
        "reserve); her turn ends for sure after max_silence_ms.",
    )
    speculate_after_ms: int = Field(
        default=150,
        ge=30,
        le=5000,
        description="Hybrid hearing: after this much silence Whisper starts reading what she said so "
        "far, in case her turn is over; dropped if she goes on (milliseconds).",
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
    long_press: Literal["repeat", "status", "mute"] = Field(
        default="repeat",
        description="What holding the button without speaking does: 'repeat' says the last reply "
        "again; 'status' says whether the server answers and which brain answered last; 'mute' "
        "turns the doll's own listening off (no follow-up window: it listens only while the button "
        "is held) and, the next time, on again; the choice survives a restart.",
    )
    earcons: bool = Field(
        default=True,
        description="Short sounds when listening starts, when a reply is done, and on errors (true/false).",
    )
    follow_up_s: float = Field(
        default=5.0,
        ge=0,
        le=30,
        description="After his reply has played to the end, the doll keeps listening this long, the "
        "listening light on: if she speaks, that is her next turn, no press needed; if not, the "
        "conversation ends. 0 turns it off (seconds).",
    )
    goodbyes: tuple[str, ...] = Field(
        default=(
            "잘 자",
            "잘자요",
            "그만",
            "그만해",
            "그만하자",
            "나중에 얘기해",
            "나중에 얘기하자",
            "이따 얘기해",
        ),
        description="What she says to end the conversation: when her words end with one of these "
        "(spaces and punctuation aside), he answers and the doll does not keep listening.",
    )
    barge_in: BargeInSettings = Field(default_factory=BargeInSettings)
    wake: WakeSettings = Field(default_factory=WakeSettings)

    @model_validator(mode="after")
    def _silences_in_order(self) -> LoopSettings:
        if self.end_of_turn == "adaptive" and not (
            self.min_silence_ms <= self.silence_ms <= self.max_silence_ms
        ):
            raise ValueError(
                f"loop.min_silence_ms ({self.min_silence_ms}) ≤ loop.silence_ms ({self.silence_ms}) "
                f"≤ loop.max_silence_ms ({self.max_silence_ms}) must hold: adjust them"
            )
        return self
