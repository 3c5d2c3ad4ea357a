"""Settings of the inference server: where it listens, what it remembers, which brains it uses."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

BackendName = Literal["gemini", "phrasebook"]

MAX_TEXT_CHARS = 2000
"""Longest utterance the server accepts (characters)."""

ConversationId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$"),
]
"""A conversation's id: the doll and Telegram use the same one, so 차차 remembers both."""


def default_data_dir() -> Path:
    """Where history lives unless configured: $XDG_DATA_HOME/chachaping (~/.local/share/chachaping)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "chachaping"


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Settings):
    host: str = Field("127.0.0.1", description="address to bind; 127.0.0.1 keeps it on this machine")
    port: int = Field(8750, ge=1, le=65535, description="TCP port")
    data_dir: Path = Field(
        default_factory=default_data_dir, description="folder for the conversation database"
    )
    history_turns: int = Field(
        12, ge=0, le=200, description="how many earlier turns (hers and his) go to the model"
    )

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()


class GeminiSettings(_Settings):
    model: str = Field(
        "gemini-flash-latest",
        min_length=1,
        description="Gemini model id; the default alias follows Google's current Flash model",
    )
    temperature: float = Field(0.9, ge=0.0, le=2.0, description="sampling temperature")
    max_output_tokens: int = Field(256, ge=16, le=8192, description="longest reply (tokens)")
    first_token_timeout_s: float = Field(
        6.0, gt=0, le=120, description="give up on Gemini if no text arrives within this (seconds)"
    )
    total_timeout_s: float = Field(
        20.0, gt=0, le=300, description="give up on Gemini if the reply is not done by this (seconds)"
    )
    base_url: str | None = Field(
        None, description="API endpoint override (a proxy or a test server); None = Google's"
    )
    api_version: str = Field("v1beta", description="Gemini REST API version")


class PhrasebookSettings(_Settings):
    file: Path | None = Field(
        None, description="phrasebook YAML (pairs of what she says → what he answers); None = sample"
    )
    min_similarity: float = Field(
        0.35,
        ge=0.0,
        le=1.0,
        description="below this cosine similarity he says he did not catch it (0..1)",
    )

    @field_validator("file")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value else None


class LLMSettings(_Settings):
    backends: list[BackendName] = Field(
        default_factory=lambda: ["gemini", "phrasebook"],
        min_length=1,
        description="the chain, tried in order; phrasebook should stay last as the offline net",
    )
    gemini: GeminiSettings = Field(default_factory=GeminiSettings)
    phrasebook: PhrasebookSettings = Field(default_factory=PhrasebookSettings)

    @field_validator("backends")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each backend may appear once")
        return value


class PersonaSettings(_Settings):
    file: Path | None = Field(None, description="persona YAML; None = the shipped 차차 persona")
    timezone: str = Field("Asia/Seoul", description="time zone for the clock in the prompt")

    @field_validator("file")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value else None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use a name like Asia/Seoul)") from None
        return value
