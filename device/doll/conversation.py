# SPDX-License-Identifier: GPL-3.0-or-later
"""One turn's work, for the loop (:mod:`device.doll.loop`): :meth:`Conversation.talk` (listen,
ask, speak the reply as it streams) and :meth:`Conversation.long_press`, on the doll's parts.

Everything it notes goes into the turn's report (:class:`device.doll.turn.TurnReport`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from device.doll.hearing import Ears
from device.doll.mute import MuteSwitch
from device.doll.playback import Said, Voice
from device.doll.protocols import Listener
from device.doll.server_watch import ServerWatch, ask, quietly, status_line
from device.doll.states import DollState
from device.doll.status import StatusShow
from device.doll.turn import DollOptions, Turn
from device.doll.vad import SpeechEnded
from device.stt.transcript import Transcript
from inference_server.api import ReplyFinal, ServerUnavailable, TentativeRefused

_LOGGER = logging.getLogger(__name__)

NOTHING_TO_REPEAT = "아직 다시 들려줄 말이 없어."
"""A long press with ``repeat`` before 차차 has said anything."""
MUTED_LINE = "이제 조용히 있을게. 버튼을 누를 때만 들을게."
"""A long press with ``mute``, muting."""
UNMUTED_LINE = "응, 다시 잘 들을게."
"""A long press with ``mute``, unmuting."""

ECHO_GUARD_S = 0.15
"""A follow-up window opens this long after the speaker has taken his last sound: the card's
last block still sounds, and the room's echo of it dies away, before the microphone is heard."""

_FAILURE_SHOW_S = 2.0  # how long an unexpected failure keeps the light on ERROR


@dataclass(frozen=True, slots=True)
class Opening:
    """How a turn begins to hear her: ``message`` for the light's log line; ``earcon``: the
    ``listening`` earcon first; ``button``: the button is held and its release ends it (else her
    silence does); ``window_s``: she must begin within this long (None: no limit); ``ears``: the
    microphone's listener, already open (her words are in it), with ``first``, her blocks already
    heard (else a listener opens once the earcon, or the echo guard, is over)."""

    message: str
    earcon: bool = False
    button: bool = False
    window_s: float | None = None
    ears: Listener | None = None
    first: tuple[np.ndarray, ...] = ()


@dataclass(frozen=True, slots=True)
class _Early:
    """Her turn is probably over (a tentative end): what she has said so far; the microphone's
    listener (``turn.ears``) and her utterance (``turn.hearing``) are still open."""

    text: str


def is_goodbye(text: str, goodbyes: Iterable[str]) -> bool:
    """Whether her words end with one of ``goodbyes`` (spaces and punctuation aside): "응 잘 자~"
    does, "그만큼 좋았어" does not."""
    words = _plain(text)
    return any(_plain(goodbye) and words.endswith(_plain(goodbye)) for goodbye in goodbyes)


def _plain(text: str) -> str:
    return "".join(ch for ch in text if ch.isalnum())


