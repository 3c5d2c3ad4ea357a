"""The one error type of the Telegram package."""

from __future__ import annotations


class TelegramError(Exception):
    """A problem the person running `chacha telegram` can fix; the message is one line that says how.

    Not to be confused with python-telegram-bot's own ``telegram.error.TelegramError``.
    """
