"""The developer's commands in the bot: /status, /persona, /history, /clear, /version.

Only users with ``role: developer`` reach these; 진주 gets a polite refusal instead.
"""

from __future__ import annotations

import asyncio
import logging
import platform
import secrets
import time
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from telegram import Update
from telegram.ext import ContextTypes

from inference_server.api import QuotaStatus, ServerUnavailable

if TYPE_CHECKING:
    from telegram_collector.bot import ChachaBot

_LOGGER = logging.getLogger(__name__)

DEVELOPER_COMMANDS = {
    "status": "server health, backend and quota; speech models",
    "persona": "the first lines of 차차's persona (as the server has it)",
    "history": "the last 10 collected messages: /history [name or chat id]",
    "clear": "forget this chat's collected messages and the server's history (asks for a code)",
    "version": "versions of Chachaping, python-telegram-bot and the server",
}
HISTORY_LINES = 10
PERSONA_LINES = 12
CLEAR_CODE_S = 60.0
_ROLE_LABEL = {"she": "she", "he": "he", "other": "other"}


def describe_quota(quota: QuotaStatus) -> str:
    """The server's quota numbers of one backend in one line."""
    parts = [
        f"{quota.requests_today}/{quota.requests_per_day} requests today",
        f"{quota.left_today_for_telegram} left for Telegram",
        f"{quota.requests_last_minute}/{quota.requests_per_minute} this minute",
    ]
    if quota.cooldown_s:
        parts.append(f"cooling down {quota.cooldown_s} s ({quota.cooldown_reason})")
    return ", ".join(parts)


