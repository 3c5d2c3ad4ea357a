"""The Telegram bot: 진주 talks to the same 차차 as at the doll, and every word is collected.

Built on python-telegram-bot's asyncio ``Application`` with long polling. Each handler is
thin: it checks, hands the slow work (speech recognition, synthesis, SQLite) to worker
threads, and asks the inference server for every reply; nothing here makes up 차차's words.
Only the users in ``telegram.users`` are served; anyone else never reaches the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import warnings
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from telegram import BotCommand, BotCommandScopeChat, Message, Update
from telegram.constants import ChatAction
from telegram.error import TelegramError as BotAPIError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)
from telegram.warnings import PTBDeprecationWarning

from inference_server.api import InferenceClient, ReplyFinal, ServerUnavailable
from inference_server.settings import MAX_TEXT_CHARS
from telegram_collector.developer import DEVELOPER_COMMANDS, DeveloperCommands
from telegram_collector.errors import TelegramError
from telegram_collector.settings import TelegramSettings, TelegramUser
from telegram_collector.store import CollectedMessage, CollectorStore, Forget
from telegram_collector.voice import VoiceError, VoiceTooLong, decode_voice, encode_voice, size_limit
from tts.settings import TTSSettings

_LOGGER = logging.getLogger(__name__)

TOKEN_ENV = "TELEGRAM_BOT_TOKEN"
TYPING_EVERY_S = 4.0
"""Telegram shows a chat action for about 5 s; it is repeated while the reply is made."""
STRANGER_REPLY_EVERY_S = 600.0
MAX_MESSAGE_CHARS = 4096

HEARD_PREFIX = "들은 말: "
NOTHING_HEARD = "응? 잘 안 들렸어. 한 번만 더 말해줄래?"
SERVER_AWAY = (
    "차차가 지금 잠깐 자리를 비웠어. 조금 있다가 다시 말해 줘.\n"
    "(The inference server is not answering right now; try again in a moment.)"
)
TOO_LONG_TEXT = (
    "메시지가 너무 길어. {limit}자 안으로 말해 줄래?\n"
    "(Message too long: {length} characters; the limit is {limit}.)"
)
TOO_LONG_VOICE = (
    "음성 메시지가 너무 길어. {limit:g}초 안으로 다시 보내 줄래?\n"
    "(Voice note too long: {length:g} s; the limit is {limit:g} s.)"
)
TOO_BIG_VOICE = (
    "음성 메시지 파일이 너무 커. 다시 녹음해서 보내 줄래?\n"
    "(Voice note too large: {size:,} bytes, more than a {limit:g}-s note can be ({most:,} bytes).)"
)
VOICE_UNREADABLE = "음성 메시지를 열 수가 없었어. 다시 보내 줄래?\n(Could not read the voice note: {reason}.)"
STT_UNAVAILABLE = (
    "지금은 음성 메시지를 들을 수가 없어. 글로 보내 줄래?\n(Speech recognition is not available: {reason}.)"
)
VOICE_OFF = (
    "음성 메시지는 아직 못 들어. 글로 보내 줄래?\n(Voice notes are off here: telegram.stt_engine is off.)"
)
ONLY_WORDS = "아직 사진이나 스티커는 잘 못 봐. 말로 해 줄래?"
GREETING = "나 여기 있어. 여기서도 인형한테 하듯이 말 걸어 줘."
FORGETS_EVERY_S = 60.0
"""How often the bot fetches the server's forget log (what she asked the doll to forget too)."""


