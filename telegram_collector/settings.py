"""Settings of the Telegram bot and chat collector (the ``telegram:`` section of chacha.yaml).

The bot token is a secret and never lives here: it comes from ``TELEGRAM_BOT_TOKEN``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from inference_server.settings import ConversationId

DATABASE_NAME = "telegram.sqlite3"

Role = Literal["partner", "developer"]

STT_OFF = "off"
"""telegram.stt_engine's own choice: voice notes get a polite request to type."""

stt_engines: Callable[[], list[str]] | None = None
"""The speech recognisers ``telegram.stt_engine`` may name, or None while nobody has said.

The engines are registered in device.stt.registry, which the bot may not import (contract
telegram-not-device): device.config, which composes the bot's settings with the doll's, sets
this to that registry's ``choices`` when it is imported, so an engine registered there (a new
module, or a test's toy one) is accepted here too, and an unknown name is an error naming them.
"""


class TelegramUser(BaseModel):
    """One person the bot talks to; everybody else is a stranger and never reaches the server."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: int = Field(gt=0, description="Telegram user id (a number; send /start to @userinfobot to see yours)")
    name: str = Field(
        min_length=1, max_length=64, description="who this is, for logs and commands, e.g. 진주"
    )
    role: Role = Field(
        "partner",
        description="'partner': talks with 차차 (her words are collected as 'she'); "
        "'developer': also may use /status, /persona, /history, /clear, /version",
    )
    conversation: ConversationId | None = Field(
        None,
        description="conversation id on the server; None = client.conversation (the doll's, so "
        "차차 remembers both)",
    )


class TelegramSettings(BaseModel):
    """The Telegram bot: who may talk to it, where the Bot API is, and what it collects."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    users: list[TelegramUser] = Field(
        default_factory=list, description="the allow-list; the bot refuses to start while it is empty"
    )
    base_url: str | None = Field(
        None,
        description="Bot API endpoint, e.g. http://127.0.0.1:8081/bot for a local Bot API server; "
        "the token is appended (or put where {token} is); None = Telegram's",
    )
    base_file_url: str | None = Field(
        None,
        description="Bot API file download endpoint, e.g. http://127.0.0.1:8081/file/bot; None = Telegram's",
    )
    stranger_reply: str | None = Field(
        None,
        max_length=4096,
        description="what a stranger is told (at most once every ten minutes); None = stay silent",
    )
    max_voice_s: float = Field(
        60.0, gt=0, le=600, description="longest voice note the bot listens to (seconds)"
    )
    stt_engine: str | None = Field(
        None,
        description="speech recogniser for voice notes; None = stt.engine. 'whisper' needs the least "
        "memory (~300 MB; Vosk's Korean model ~550 MB); 'off' = voice notes get a polite request to type",
    )
    voice_reply: bool = Field(True, description="answer a voice note with a voice note in 차차's voice too")
    database: Path | None = Field(
        None, description=f"collector database; None = <server.data_dir>/{DATABASE_NAME}"
    )

    @field_validator("users")
    @classmethod
    def _unique_ids(cls, value: list[TelegramUser]) -> list[TelegramUser]:
        ids = [user.id for user in value]
        if len(set(ids)) != len(ids):
            raise ValueError("each user id may appear once")
        return value

    @field_validator("stt_engine")
    @classmethod
    def _known_engine(cls, value: str | None) -> str | None:
        if value is None or value == STT_OFF or stt_engines is None:
            return value
        allowed = [*stt_engines(), STT_OFF]
        if value not in allowed:
            raise ValueError(f"unknown speech recogniser {value!r}: choose from {', '.join(allowed)}")
        return value

    @field_validator("database")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value else None

    def database_path(self, data_dir: Path) -> Path:
        """Where the collector keeps its messages."""
        return self.database or data_dir / DATABASE_NAME

    def user(self, user_id: int | None) -> TelegramUser | None:
        """The allowed user with this id, or None for a stranger."""
        return next((u for u in self.users if u.id == user_id), None)