class DeveloperCommands:
    """Handlers of the developer commands, sharing the bot's client, store and settings."""

    def __init__(self, bot: ChachaBot) -> None:
        self.bot = bot
        self._clear_codes: dict[int, tuple[str, float]] = {}

    async def on_status(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/status: what the server says about itself, and the state of the speech models."""
        lines = [f"server: {self.bot.client.base_url}"]
        try:
            health = await self.bot.client.health()
        except ServerUnavailable as exc:
            lines.append(f"NOT REACHABLE: {exc}")
        else:
            lines.append(f"status: {health.status} (version {health.version})")
            lines.append(f"answering now: {health.backend}")
            for backend in health.backends:
                state = "on" if backend.available else f"off ({backend.reason})"
                lines.append(f"  {backend.name}: {state}")
                if backend.quota is not None:
                    lines.append(f"    quota: {describe_quota(backend.quota)}")
        store = self.bot.store
        total, imported = await asyncio.to_thread(lambda: (store.count(), store.count(source="import")))
        lines.append(f"collected: {total} messages ({imported} imported) in {store.path}")
        hearing = "off" if self.bot.settings.stt_engine == "off" else self.bot.transcriber.state
        lines.append(f"speech recognition: {hearing}")
        if self.bot.settings.voice_reply:
            lines.append(f"speech synthesis: {self.bot.speech.state}")
        await update.effective_message.reply_text("\n".join(lines))

    async def on_persona(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/persona: the start of the persona the server uses (or, if it cannot say, the local file)."""
        try:
            answer = await self.bot.client.persona()
            text, where = str(answer.get("text", "")), f"the server's {answer.get('path')}"
        except ServerUnavailable as exc:
            _LOGGER.info("persona from the local file: %s", exc)
            text, where = await asyncio.to_thread(self._local_persona)
        lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
        shown = "\n".join(lines[:PERSONA_LINES])
        more = f"\n… ({len(lines) - PERSONA_LINES} more lines)" if len(lines) > PERSONA_LINES else ""
        await update.effective_message.reply_text(f"{shown}{more}\n\n(from {where})")

    def _local_persona(self) -> tuple[str, str]:
        from inference_server.persona import default_persona_path

        path = self.bot.options.persona_file or default_persona_path()
        try:
            return path.read_text(encoding="utf-8"), f"{path} on this machine: the server did not answer"
        except OSError as exc:
            return f"cannot read the persona: {exc}", str(path)

    async def on_history(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/history [name or chat id]: the last collected messages (default: the partner's chat)."""
        chosen = self._chosen_chat(context.args, update)
        if chosen is None:
            names = ", ".join(u.name for u in self.bot.settings.users)
            await update.effective_message.reply_text(
                f"no user called {' '.join(context.args)}: give one of {names}, or a chat id"
            )
            return
        chat_id, label = chosen
        records = await asyncio.to_thread(self.bot.store.recent, chat_id, HISTORY_LINES)
        if not records:
            await update.effective_message.reply_text(f"nothing collected from {label} yet")
            return
        zone = ZoneInfo(self.bot.options.timezone)
        lines = [f"last {len(records)} of {label}:"]
        for r in records:
            when = datetime.fromtimestamp(r.date, zone).strftime("%m-%d %H:%M")
            text = r.text if r.text else f"({r.kind})"
            mark = " [import]" if r.source == "import" else ""
            lines.append(f"{when} {r.sender_name or _ROLE_LABEL[r.role]}{mark}: {text[:200]}")
        await update.effective_message.reply_text("\n".join(lines))

    def _chosen_chat(self, args: list[str] | None, update: Update) -> tuple[int, str] | None:
        """The chat /history means: a user's (a private chat's id is the user's), a chat id, or None."""
        users = self.bot.settings.users
        if args:
            wanted = " ".join(args).strip()
            for user in users:
                if user.name.casefold() == wanted.casefold():
                    return user.id, f"{user.name}'s chat"
            return (int(wanted), f"chat {wanted}") if wanted.lstrip("-").isdigit() else None
        partner = next((u for u in users if u.role == "partner"), None)
        if partner is not None:
            return partner.id, f"{partner.name}'s chat"
        return update.effective_chat.id, "this chat"

    async def on_clear(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/clear, then /clear CODE within a minute: forget what the bot collected in this chat, and
        the server's history of the conversation this user talks in (long-term memories stay)."""
        chat_id = update.effective_chat.id
        message = update.effective_message
        conversation = self.bot.conversation(self.bot.user_of(update))
        if not context.args:
            code = f"{1000 + secrets.randbelow(9000)}"
            self._clear_codes[chat_id] = (code, time.monotonic() + CLEAR_CODE_S)
            count = await asyncio.to_thread(self.bot.store.count, chat_id, source="bot")
            await message.reply_text(
                f"This deletes the {count} messages the bot collected in this chat (imports stay), "
                f"and 차차's conversation history on the server for conversation '{conversation}' "
                "(the doll's too, if it uses the same conversation id). "
                "His long-term memories stay: manage them with `chacha memory forget`.\n"
                f"Send /clear {code} within {CLEAR_CODE_S:.0f} s to go ahead."
            )
            return
        expected = self._clear_codes.pop(chat_id, None)
        if expected is None or expected[0] != context.args[0] or time.monotonic() > expected[1]:
            await message.reply_text("That code is wrong or has expired: send /clear for a new one.")
            return
        removed = await asyncio.to_thread(self.bot.store.clear_chat, chat_id, source="bot")
        _LOGGER.info("cleared %d collected messages of chat %d", removed, chat_id)
        collected = f"Deleted {removed} collected messages of this chat"
        try:
            deleted = await self.bot.client.delete_history(conversation)
        except ServerUnavailable as exc:
            _LOGGER.warning("the server's history of %s was not deleted: %s", conversation, exc)
            await message.reply_text(
                f"{collected}, but the server's history of conversation '{conversation}' could not "
                f"be deleted: {exc}\nTry /clear again later."
            )
            return
        _LOGGER.info("deleted the server's history of %s: %d turns", conversation, deleted.turns)
        await message.reply_text(
            f"{collected}, and {deleted.turns} turns of the server's history of conversation "
            f"'{conversation}'. Long-term memories stay (`chacha memory forget`)."
        )

    async def on_version(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/version: what runs here, and the server's version."""
        import telegram

        try:
            from importlib.metadata import version

            ours = version("chachaping")
        except Exception:
            from inference_server import __version__ as ours
        try:
            server = (await self.bot.client.health()).version
        except ServerUnavailable:
            server = "not reachable"
        await update.effective_message.reply_text(
            f"Chachaping {ours} (server {server})\n"
            f"python-telegram-bot {telegram.__version__}, Bot API {telegram.constants.BOT_API_VERSION}\n"
            f"Python {platform.python_version()}"
        )
