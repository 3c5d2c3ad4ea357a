"""The `chacha telegram` sub-command and its `import` and `export` sub-commands."""

from __future__ import annotations

import argparse
from pathlib import Path


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
        return value

    return parse


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `telegram` (run the bot), `telegram import` and `telegram export` to the CLI."""
    from telegram_collector import commands

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