class Lazy:
    """Something slow to load (a speech model), loaded once in a worker thread, awaited when needed."""

    def __init__(self, what: str, factory: Callable[[], Any]) -> None:
        self.what = what
        self._factory = factory
        self._task: asyncio.Future | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(asyncio.to_thread(self._factory))
            self._task.add_done_callback(self._report)

    def _report(self, task: asyncio.Future) -> None:
        if not task.cancelled() and task.exception() is not None:
            _LOGGER.error("loading %s failed: %s", self.what, task.exception())

    def cancel(self) -> None:
        """Stop waiting for a load still running (its thread finishes on its own)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def get(self) -> Any:
        self.start()
        return await asyncio.shield(self._task)

    @property
    def state(self) -> str:
        if self._task is None:
            return "not loaded yet"
        if not self._task.done():
            return "loading"
        if self._task.cancelled():
            return "cancelled"
        error = self._task.exception()
        return f"failed: {error}" if error else "ready"


@dataclass(frozen=True)
class BotOptions:
    """What the bot takes from the rest of the configuration (the command line fills it in)."""

    conversation: str  # client.conversation: whom 차차 talks with when a user names none
    sample_rate: int  # stt.sample_rate: voice notes are decoded to it for the recogniser
    tts: TTSSettings  # how voice replies are spoken
    persona_file: Path | None = None  # persona.file, for /persona
    timezone: str = "Asia/Seoul"  # persona.timezone, for /status

    @classmethod
    def of(cls, config) -> BotOptions:
        """From a whole configuration (anything with client, stt, tts and persona sections)."""
        return cls(
            conversation=config.client.conversation,
            sample_rate=config.stt.sample_rate,
            tts=config.tts,
            persona_file=config.persona.file,
            timezone=config.persona.timezone,
        )


def _no_recogniser():
    raise TelegramError("no speech recognition was given to the bot: set telegram.stt_engine: off")


class ChachaBot:
    """What the bot does with each update; its bound methods are the Application's handlers."""

    def __init__(
        self,
        settings: TelegramSettings,
        options: BotOptions,
        client: InferenceClient,
        store: CollectorStore,
        *,
        transcriber_factory: Callable[[], Any] | None = None,
        speech_factory: Callable[[], Any] | None = None,
    ) -> None:
        self.settings = settings
        self.options = options
        self.client = client
        self.store = store
        self.transcriber = Lazy("speech recognition", transcriber_factory or _no_recogniser)
        self.speech = Lazy("speech synthesis", speech_factory or self._load_speech)
        self.developer = DeveloperCommands(self)
        self._strangers_told: dict[int, float] = {}
        self._forgets_task: asyncio.Task | None = None
        self._forgets_failing = False

    # --- loading ------------------------------------------------------------------------------

    def _load_speech(self):
        from tts.engines import create_engine

        return create_engine(self.options.tts)

    async def prepare(self, application: Application) -> None:
        """Start loading the speech models and show the developer commands to developers."""
        if self.settings.stt_engine != "off":
            self.transcriber.start()
        if self.settings.voice_reply:
            self.speech.start()
        self._forgets_task = asyncio.create_task(self._follow_forgets(), name="forget-log")
        commands = [BotCommand(name, about) for name, about in DEVELOPER_COMMANDS.items()]
        for user in self.settings.users:
            if user.role != "developer":
                continue
            try:
                await application.bot.set_my_commands(commands, scope=BotCommandScopeChat(user.id))
            except BotAPIError as exc:  # e.g. the developer has not opened a chat with the bot yet
                _LOGGER.warning("cannot show the commands to %s (%d): %s", user.name, user.id, exc)

    async def close(self, application: Application) -> None:
        """At shutdown: stop waiting for speech models still loading."""
        self.transcriber.cancel()
        self.speech.cancel()
        if self._forgets_task is not None:
            self._forgets_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._forgets_task

    # --- forgetting ---------------------------------------------------------------------------

    async def sync_forgets(self) -> int:
        """Apply what the server forgot since last time (on the doll or here): the collector
        deletes those messages and never takes them in again. Returns messages deleted."""
        deleted = 0
        while True:
            after = await asyncio.to_thread(self.store.forgotten_through)
            log = await self.client.forgets(after)
            if not log.forgets:
                return deleted
            deleted += await asyncio.to_thread(
                self.store.apply_forgets,
                [Forget(f.id, f.conversation, f.created_at, f.said, f.words) for f in log.forgets],
            )
            _LOGGER.info(
                "applied %d forgetting(s) of the server: %d collected message(s) deleted",
                len(log.forgets),
                deleted,
            )

    async def _follow_forgets(self) -> None:
        """At start and every FORGETS_EVERY_S: the server's forget log into the collector."""
        while True:
            try:
                await self.sync_forgets()
                if self._forgets_failing:
                    _LOGGER.info("the server's forget log is read again")
                self._forgets_failing = False
            except ServerUnavailable as exc:
                if not self._forgets_failing:  # once, not every minute while the server is away
                    _LOGGER.warning("cannot read the server's forget log (tried every minute): %s", exc)
                self._forgets_failing = True
            except Exception:
                _LOGGER.exception("applying the server's forget log failed; trying again in a minute")
            await asyncio.sleep(FORGETS_EVERY_S)

    async def _forgotten_request(self, message: Message, final: ReplyFinal) -> bool:
        """Her message asked him to forget: it is not kept (nor is his answer), and the
        forgetting is applied to the collector now. False for any other reply."""
        if final.forget_id is None:
            return False
        await asyncio.to_thread(self.store.delete, message.chat_id, message.message_id)
        try:
            await self.sync_forgets()
        except ServerUnavailable as exc:
            _LOGGER.warning("the forgetting is applied at the next reading of the forget log: %s", exc)
        return True

    def conversation(self, user: TelegramUser) -> str:
        """The server conversation this user's words go to."""
        return user.conversation or self.options.conversation

    def user_of(self, update: Update) -> TelegramUser:
        user = self.settings.user(update.effective_user.id if update.effective_user else None)
        assert user is not None, "the handler's filters let a stranger through"
        return user

    # --- handlers -----------------------------------------------------------------------------

    async def on_stranger(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Someone not on the allow-list: log who, never ask the server, answer at most a fixed line."""
        user, chat = update.effective_user, update.effective_chat
        _LOGGER.info(
            "ignored a message from stranger %s (@%s) in chat %s",
            user.id if user else "?",
            user.username if user and user.username else "-",
            chat.id if chat else "?",
        )
        if not (self.settings.stranger_reply and user and chat and chat.type == chat.PRIVATE):
            return
        now = time.monotonic()
        if now - self._strangers_told.get(user.id, -STRANGER_REPLY_EVERY_S) < STRANGER_REPLY_EVERY_S:
            return
        self._strangers_told[user.id] = now
        await context.bot.send_message(chat.id, self.settings.stranger_reply)

    async def on_start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/start and /help: a short hello (and, for developers, the commands)."""
        user = self.user_of(update)
        text = GREETING
        if user.role == "developer":
            text += "\n\n" + "\n".join(f"/{name} — {about}" for name, about in DEVELOPER_COMMANDS.items())
        await update.effective_message.reply_text(text)

    async def on_refused(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A developer command from a partner: a polite no."""
        await update.effective_message.reply_text(
            "미안, 그건 개발자용 명령이라 내가 해 줄 수가 없어. 그냥 나랑 얘기하자.\n(Developer command.)"
        )

    async def on_unknown_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A command the bot does not know."""
        await update.effective_message.reply_text("그런 명령은 몰라. 그냥 말로 해 줘.\n(Unknown command.)")

    async def on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Text from an allowed user: keep it, ask 차차, send his reply."""
        message, user = update.effective_message, self.user_of(update)
        text = (message.text or message.caption or "").strip()
        await self._collect(message, user, text, kind=_kind(message))
        if not text:
            return
        if len(text) > MAX_TEXT_CHARS:
            await message.reply_text(TOO_LONG_TEXT.format(limit=MAX_TEXT_CHARS, length=len(text)))
            return
        async with keep_acting(context, message.chat_id, ChatAction.TYPING):
            final = await self._ask(text, user, message)
        if final is not None:
            forgetting = await self._forgotten_request(message, final)
            await self._answer(message, final.reply, final.backend, context, keep=not forgetting)

    async def on_voice(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A voice note: hear it, ask 차차, answer in text and (if configured) in his voice."""
        message, user = update.effective_message, self.user_of(update)
        if self.settings.stt_engine == "off":
            await self._collect(message, user, "", kind="voice")
            await message.reply_text(VOICE_OFF)
            return
        limit = self.settings.max_voice_s
        claimed = voice_duration_s(message)
        if claimed > limit:
            await self._collect(message, user, "", kind="voice")
            await message.reply_text(TOO_LONG_VOICE.format(limit=limit, length=claimed))
            return
        async with keep_acting(context, message.chat_id, ChatAction.TYPING):
            heard = await self._hear(message, context, limit)
            if heard is None:
                return
            await self._collect(message, user, heard, kind="voice")
            forgetting = False
            if heard:
                final = await self._ask(heard, user, message)
                if final is None:
                    return
                reply, backend = final.reply, final.backend
                forgetting = await self._forgotten_request(message, final)
            else:  # nothing but silence or noise: the server is not asked, as at the doll
                reply, backend = NOTHING_HEARD, "none"
        await self._answer(
            message,
            f"{HEARD_PREFIX}{heard or '…'}\n\n{reply}",
            backend,
            context,
            stored=reply,
            keep=not forgetting,
        )
        if self.settings.voice_reply:
            await self._send_voice(message, reply, context)

    async def on_edit(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """An edited message: the collector keeps its final text (차차 does not answer again)."""
        message = update.effective_message
        text = (message.text or message.caption or "").strip()
        if not await asyncio.to_thread(self.store.edit, message.chat_id, message.message_id, text):
            _LOGGER.debug("edit of a message that was never collected (%d)", message.message_id)

    async def on_other(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A sticker, photo without caption, …: kept as what it is; 차차 asks for words."""
        message, user = update.effective_message, self.user_of(update)
        await self._collect(message, user, "", kind=_kind(message))
        await self._answer(message, ONLY_WORDS, "none", context)

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log whatever a handler did not expect; the bot goes on with the next update."""
        _LOGGER.error("handling an update failed: %s", context.error, exc_info=context.error)

    # --- the steps ----------------------------------------------------------------------------

    async def _ask(self, text: str, user: TelegramUser, message: Message) -> ReplyFinal | None:
        """차차's reply from the server; None when it cannot answer (she is told so)."""
        try:
            async for event in self.client.chat(
                text, conversation=self.conversation(user), channel="telegram"
            ):
                if isinstance(event, ReplyFinal):
                    return event
            raise ServerUnavailable("the server ended the reply without its final line")
        except ServerUnavailable as exc:
            _LOGGER.warning("no reply for %s: %s", user.name, exc)
            await message.reply_text(SERVER_AWAY)
            return None

    async def _hear(self, message: Message, context: ContextTypes.DEFAULT_TYPE, limit: float) -> str | None:
        """What was said in a voice note; None when it could not be heard (the user was told why).

        The note's size is checked before it is downloaded, and its length from its header
        before it is decoded: a note that lies about its duration costs neither memory nor time.
        """
        most = size_limit(limit)
        try:
            if (message.voice.file_size or 0) > most:
                return await self._refuse_size(message, message.voice.file_size, limit)
            file = await context.bot.get_file(message.voice.file_id)
            if (file.file_size or 0) > most:
                return await self._refuse_size(message, file.file_size, limit)
            data = bytes(await file.download_as_bytearray())
            if len(data) > most:
                return await self._refuse_size(message, len(data), limit)
            rate = self.options.sample_rate
            samples = await asyncio.to_thread(decode_voice, data, sample_rate=rate, max_s=limit)
        except VoiceTooLong as exc:  # the duration Telegram announced was wrong
            await message.reply_text(TOO_LONG_VOICE.format(limit=limit, length=round(exc.length_s)))
            return None
        except (VoiceError, BotAPIError) as exc:
            _LOGGER.warning("voice note %d unreadable: %s", message.message_id, exc)
            await message.reply_text(VOICE_UNREADABLE.format(reason=exc))
            return None
        try:
            transcriber = await self.transcriber.get()
        except Exception as exc:
            await message.reply_text(STT_UNAVAILABLE.format(reason=exc))
            return None
        transcript = await asyncio.to_thread(transcriber.transcribe, samples)
        _LOGGER.info(
            "heard %.1f s of voice from %d (%s, confidence %.2f)",
            transcript.audio_s,
            message.chat_id,
            transcript.engine,
            transcript.confidence,
        )
        return transcript.text.strip()

    async def _refuse_size(self, message: Message, size: int, limit: float) -> None:
        _LOGGER.warning("voice note %d refused: %d bytes", message.message_id, size)
        await message.reply_text(TOO_BIG_VOICE.format(size=size, limit=limit, most=size_limit(limit)))

    async def _send_voice(self, message: Message, reply: str, context: ContextTypes.DEFAULT_TYPE) -> None:
        """차차's reply as a voice note; on any failure the text he already sent is enough."""
        from tts.engines import join_audio, speak

        tts = self.options.tts
        try:
            engine = await self.speech.get()
            async with keep_acting(context, message.chat_id, ChatAction.RECORD_VOICE):
                chunks = await asyncio.to_thread(lambda: list(speak(engine, reply, tts.volume)))
                if not chunks:
                    return
                samples, rate = join_audio(chunks, tts.sentence_gap_ms)
                ogg, seconds = await asyncio.to_thread(encode_voice, samples, rate)
            await message.reply_voice(voice=ogg, duration=seconds, filename="chacha.ogg")
        except (VoiceError, BotAPIError) as exc:
            _LOGGER.warning("no voice reply: %s", exc)
        except Exception as exc:  # the voice is a bonus; never lose the conversation over it
            _LOGGER.exception("no voice reply: %s", exc)

    async def _answer(
        self,
        message: Message,
        text: str,
        backend: str,
        context: ContextTypes.DEFAULT_TYPE,
        *,
        stored: str | None = None,
        keep: bool = True,
    ) -> None:
        """Send 차차's reply and collect it as his words (unless `keep` is False)."""
        sent = await message.reply_text(text[:MAX_MESSAGE_CHARS])
        if not keep:
            return
        await self._keep(
            CollectedMessage(
                chat_id=sent.chat_id,
                message_id=sent.message_id,
                source="bot",
                sender_id=context.bot.id,
                sender_name=context.bot.first_name or "차차",
                role="he",
                date=sent.date.timestamp() if sent.date else time.time(),
                text=stored if stored is not None else text,
                reply_to=message.message_id,
                backend=backend,
            )
        )

    async def _collect(self, message: Message, user: TelegramUser, text: str, *, kind: str) -> None:
        """Keep what an allowed user sent: 진주's words as 'she', a developer's as 'other'."""
        await self._keep(
            CollectedMessage(
                chat_id=message.chat_id,
                message_id=message.message_id,
                source="bot",
                sender_id=user.id,
                sender_name=user.name,
                role="she" if user.role == "partner" else "other",
                date=message.date.timestamp() if message.date else time.time(),
                text=text,
                reply_to=message.reply_to_message.message_id if message.reply_to_message else None,
                kind=kind,
            )
        )

    async def _keep(self, record: CollectedMessage) -> None:
        try:
            await asyncio.to_thread(self.store.add, record)
        except Exception as exc:  # a full disk must not silence 차차
            _LOGGER.error("cannot collect message %d: %s", record.message_id, exc)


def voice_duration_s(message: Message) -> float:
    """The length Telegram announces for a voice note (seconds; an int or, from PTB 23, a timedelta)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = message.voice.duration
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return float(value or 0)


def _kind(message: Message) -> str:
    if message.text is not None:
        return "text"
    for kind in ("voice", "sticker", "photo", "video", "video_note", "animation", "audio", "document"):
        if getattr(message, kind, None):
            return kind
    return "other"


@contextlib.asynccontextmanager
async def keep_acting(context: ContextTypes.DEFAULT_TYPE, chat_id: int, action: str) -> AsyncIterator[None]:
    """Show "typing…" (or another chat action) now and every few seconds until the block ends."""

    async def send() -> None:
        try:
            await context.bot.send_chat_action(chat_id, action)
        except BotAPIError as exc:
            _LOGGER.debug("chat action failed: %s", exc)

    async def repeat() -> None:
        while True:
            await asyncio.sleep(TYPING_EVERY_S)
            await send()

    await send()
    task = asyncio.create_task(repeat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def build_application(
    settings: TelegramSettings,
    options: BotOptions,
    *,
    token: str,
    client: InferenceClient,
    store: CollectorStore,
    transcriber_factory: Callable[[], Any] | None = None,
    speech_factory: Callable[[], Any] | None = None,
) -> Application:
    """The Application with every handler; ``application.bot_data["chacha"]`` is the ChachaBot."""
    chacha = ChachaBot(
        settings,
        options,
        client,
        store,
        transcriber_factory=transcriber_factory,
        speech_factory=speech_factory,
    )
    builder = ApplicationBuilder().token(token).post_init(chacha.prepare).post_shutdown(chacha.close)
    if settings.base_url:
        builder = builder.base_url(settings.base_url)
    if settings.base_file_url:
        builder = builder.base_file_url(settings.base_file_url)
    application = builder.build()
    application.bot_data["chacha"] = chacha

    everyone = [u.id for u in settings.users]
    allowed = filters.User(user_id=everyone, allow_empty=False) & filters.ChatType.PRIVATE
    developers = filters.User(
        user_id=[u.id for u in settings.users if u.role == "developer"], allow_empty=False
    )
    partners = filters.User(user_id=[u.id for u in settings.users if u.role == "partner"], allow_empty=False)
    # MessageHandler also matches edited messages unless told otherwise.
    new = filters.UpdateType.MESSAGE
    dev = chacha.developer
    application.add_handlers(
        [
            MessageHandler(~filters.User(user_id=everyone, allow_empty=False), chacha.on_stranger),
            CommandHandler("status", dev.on_status, filters=allowed & developers & new),
            CommandHandler("persona", dev.on_persona, filters=allowed & developers & new),
            CommandHandler("history", dev.on_history, filters=allowed & developers & new),
            CommandHandler("clear", dev.on_clear, filters=allowed & developers & new),
            CommandHandler("version", dev.on_version, filters=allowed & developers & new),
            CommandHandler(list(DEVELOPER_COMMANDS), chacha.on_refused, filters=allowed & partners & new),
            CommandHandler(["start", "help"], chacha.on_start, filters=allowed & new),
            MessageHandler(allowed & new & filters.COMMAND, chacha.on_unknown_command),
            MessageHandler(allowed & new & (filters.TEXT | filters.CAPTION), chacha.on_text),
            MessageHandler(allowed & new & filters.VOICE, chacha.on_voice),
            MessageHandler(allowed & filters.UpdateType.EDITED_MESSAGE, chacha.on_edit),
            MessageHandler(allowed & new, chacha.on_other),
        ]
    )
    application.add_error_handler(chacha.on_error)
    return application


@contextlib.asynccontextmanager
async def serving(
    application: Application, *, poll_interval: float = 0.0, timeout: float = 10.0
) -> AsyncIterator[Application]:
    """Run the bot (polling) inside an event loop that is already running; stop it on exit.

    ``Application.run_polling`` owns its loop and calls ``post_init`` and ``post_shutdown``
    itself; started by hand, as here, the caller must call them, which this does.
    """
    await application.initialize()
    try:
        if application.post_init is not None:
            await application.post_init(application)
        await application.start()
        await application.updater.start_polling(poll_interval=poll_interval, timeout=timeout)
        try:
            yield application
        finally:
            if application.updater.running:
                await application.updater.stop()
            if application.running:
                await application.stop()
    finally:
        await application.shutdown()
        if application.post_shutdown is not None:
            await application.post_shutdown(application)
