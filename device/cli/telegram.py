"""`chacha telegram` (run the bot), `telegram import` and `telegram export`.

The bot (``telegram_collector``) is given what it needs of the rest: the server's client, its
options from the configuration, and the speech recogniser and voice to use.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from argparse import Namespace
from pathlib import Path
from typing import TYPE_CHECKING

from inference_server.shared.secrets import Secrets
from telegram_collector.errors import TelegramError
from telegram_collector.serving import EXPORT_FOLDER, TOKEN_ENV

if TYPE_CHECKING:
    from device.config import ChachaConfig
    from telegram_collector.settings import TelegramSettings

_LOGGER = logging.getLogger(__name__)


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
        return value

    return parse


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `telegram` (run the bot), `telegram import` and `telegram export` to the CLI."""
    from device.cli import telegram as commands

    p = subparsers.add_parser(
        "telegram",
        help="run the Telegram bot (needs TELEGRAM_BOT_TOKEN); `import`/`export` chat history",
        description="Without a sub-command: run the bot until interrupted.",
    )
    p.set_defaults(func=commands.run_bot)
    sub = p.add_subparsers(dest="telegram_command", metavar="WHAT")

    i = sub.add_parser("import", help="import a Telegram Desktop chat export (result.json)")
    i.add_argument("export", type=Path, metavar="RESULT_JSON", help="the result.json Telegram Desktop wrote")
    i.add_argument(
        "--she", required=True, metavar="NAME_OR_ID", help="진주: display name or user id in the export"
    )
    i.add_argument(
        "--he", required=True, metavar="NAME_OR_ID", help="차차: display name or user id in the export"
    )
    i.add_argument(
        "--chat",
        metavar="NAME_OR_ID",
        help="from a whole-account export, only this chat (default: every chat of the two)",
    )
    i.set_defaults(func=commands.import_chat)

    e = sub.add_parser("export", help="write a phrasebook, few-shot examples and fine-tuning sets")
    e.add_argument(
        "--output",
        type=Path,
        metavar="DIR",
        help="folder to write into (default: <server.data_dir>/telegram-export)",
    )
    e.add_argument(
        "--max-gap-min",
        type=_positive(float),
        default=30.0,
        metavar="MIN",
        help="his reply counts only within this many minutes of hers (default 30)",
    )
    e.add_argument(
        "--examples",
        type=_positive(int),
        default=12,
        metavar="N",
        help="few-shot examples to pick (default 12)",
    )
    e.set_defaults(func=commands.export)
    return p


# --- the handlers ------------------------------------------------------------------------------


def _settings(config: ChachaConfig) -> TelegramSettings:
    return config.telegram


def _database(config: ChachaConfig) -> Path:
    return _settings(config).database_path(config.server.data_dir)


def _recogniser(config: ChachaConfig, settings: TelegramSettings):
    from device.stt.auto import create_transcriber

    return create_transcriber(config.stt, engine=settings.stt_engine)


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

    from device.cli.server import server_client
    from telegram_collector.bot import BotOptions, build_application
    from telegram_collector.serving import bot_api_errors, hide_token, introduce
    from telegram_collector.store import CollectorStore

    hide_token(token)
    username = asyncio.run(introduce(settings, token))
    store = CollectorStore(_database(config))
    try:
        with server_client(config) as client:
            application = build_application(
                settings,
                BotOptions.of(config),
                token=token,
                client=client,
                store=store,
                transcriber_factory=lambda: _recogniser(config, settings),
            )
            _LOGGER.info(
                "@%s talks with %s; collecting into %s",
                username,
                ", ".join(f"{u.name} ({u.role})" for u in settings.users),
                store.path,
            )
            with bot_api_errors(settings):
                application.run_polling(allowed_updates=[Update.MESSAGE, Update.EDITED_MESSAGE])
    finally:
        store.close()
    return 0


def _apply_forgets(store, config: ChachaConfig) -> None:
    """What the server forgot at her request, applied to the collector before an import or an
    export (the bot applies it too, every minute, but it may not be running)."""
    from inference_server.runtime import DATABASE_NAME
    from inference_server.store import ConversationStore
    from telegram_collector.store import Forget

    path = config.server.data_dir / DATABASE_NAME
    if not path.is_file():
        print(
            f"note: no server history at {path}, so no forget log to apply here; "
            "the bot applies the server's log when it runs"
        )
        return
    with contextlib.closing(ConversationStore(path)) as conversations:
        log = conversations.forgets(store.forgotten_through(), limit=1_000_000)
    deleted = store.apply_forgets([Forget(f.id, f.conversation, f.created_at, f.said, f.words) for f in log])
    if log:
        print(f"Applied {len(log)} forgetting(s) of the server: {deleted} collected message(s) deleted.")


def import_chat(args: Namespace, config: ChachaConfig) -> int:
    """`chacha telegram import result.json --she NAME_OR_ID --he NAME_OR_ID [--chat NAME_OR_ID]`."""
    from telegram_collector.importer import import_export
    from telegram_collector.store import CollectorStore

    with CollectorStore(_database(config)) as store:
        _apply_forgets(store, config)
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
        _apply_forgets(store, config)
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
