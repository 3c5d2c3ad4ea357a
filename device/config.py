"""The one configuration file, chacha.yaml: every part's settings, validated at start.

Secrets never live here: GEMINI_API_KEY, CHACHA_API_TOKEN and TELEGRAM_BOT_TOKEN come from
the environment (systemd's EnvironmentFile on the Pi).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

import telegram_collector.settings
from device.doll.settings import AudioSettings, LoopSettings
from device.stt import registry as stt_registry
from device.stt.settings import STTSettings
from hardware.settings import HardwareSettings
from inference_server.errors import InferenceError
from inference_server.settings import (
    ConversationId,
    LLMSettings,
    MemorySettings,
    PersonaSettings,
    ServerSettings,
)
from inference_server.yamlfile import describe_validation_error, load_yaml
from telegram_collector.settings import TelegramSettings
from tts.settings import TTSSettings

# telegram.stt_engine names a speech recogniser of the doll's registry, which the bot may not
# import: this module, which composes both, hands the bot the registry's choices.
telegram_collector.settings.stt_engines = stt_registry.choices

CONFIG_ENV = "CHACHA_CONFIG"
SEARCH_PATHS = (
    Path("chacha.yaml"),
    Path("~/.config/chachaping/chacha.yaml"),
    Path("/etc/chachaping/chacha.yaml"),
)


class ConfigError(Exception):
    """The configuration file is missing, malformed or has a bad key; the message names it."""


class ClientSettings(BaseModel):
    """How the doll (and other clients) reach the inference server."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    url: str | None = Field(
        None, description="server URL, e.g. http://127.0.0.1:8750; None = start one in-process"
    )
    conversation: ConversationId = Field("jinju", description="conversation id of the doll's turns")
    timeout_s: float = Field(30.0, gt=0, le=300, description="longest wait for a whole reply (seconds)")
    send_audio: Literal["auto", "on", "off"] = Field(
        "auto",
        description="send her recording with the quick transcript so Gemini hears her while Whisper "
        "reads: 'auto' when the server says its answering backend hears audio, 'on' always, "
        "'off' never (text only, after the final transcript)",
    )

    @field_validator("send_audio", mode="before")
    @classmethod
    def _yes_no(cls, value: object) -> object:
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


class ChachaConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    server: ServerSettings = Field(default_factory=ServerSettings)
    client: ClientSettings = Field(default_factory=ClientSettings)
    persona: PersonaSettings = Field(default_factory=PersonaSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    memory: MemorySettings = Field(default_factory=MemorySettings)
    stt: STTSettings = Field(default_factory=STTSettings)
    tts: TTSSettings = Field(default_factory=TTSSettings)
    audio: AudioSettings = Field(default_factory=AudioSettings)
    loop: LoopSettings = Field(default_factory=LoopSettings)
    hardware: HardwareSettings = Field(default_factory=HardwareSettings)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)


def find_config(explicit: Path | None) -> Path | None:
    """--config, then $CHACHA_CONFIG, then ./chacha.yaml, ~/.config/…, /etc/…; None = defaults."""
    if explicit is not None:
        return explicit
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    for candidate in SEARCH_PATHS:
        path = candidate.expanduser()
        if path.is_file():
            return path
    return None


def load_config(explicit: Path | None = None) -> tuple[ChachaConfig, Path | None]:
    """The validated configuration and the file it came from (None: built-in defaults)."""
    path = find_config(explicit)
    if path is None:
        return ChachaConfig(), None
    try:
        data = load_yaml(path, what="config")
    except InferenceError as exc:
        raise ConfigError(str(exc)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: the top level must be a mapping of sections")
    try:
        return ChachaConfig.model_validate(data), path
    except ValidationError as exc:
        raise ConfigError(
            f"config file {path}: {describe_validation_error(exc, ChachaConfig)} — see chacha.example.yaml"
        ) from None
