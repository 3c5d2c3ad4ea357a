"""What `chacha telegram …` does: run the bot, import a chat export, export 차차's data."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from argparse import Namespace
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from inference_server.shared.secrets import Secrets
from telegram_collector.errors import TelegramError

if TYPE_CHECKING:
    from device.config import ChachaConfig
    from telegram_collector.settings import TelegramSettings

_LOGGER = logging.getLogger(__name__)

TOKEN_ENV = "TELEGRAM_BOT_TOKEN"
EXPORT_FOLDER = "telegram-export"


def _settings(config: ChachaConfig) -> TelegramSettings:
    return config.telegram


def _database(config: ChachaConfig) -> Path:
    return _settings(config).database_path(config.server.data_dir)


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


def run_bot(args: Namespace, config: ChachaConfig) -> int:
    """`chacha telegram`: serve the allowed users until interrupted (SIGINT/SIGTERM)."""
    settings = _settings(config)
    secret = Secrets().telegram_bot_token
    if secret is None:
        raise TelegramError(
            f"{TOKEN_ENV} is not set: create a bot with @BotFather and put {TOKEN_ENV}=<its token> "
            "in the environment (the env file on the Pi); see docs/telegram.md"
        )
    token = secret.get_secret_value()
    if not settings.users:
        raise TelegramError(
            "telegram.users is empty, so the bot would answer nobody: add 진주's Telegram user id "
            "(and yours, role developer) to chacha.yaml; see docs/telegram.md"
        )
    from telegram import Update

    from device.commands import _server_client
    from telegram_collector.bot import build_application
    from telegram_collector.store import CollectorStore

    hide_token(token)
    username = asyncio.run(_introduce(settings, token))
    store = CollectorStore(_database(config))
    try:
        with _server_client(config) as client:
            application = build_application(settings, config, token=token, client=client, store=store)
            _LOGGER.info(
                "@%s talks with %s; collecting into %s",
                username,
                ", ".join(f"{u.name} ({u.role})" for u in settings.users),
                store.path,
            )
            with _bot_api_errors(settings):
                application.run_polling(allowed_updates=[Update.MESSAGE, Update.EDITED_MESSAGE])
    finally:
        store.close()
    return 0


async def _introduce(settings: TelegramSettings, token: str) -> str:
    """Check the token with getMe before anything else starts; the bot's @username."""
    from telegram import Bot

    urls = {"base_url": settings.base_url, "base_file_url": settings.base_file_url}
    with _bot_api_errors(settings):
        async with Bot(token, **{k: v for k, v in urls.items() if v}) as bot:  # shuts down on failure too
            return bot.username


@contextlib.contextmanager
def _bot_api_errors(settings: TelegramSettings) -> Iterator[None]:
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


def import_chat(args: Namespace, config: ChachaConfig) -> int:
    """`chacha telegram import result.json --she NAME_OR_ID --he NAME_OR_ID [--chat NAME_OR_ID]`."""
    from telegram_collector.importer import import_export
    from telegram_collector.store import CollectorStore

    with CollectorStore(_database(config)) as store:
        report = import_export(args.export, store, she=args.she, he=args.he, chat=args.chat)
        print("\n".join(report.lines()))
        print(f"The collector now holds {store.count()} messages: {store.path}")
    return 0


def export(args: Namespace, config: ChachaConfig) -> int:
    """`chacha telegram export [--output DIR]`: phrasebook, examples and fine-tuning sets."""
    from telegram_collector.exporter import export_all
    from telegram_collector.store import CollectorStore

    database = _database(config)
    if not database.is_file():
        raise TelegramError(
            f"nothing collected yet ({database} does not exist): run the bot or "
            "`chacha telegram import result.json --she NAME --he NAME` first"
        )
    output = args.output or config.server.data_dir / EXPORT_FOLDER
    with CollectorStore(database) as store:
        report = export_all(
            store,
            output,
            persona_file=config.persona.file,
            max_gap_s=args.max_gap_min * 60,
            examples=args.examples,
        )
    print("\n".join(report.lines()))
    print("These files hold your private chats: keep them on this machine.")
    return 0
