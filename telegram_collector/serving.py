"""Running the bot against the Bot API: the start-up check, its errors, and the token kept out
of the logs. The command line (``device/cli/telegram.py``) composes the bot with the rest."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from telegram_collector.errors import TelegramError

if TYPE_CHECKING:
    from telegram_collector.settings import TelegramSettings

_LOGGER = logging.getLogger(__name__)

TOKEN_ENV = "TELEGRAM_BOT_TOKEN"
EXPORT_FOLDER = "telegram-export"


class _HideToken(logging.Filter):
    """Blank the bot token out of log lines: httpx and PTB log Bot API URLs, and the token is in them."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self._token = token
        self._quoted = token.replace(":", "%3A")

    def filter(self, record: logging.LogRecord) -> bool:
        line = record.getMessage()
        if self._token in line or self._quoted in line:
            record.msg = line.replace(self._token, "<TELEGRAM_BOT_TOKEN>").replace(
                self._quoted, "<TELEGRAM_BOT_TOKEN>"
            )
            record.args = None
        return True


def hide_token(token: str) -> _HideToken:
    """Install the token filter on every handler of the root logger (where the lines are written)."""
    hider = _HideToken(token)
    for handler in logging.getLogger().handlers:
        handler.addFilter(hider)
    return hider


async def introduce(settings: TelegramSettings, token: str) -> str:
    """Check the token with getMe before anything else starts; the bot's @username."""
    from telegram import Bot

    urls = {"base_url": settings.base_url, "base_file_url": settings.base_file_url}
    with bot_api_errors(settings):
        async with Bot(token, **{k: v for k, v in urls.items() if v}) as bot:  # shuts down on failure too
            return bot.username


@contextlib.contextmanager
def bot_api_errors(settings: TelegramSettings) -> Iterator[None]:
    """The Bot API's start-up errors as one-line TelegramErrors (PTB's own messages hold the token)."""
    from telegram.error import InvalidToken, NetworkError

    try:
        yield
    except InvalidToken:
        raise TelegramError(
            f"Telegram rejected {TOKEN_ENV}: copy the token again from @BotFather (/mybots → API Token)"
        ) from None
    except NetworkError as exc:
        where = settings.base_url or "api.telegram.org"
        raise TelegramError(f"cannot reach the Telegram Bot API at {where}: {exc.message}") from None