class Conversation:
    """A turn's work on the parts: hearing, the voice, the light and the server."""

    def __init__(
        self,
        ears: Ears,
        voice: Voice,
        show: StatusShow,
        server: ServerWatch,
        options: DollOptions,
        last_backend: Callable[[], str | None],
    ) -> None:
        self._ears = ears
        self._voice = voice
        self._show = show
        self._server = server
        self._options = options
        self._last_backend = last_backend
        self.mute = MuteSwitch(options.mute_file)
        self.waits_for_wake = False
        """Set (by the doll) while it listens for her wake phrase between turns."""
        self.on_voice: Callable[[Listener, list[np.ndarray]], None] | None = None
        """Set (by the doll) when her voice may stop him: called with the microphone's listener
        and her first blocks once she has begun talking over him."""

    @property
    def at_rest(self) -> DollState:
        """What the light shows between turns: IDLE; WAITING while it listens for her wake phrase;
        MUTED while it does not listen by itself."""
        if self.mute.muted:
            return DollState.MUTED
        return DollState.WAITING if self.waits_for_wake else DollState.IDLE

    async def talk(self, turn: Turn) -> bool:
        """A press: listen while the button is held (or until she stops), answer. Returns whether
        the doll should keep listening for her next words (:meth:`follow_up`)."""
        return await self._turn(turn, Opening("listening", earcon=True, button=True))

    async def barged_in(self, turn: Turn, ears: Listener, blocks: list[np.ndarray]) -> bool:
        """She talked over him: her turn, heard from ``blocks`` (her first words, already
        captured) on, through ``ears``, until she stops; answered as for a press."""
        return await self._turn(
            turn, Opening("listening: she talked over him", ears=ears, first=tuple(blocks))
        )

    async def woken(self, turn: Turn, ears: Listener) -> bool:
        """She said the wake phrase: the ``listening`` earcon, and her words through ``ears``
        (open since the phrase ended, so nothing she says over the earcon is lost), until she
        stops; nothing if she does not begin within ``loop.wake.listen_s``."""
        window_s = self._options.settings.wake.listen_s
        return await self._turn(
            turn, Opening("listening: she said the wake phrase", earcon=True, window_s=window_s, ears=ears)
        )

    async def follow_up(self, turn: Turn) -> bool:
        """After his reply, no press: listen for ``loop.follow_up_s`` seconds with the light on;
        if she speaks, answer as for a press; if not, the conversation is over."""
        window_s = self._options.settings.follow_up_s
        return await self._turn(
            turn, Opening(f"listening for her next words ({window_s:g} s)", window_s=window_s)
        )

    async def _turn(self, turn: Turn, opening: Opening) -> bool:
        heard = await self._listen(turn, opening)
        while isinstance(heard, _Early):
            answered = await self._ask_early(turn, opening, heard)
            if isinstance(answered, bool):
                return answered
            heard = answered  # she went on: the rest of her turn
        if heard is None:
            return False
        draft, final = heard
        if draft.text and await self._audio_mode(turn):
            # Gemini hears her recording now, with the quick text; the final text follows into
            # the history when it is ready. It is not on the way to the first word.
            recording = await self._ears.on_stt(turn.hearing.recording)
            turn.note(recording_s=turn.hearing.detector.elapsed_s)
            if final is not None:
                self._keep_final(turn, draft, final)
            return await self._answer(turn, draft.text, recording)
        transcript = draft if final is None else await self._final(turn, final)
        if not transcript.text:
            await self._say(turn, self._voice.lines["nothing"], "speaking: asking her to say it again")
            # She is asked to say it again: listen for it, once (noise heard in a window must not
            # keep him asking).
            return opening.window_s is None and not self.mute.muted
        return await self._answer(turn, transcript.text, None)

    async def _audio_mode(self, turn: Turn) -> bool:
        """Whether this turn goes out as her recording with the quick text (``client.send_audio``)."""
        send_audio = self._options.send_audio
        if send_audio != "auto" or turn.health is None:
            return send_audio == "on"
        try:
            health = await turn.health
        except Exception as exc:  # unreachable: the text path reports it
            _LOGGER.debug("no health before the request (%s): sending text", exc)
            return False
        return bool(getattr(health, "hears_audio", False))

    async def _final(self, turn: Turn, final: Future[Transcript]) -> Transcript:
        """Wait for the final text (dropped if the turn is)."""
        try:
            transcript = await asyncio.wrap_future(final)
        except asyncio.CancelledError:
            final.cancel()
            raise
        self._heard(turn, transcript)
        return transcript

    def _report_cut(self, said: Said) -> None:
        """Tell the server which of his sentences she heard begin before she cut him off."""
        report = getattr(self._server.client, "interrupted", None)
        if said.heard_all or said.reply_id is None or not said.sentences or report is None:
            return
        heard, conversation = self._voice.heard(said), self._options.conversation

        async def tell() -> None:
            try:
                await report(conversation, said.reply_id, heard)
            except Exception as exc:
                _LOGGER.warning("could not tell the server where his reply was cut (%s)", exc)

        self._server.errand(tell(), "chacha-cut")

    def _keep_final(self, turn: Turn, draft: Transcript, final: Future[Transcript]) -> None:
        """When the final text is ready, log it and have it replace the draft in the history."""
        turn_id: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        turn.turn_id = turn_id

        async def keep() -> None:
            transcript = await asyncio.wrap_future(final)
            self._heard(turn, transcript)
            stored = await turn_id
            if stored is None or not transcript.text or transcript.text == draft.text:
                return
            try:
                await self._server.client.correct_turn(self._options.conversation, stored, transcript.text)
            except Exception as exc:
                _LOGGER.warning("could not put the final text into the history (%s)", exc)

        turn.final = self._server.errand(keep(), f"chacha-final-{turn.number}")

    def _heard(self, turn: Turn, transcript: Transcript) -> None:
        turn.marks["transcribed"] = self._options.clock.now()
        turn.note(transcript=transcript)
        # Her words go to the journal only at debug level: the journal is a copy of them that
        # "잊어줘" cannot reach (docs/memory.md).
        _LOGGER.info(
            "heard: %d characters [%s, final text %.0f ms after the last audio]",
            len(transcript.text),
            transcript.engine,
            transcript.final_latency_s * 1000,
        )
        _LOGGER.debug("heard: %s", transcript.text or "(nothing readable)")

    async def _listen(
        self, turn: Turn, opening: Opening
    ) -> tuple[Transcript, Future[Transcript] | None] | None:
        """Her words, heard as ``opening`` says; None when she said nothing (or too little to
        answer)."""
        clock = self._options.clock
        self._show.show(DollState.LISTENING, opening.message)
        window_s = opening.window_s
        hearing = turn.hearing = self._ears.hearing(lead_s=window_s or 0.0)
        if self._options.send_audio == "auto":
            turn.health = asyncio.ensure_future(self._server.client.health())
            turn.health.add_done_callback(quietly)
        ears, chime = opening.ears, None
        try:
            await self._ears.on_stt(hearing.open)
            ended = await self._ears.on_stt(hearing.hear, list(opening.first)) if opening.first else None
            if ears is not None:
                if opening.earcon:  # played while her words go on being captured
                    chime = asyncio.ensure_future(self._voice.earcon(turn, "listening"))
                    chime.add_done_callback(quietly)
            elif opening.earcon:
                await self._voice.earcon(turn, "listening")
            else:  # no earcon: the "done" one has just played; its last block and echo die away
                await clock.sleep_async(ECHO_GUARD_S)
            ears = ears if ears is not None else self._ears.listen()  # her blocks from here on
        except BaseException:
            if ears is not None:
                ears.close()
            self._ears.later(hearing.cancel)
            raise
        finally:
            if chime is not None and not chime.done():
                chime.cancel()
        turn.ears = ears
        return await self._hear_on(turn, opening, ended.reason if isinstance(ended, SpeechEnded) else None)

    async def _hear_some(self, turn: Turn, opening: Opening) -> str:
        if opening.button:
            return await self._ears.hear(turn.hearing, turn.ears, lambda: turn.released)
        # no button is held: her silence ends it (or the window's end)
        return await self._ears.hear(turn.hearing, turn.ears, lambda: False, start_within_s=opening.window_s)

    async def _hear_on(
        self, turn: Turn, opening: Opening, reason: str | None = None
    ) -> tuple[Transcript, Future[Transcript] | None] | _Early | None:
        """Hear her (through ``turn.ears``) until her turn is over, and its text; ``reason``: it is
        over already (why). An :class:`_Early` when her turn is probably over and the reply may
        be asked for while she is still heard (``loop.tentative_end``)."""
        clock, settings = self._options.clock, self._options.settings
        hearing, ears = turn.hearing, turn.ears
        try:
            while reason in (None, "tentative", "resumed"):
                if reason == "tentative":
                    if turn.ask_early and (text := hearing.detector.text.strip()):
                        return _Early(text)
                    if not turn.ask_early:
                        reason = "silence"  # no early asking this turn: a tentative end is her end
                        break
                reason = await self._hear_some(turn, opening)
        except BaseException:
            ears.close()
            self._ears.later(hearing.cancel)
            raise
        ears.close()
        detector = hearing.detector
        window_s = opening.window_s
        turn.stopped_at = turn.released_at if reason == "release" else clock.now()
        turn.marks["stopped"] = turn.stopped_at
        turn.note(listen_end=reason, pauses=hearing.pauses, resumptions=hearing.resumptions)
        if reason == "quiet":
            self._ears.later(hearing.cancel)
            _LOGGER.info("she said nothing for %g s: the conversation is over", window_s)
            return None
        if detector.speech_s * 1000 < settings.min_speech_ms:
            self._ears.later(hearing.cancel)
            _LOGGER.info("heard no speech in %.1f s (%s): not answering", detector.elapsed_s, reason)
            return None
        self._show.show(
            DollState.THINKING,
            f"thinking: she stopped ({reason}) after {detector.elapsed_s:.1f} s, "
            f"{detector.speech_s:.1f} s of it speech",
        )
        draft, final = await self._ears.on_stt(hearing.finish)
        turn.marks["drafted"] = clock.now()
        turn.note(draft=draft, pauses=hearing.pauses, resumptions=hearing.resumptions)
        if final is None:
            self._heard(turn, draft)
        else:
            _LOGGER.info("heard (quick): %d characters", len(draft.text))
            _LOGGER.debug("heard (quick): %s", draft.text or "(nothing readable)")
        return draft, final

    async def _ask_early(self, turn: Turn, opening: Opening, early: _Early):
        """Her turn is probably over: ask for his reply now, a tentative one, and go on hearing her
        until his first sound. If she goes on before it, the reply is dropped unheard (the server
        stores nothing of it) and her turn goes on as one; returns what :meth:`_hear_on` does then.
        Otherwise her turn ends there, the server keeps the reply, and this returns what
        :meth:`_answer` does."""
        request_id = f"doll-{turn.number}-{uuid.uuid4().hex[:12]}"
        self._show.show(DollState.THINKING, "thinking: she has probably finished (asking, still listening)")
        turn.marks["stopped"] = turn.stopped_at = self._options.clock.now()
        going_on = asyncio.create_task(self._hear_some(turn, opening), name=f"chacha-going-on-{turn.number}")
        dropped = False

        async def before_first_sound() -> bool:
            nonlocal dropped
            if going_on.done() and not going_on.cancelled() and going_on.result() in ("resumed", "tentative"):
                dropped = True
                return False
            going_on.cancel()  # his voice begins: what she said is her turn
            with contextlib.suppress(asyncio.CancelledError):
                await going_on
            self._server.errand(self._keep(request_id), f"chacha-keep-{turn.number}")
            self._finish_early(turn, early.text)
            return True

        recording = await self._ears.on_stt(turn.hearing.recording) if await self._audio_mode(turn) else None
        answer = asyncio.create_task(
            self._answer(turn, early.text, recording, tentative=request_id, gate=before_first_sound),
            name=f"chacha-early-{turn.number}",
        )
        answered: bool | None = False
        try:
            await asyncio.wait({answer, going_on}, return_when=asyncio.FIRST_COMPLETED)
            if not answer.done() and going_on.result() == "resumed":
                dropped = True
                answer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                answered = await answer
        except BaseException:
            answer.cancel()
            going_on.cancel()
            raise
        if not dropped and answered is None:  # the server will not answer early (quota reserve):
            turn.ask_early = False  # her tentative ends are her ends, as without tentative_end
            if going_on.done():
                return await self._hear_on(turn, opening, going_on.result())
            going_on.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await going_on
            return await self._hear_on(turn, opening, "silence")
        if not dropped:
            return answered
        turn.note(retractions=(turn.report.retractions if turn.report else 0) + 1)
        _LOGGER.info("she went on before his first sound: the early reply is dropped unheard")
        self._show.show(DollState.LISTENING, "listening: she went on")
        reason = going_on.result() if going_on.done() and not going_on.cancelled() else None
        return await self._hear_on(turn, opening, None if reason in ("resumed", None) else reason)

    async def _keep(self, request_id: str) -> None:
        try:
            if not await self._server.client.keep(request_id):
                _LOGGER.warning("the server no longer held the early reply %s: it is not stored", request_id)
        except ServerUnavailable as exc:
            _LOGGER.warning("could not have the early reply stored (%s)", exc)

    def _finish_early(self, turn: Turn, sent: str) -> None:
        """Her turn is over at his first sound: close her utterance; when its text is ready and
        differs from the partial text the reply was asked with, it replaces that in the history."""
        turn_id: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        turn.turn_id = turn_id
        turn.ears.close()
        hearing = turn.hearing
        turn.note(listen_end="tentative")

        async def settle() -> None:
            draft, final = await self._ears.on_stt(hearing.finish)
            transcript = draft if final is None else await asyncio.wrap_future(final)
            self._heard(turn, transcript)
            turn.note(draft=draft, pauses=hearing.pauses, resumptions=hearing.resumptions)
            stored = await turn_id
            if stored is None or not transcript.text or transcript.text == sent:
                return
            try:
                await self._server.client.correct_turn(self._options.conversation, stored, transcript.text)
            except Exception as exc:
                _LOGGER.warning("could not put the final text into the history (%s)", exc)

        turn.final = self._server.errand(settle(), f"chacha-final-{turn.number}")

    async def _answer(
        self,
        turn: Turn,
        text: str,
        recording: tuple[str, bytes] | None,
        *,
        tentative: str | None = None,
        gate: Callable[[], Awaitable[bool]] | None = None,
    ) -> bool | None:
        """Ask and speak his reply; whether to listen for her next words after it: his reply was
        heard to its end and she did not say goodbye. ``tentative``/``gate``: an early reply
        (:meth:`_ask_early`); None when the server refused to answer one."""
        turn.marks["asked"] = self._options.clock.now()
        turn.note(audio_mode=recording is not None)
        replies: asyncio.Queue = asyncio.Queue()
        asking = asyncio.create_task(
            ask(
                self._server.client, text, self._options.conversation, replies, recording, tentative=tentative
            ),
            name=f"chacha-ask-{turn.number}",
        )
        said = Said()
        watching: list[asyncio.Task] = []

        def first_audio() -> None:
            since = self._options.clock.now() - (turn.stopped_at or turn.pressed_at)
            self._show.show(DollState.SPEAKING, f"speaking: first audio {since:.2f} s after she stopped")
            if self.on_voice is not None:
                watching.append(asyncio.create_task(self._watch(turn), name=f"chacha-barge-in-{turn.number}"))

        def ended(end: ReplyFinal | ServerUnavailable | None) -> None:
            asking.cancel()
            if turn.turn_id is not None and not turn.turn_id.done():
                turn.turn_id.set_result(end.turn_id if isinstance(end, ReplyFinal) else None)
            if isinstance(end, ReplyFinal):
                self._server.answered()
                turn.note(reply=end.reply, backend=end.backend)
                skipped = "".join(f", {f.backend} skipped: {f.reason}" for f in end.fallbacks)
                _LOGGER.info("reply: %d sentence(s) from %s%s", said.arrived, end.backend, skipped)
                if end.heard:
                    _LOGGER.debug("the model heard: %s", end.heard)

        try:
            end = await self._voice.reply(turn, replies, said, turn.marks, first_audio, ended, gate)
        except asyncio.CancelledError:
            self._report_cut(said)  # she talked over him: the history keeps what she heard
            raise
        finally:
            asking.cancel()
            for task in watching:
                task.cancel()
            if turn.turn_id is not None and not turn.turn_id.done():
                turn.turn_id.set_result(None)
        if isinstance(end, TentativeRefused):
            _LOGGER.info("no early reply: %s", end)
            return None
        if isinstance(end, ServerUnavailable):
            await self._server_failed(turn, end)
            return False
        if not said.audio:
            return False
        await self._voice.earcon(turn, "done")
        if is_goodbye(text, self._options.settings.goodbyes):
            _LOGGER.info("she said goodbye: the conversation is over")
            return False
        return said.heard_all and not self.mute.muted

    async def _watch(self, turn: Turn) -> None:
        """While he speaks, listen (through the echo canceller) for her voice over his; once she
        has begun, hand the microphone's listener and her first blocks to :attr:`on_voice`."""
        detector = self._ears.barge_in()
        ears = self._ears.listen()
        try:
            await self._ears.until_heard(ears, detector)
        except BaseException:
            ears.close()
            raise
        turn.marks["barged_in"] = self._options.clock.now()
        _LOGGER.info("she talked over him: stopping him")
        on_voice = self.on_voice
        if on_voice is None:
            ears.close()
            return
        on_voice(ears, detector.kept)

    async def _say(self, turn: Turn, audio, message: str) -> None:
        if self._voice.play(turn, audio):
            self._show.show(DollState.SPEAKING, message)
            await self._voice.drain()

    async def long_press(self, turn: Turn) -> None:
        if self._options.settings.long_press == "mute":
            self.mute.set(not self.mute.muted)
            if self.mute.muted:
                text, message = MUTED_LINE, "muted: listening only while the button is held (long press)"
            else:
                text, message = UNMUTED_LINE, "unmuted: listening after his replies again (long press)"
            await self._say(turn, await self._voice.speak(text), f"speaking: {message}")
            return
        if self._options.settings.long_press == "repeat":
            if self._voice.last_reply:
                await self._say(turn, self._voice.last_reply, "speaking: the last reply again (long press)")
                return
            text = NOTHING_TO_REPEAT
        else:
            self._show.show(DollState.THINKING, "thinking: checking the server (long press)")
            last = self._last_backend()
            text = await status_line(self._server.client, last)
        await self._say(turn, await self._voice.speak(text), f"speaking: {text} (long press)")

    async def show_failure(self, turn: Turn) -> None:
        self._show.show(DollState.ERROR, "error: the turn failed (see above); back to idle shortly")
        await self._voice.earcon(turn, "error")
        await self._options.clock.sleep_async(_FAILURE_SHOW_S)

    async def _server_failed(self, turn: Turn, failure: ServerUnavailable) -> None:
        self._server.failed()
        retry_s = self._options.settings.server_retry_initial_s
        self._show.show(DollState.ERROR, f"error: {failure}; checking again in {retry_s:g} s")
        await self._voice.earcon(turn, "error", *self._voice.lines["offline"])
