"""The secrets, read from the environment in one place and never printed.

The systemd EnvironmentFile (or the shell) puts them there; there is no .env file. Build `Secrets()`
when a secret is needed, never at import time: the environment is read then.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

GEMINI_API_KEY = "GEMINI_API_KEY"
CHACHA_API_TOKEN = "CHACHA_API_TOKEN"
TELEGRAM_BOT_TOKEN = "TELEGRAM_BOT_TOKEN"


def _clean(value: Any) -> Any:
    """Surrounding whitespace is dropped; an empty or blank value is no value."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


class Secrets(BaseSettings):
    """GEMINI_API_KEY, CHACHA_API_TOKEN and TELEGRAM_BOT_TOKEN; each None when unset or blank.

    In code (tests, benchmarks) give values by the variable's name: `Secrets(GEMINI_API_KEY="bench")`.
    """

    model_config = SettingsConfigDict(
        case_sensitive=True,
        env_prefix="",
        env_file=None,
        env_ignore_empty=True,
        # Only these names: populate_by_name would also read lowercase `gemini_api_key` from the
        # environment, and a misspelt keyword in code is an error, not a silently missing secret.
        extra="forbid",
        hide_input_in_errors=True,
        frozen=True,
    )

    gemini_api_key: SecretStr | None = Field(None, alias=GEMINI_API_KEY)
    chacha_api_token: SecretStr | None = Field(None, alias=CHACHA_API_TOKEN)
    telegram_bot_token: SecretStr | None = Field(None, alias=TELEGRAM_BOT_TOKEN)

    @field_validator("gemini_api_key", "chacha_api_token", "telegram_bot_token", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return _clean(value)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Values given in code (tests, benchmarks) win; then the environment. No .env, no secrets dir.
        return (init_settings, env_settings)


def reveal(secret: SecretStr | None) -> str | None:
    """The plain value, for the one call that sends it (an HTTP header, an SDK client)."""
    return None if secret is None else secret.get_secret_value()


def env_secret(name: str) -> SecretStr | None:
    """A secret from a variable whose name is configured (llm.openai.api_key_env); blank is None."""
    value = os.environ.get(name)
    return None if value is None or not value.strip() else SecretStr(value.strip())
