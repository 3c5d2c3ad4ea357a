"""One turn of conversation: persona + history → the backend chain → sentences as they are ready."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from inference_server.api.models import (
    BackendStatus,
    ChatEvent,
    ClockStatus,
    FallbackInfo,
    FinalEvent,
    SentenceEvent,
    Timings,
)
from inference_server.backends.base import (
    AudioClip,
    BackendError,
    LLMBackend,
    LLMRequest,
    StreamEnd,
)
from inference_server.backends.chain import BackendChain, hears_audio, reply_pieces
from inference_server.breaker import CircuitBreaker
from inference_server.disk import DiskGuard, drop_turn, is_disk_full
from inference_server.history import HistoryWindow, Summariser
from inference_server.memory import MemoryService, forget_request
from inference_server.memory.service import FORGOTTEN_TURN
from inference_server.persona import PersonaBook
from inference_server.reply import ReplyShaper
from inference_server.settings import BreakerSettings
from inference_server.shared.clock import WallClock
from inference_server.store import ConversationStore

_LOGGER = logging.getLogger(__name__)

HOLD_S = 30.0
"""How long a tentative reply that has fully arrived waits to be kept or dropped; the doll does
either within a second or two, so one it never hears about is stored (nothing is lost)."""
_NOT_STORED_YET = 2**62  # the history window of a turn not yet stored: everything before it

MEMORY_TICK_S = 60.0
"""How often idle sessions are ended and due reflections run."""
FORGOT_REPLY = "알았어, 그 얘기는 이제 잊을게."
NOTHING_TO_FORGET_REPLY = "음, 뭘 잊어 달라는 건지 잘 모르겠어. 조금만 더 자세히 말해 줄래?"
DISK_FULL_REPLY = "미안, 내 기억 노트가 꽉 차서 자리를 비워 주기 전까지는 더 얘기할 수가 없어."
"""His one sentence while the data folder's disk is full: nothing of the turn is stored."""
DISK_FULL_BACKEND = "disk-full"
PROBE_INSTRUCTION = "This is a health check. Answer with one short Korean word."
PROBE_TEXT = "안녕"
PROBE_TOKENS = 16
"""A breaker's probe: a tiny request, its answer only proves the backend answers in time."""


class ChatService:
    """Builds the request from persona and history and walks the backend chain.

    A backend that fails before it has produced a sentence is skipped and the next one
    answers within the same turn; one that fails after some sentences were sent ends the
    reply there (she has already heard them). Each backend has a circuit breaker
    (inference_server.breaker): after repeated timeouts or server errors it is skipped at once
    (`circuit_open`) instead of costing every turn its timeout, until a probe in the background
    finds it answering again.
    """

    def __init__(
        self,
        persona: PersonaBook,
        store: ConversationStore,
        backends: Sequence[LLMBackend],
        *,
        history_turns: int = 12,
        history_tokens: int = 1200,
        summarize: bool = True,
        max_sentences: int = 3,
        timezone: str = "Asia/Seoul",
        clock: Callable[[], datetime] | None = None,
        wall_clock: WallClock | None = None,
        memory: MemoryService | None = None,
        breaker: BreakerSettings | None = None,
        summary_quota_reserve: int = 4,
        disk: DiskGuard | None = None,
    ) -> None:
        if not backends:
            raise ValueError("at least one backend is needed")
        self.persona = persona
        self.store = store
        # The data folder's disk (default: the store's folder, server.min_free_mb's default).
        self.disk = DiskGuard(store.path.parent) if disk is None else disk
        self.disk.attach(store)
        self.window = HistoryWindow(store, max_turns=history_turns, max_tokens=history_tokens)
        self.max_sentences = max_sentences
        self._zone = ZoneInfo(timezone)
        self._clock = clock or (lambda: datetime.now(self._zone))
        settings = breaker or BreakerSettings()
        # In memory only: a restart starts every breaker closed.
        breakers = {
            b.name: CircuitBreaker(b.name, settings, clock=self.now, zone=self._zone) for b in backends
        }
        self.chain = BackendChain(backends, breakers, now=self.now, probe=self._start_probe)
        self.backends = self.chain.backends
        self.breakers = self.chain.breakers
        self.summariser = (
            Summariser(
                store,
                self.chain,
                name=persona.current.name,
                partner=persona.current.partner,
                quota_reserve=summary_quota_reserve,
                clock=self.now,
                disk=self.disk,
            )
            if summarize
            else None
        )
        self._background: set[asyncio.Task] = set()
        self.memory = memory
        if memory is not None:
            memory.chain = memory.chain.sharing(self.chain)  # reflection skips a sick backend as turns do
        self._ticker: asyncio.Task | None = None
        self.wall_clock = wall_clock  # the server's, for the health's clock status
        self._held: dict[str, asyncio.Event] = {}  # tentative replies not yet kept, by request id

    def now(self) -> float:
        """The time now (epoch seconds) by the service's clock."""
        return self._clock().timestamp()

    def clock_status(self) -> ClockStatus | None:
        """Whether NTP has set the clock, and how far behind the server's the system clock is;
        None unless the service was given the server's WallClock (`wall_clock`)."""
        if self.wall_clock is None:
            return None
        self.wall_clock()  # read it now, so that behind_s is today's
        return ClockStatus(
            synchronized=self.wall_clock.synchronized(), behind_s=round(self.wall_clock.behind_s, 1)
        )

    def _start_memory_ticker(self) -> None:
        """Once per event loop: end idle sessions and reflect on them, every minute."""
        if self.memory is None or (self._ticker is not None and not self._ticker.done()):
            return
        self._ticker = asyncio.create_task(self._tick_memory(), name="memory-ticker")

    async def aclose(self) -> None:
        """As the server stops, on its loop: the memory ticker stopped, the backends' connections
        closed. The service can serve again afterwards (a new loop opens its own)."""
        if self._ticker is not None:
            self._ticker.cancel()
        await self.chain.aclose()

    async def _tick_memory(self) -> None:
        while True:
            try:
                await self.memory.reflect_due(self.now())
            except Exception as exc:  # the ticker must outlive a bad minute; the log says what happened
                if is_disk_full(exc):
                    self.disk.failed(exc)  # said once in the log, not a traceback a minute
                else:
                    _LOGGER.exception("memory upkeep failed; trying again in a minute")
            await asyncio.sleep(MEMORY_TICK_S)

    def backend_status(self) -> list[BackendStatus]:
        status = []
        for b in self.backends:
            quota = getattr(b, "quota_status", lambda: None)()
            status.append(
                BackendStatus(
                    name=b.name,
                    available=b.unavailable_reason is None,
                    reason=b.unavailable_reason,
                    hears_audio=hears_audio(b),
                    quota=quota,
                    breaker=self.breakers[b.name].status(),
                )
            )
        return status

    def preferred_backend(self) -> str:
        """The name of the backend that would answer now, or "none"."""
        backend = self.chain.preferred()
        return backend.name if backend is not None else "none"

    def hears_audio(self) -> bool:
        """Whether the backend that would answer now listens to her recording."""
        backend = self.chain.preferred()
        return backend is not None and hears_audio(backend)

    def tentative_refusal(self) -> str | None:
        """Why a tentative request may not be made now (None: it may).

        A tentative reply may be dropped unheard, so it spends only what Telegram could spend
        too: never the doll's reserve of the day's requests, which is kept for her turns."""
        backend = self.chain.preferred()
        status = getattr(backend, "quota_status", lambda: None)() if backend is not None else None
        if status is not None and status.left_today_for_telegram <= 0:
            return (
                f"{status.left_today} of today's {status.requests_per_day} requests to {status.model} "
                "are left, all kept for her confirmed turns: ask once she has finished"
            )
        return None

    def keep(self, request_id: str) -> bool:
        """She heard the tentative reply ``request_id`` begin: store it (False: no such reply now;
        it has ended, or was dropped)."""
        kept = self._held.get(request_id)
        if kept is None:
            return False
        kept.set()
        return True

    async def reply(
        self,
        conversation: str,
        text: str,
        channel: str,
        *,
        audio: AudioClip | None = None,
        tentative: str | None = None,
    ) -> AsyncIterator[ChatEvent]:
        """His reply to her ``text``, sentence by sentence, then its summary.

        ``tentative``: the doll's id for a reply asked for before it is sure she has finished.
        Nothing of it is stored until :meth:`keep` is called with that id (she is about to hear
        it); a reply whose stream is closed before that (she went on talking) leaves no trace in
        the history, the memories or the summaries. Once kept it is stored like any other.
        """
        if tentative is None:
            async for event in self._reply(conversation, text, channel, audio, None):
                yield event
            return
        if tentative in self._held:
            raise ValueError(f"tentative request {tentative} is already being answered")
        kept = self._held[tentative] = asyncio.Event()
        try:
            async for event in self._reply(conversation, text, channel, audio, kept):
                yield event
        finally:
            self._held.pop(tentative, None)

    async def _reply(
        self, conversation: str, text: str, channel: str, audio: AudioClip | None, kept: asyncio.Event | None
    ) -> AsyncIterator[ChatEvent]:
        started = time.perf_counter()
        disk = await asyncio.to_thread(self.disk.check)
        if disk.full:  # before anything is stored: no turn of hers is left without his reply
            async for event in self._disk_full(conversation, channel, started):
                yield event
            return
        if self.memory is not None:
            self._start_memory_ticker()
            forget = forget_request(text)
            if forget is not None:
                try:
                    async for event in self._forget(conversation, forget, channel, started):
                        yield event
                except (sqlite3.Error, OSError) as exc:
                    async for event in self._write_failed(exc, conversation, channel, started):
                        yield event
                return

        def add_hers() -> int:
            return self.store.add(
                conversation, "user", text, channel=channel, source="stt" if audio else "text"
            )

        turn_id: int | None = None
        if kept is None:
            try:
                turn_id = await asyncio.to_thread(add_hers)
            except (sqlite3.Error, OSError) as exc:
                async for event in self._write_failed(exc, conversation, channel, started):
                    yield event
                return
            self.disk.succeeded()
        window = await asyncio.to_thread(self.window.build, conversation, turn_id or _NOT_STORED_YET)
        memories = None
        if self.memory is not None:
            try:
                context = await asyncio.to_thread(
                    self.memory.context,
                    conversation,
                    text,
                    visible_turns={t.id for t in window.turns},
                    now=self.now(),
                )
                memories = context.section
            except Exception as exc:  # he answers without his memories rather than not at all
                if is_disk_full(exc):
                    self.disk.failed(exc)
                else:
                    _LOGGER.exception("could not recall memories for this turn; answering without them")
        persona = self.persona.current
        request = LLMRequest(
            conversation=conversation,
            text=text,
            channel=channel,
            audio=audio,
            tentative=kept is not None,
            system_instruction=persona.system_instruction(self._clock()),
            history=window.as_history(),
            summary=window.summary,
            memories=memories,
        )
        fallbacks: list[FallbackInfo] = []
        sentences: list[str] = []
        first_ms: float | None = None
        used, heard = "none", None
        reply_id: int | None = None
        cut_short = False
        full, sent = False, 0  # full: a write found the disk full; sent: sentences she was sent
        for attempt in self.chain.for_reply():
            backend = attempt.backend
            if attempt.skip is not None:
                reason, detail = attempt.skip
                fallbacks.append(FallbackInfo(backend=backend.name, reason=reason, detail=detail))
                if reason == "circuit_open":
                    _LOGGER.info("%s skipped: its breaker is open (%s)", backend.name, detail)
                continue
            breaker, trial, settled = attempt.breaker, attempt.trial, False
            used = backend.name
            shaper = ReplyShaper(self.max_sentences, audio=audio is not None)
            try:
                async with contextlib.aclosing(self._try_backend(backend, request, shaper)) as ready:
                    async for sentence in ready:
                        first_ms = first_ms or (time.perf_counter() - started) * 1000
                        sentences.append(sentence)
                        # What he has said is on record before she hears it: a crash, a hang-up or
                        # a cut leaves his words so far in the history, marked as cut off. A
                        # tentative reply is on record only once kept (she is hearing it).
                        if kept is None or kept.is_set():
                            if turn_id is None:
                                turn_id = await asyncio.to_thread(add_hers)
                            reply_id = await asyncio.to_thread(
                                self._record_partial, conversation, reply_id, sentences, channel, backend.name
                            )
                        yield SentenceEvent(index=len(sentences) - 1, text=sentence, reply_id=reply_id)
                        sent = len(sentences)
            except (sqlite3.Error, OSError) as exc:
                if not is_disk_full(exc):
                    raise
                self.disk.failed(exc)  # a sentence that could not be put on record is not said
                full = True
                break
            except BackendError as exc:
                fallbacks.append(FallbackInfo(backend=backend.name, reason=exc.reason, detail=exc.detail))
                if sentences:
                    _LOGGER.warning(
                        "%s failed mid-reply (%s: %s); ending the reply after %d sentence(s)",
                        backend.name,
                        exc.reason,
                        exc.detail,
                        len(sentences),
                    )
                else:
                    _LOGGER.warning(
                        "%s could not answer (%s: %s); trying the next backend",
                        backend.name,
                        exc.reason,
                        exc.detail,
                    )
                breaker.failed(exc.reason, exc.detail, trial=trial)  # after the line above: it may log
                settled = True
                if sentences:
                    cut_short = True  # his reply stays on record as cut off
                    break
                continue
            else:
                breaker.succeeded(trial=trial)  # an answer, even one with nothing speakable in it
                settled = True
            finally:
                if trial and not settled:
                    breaker.release()  # the turn was abandoned (she hung up) before the verdict
            heard = shaper.heard
            if sentences:
                break
            fallbacks.append(FallbackInfo(backend=backend.name, reason="empty", detail="no speakable text"))
        if kept is not None and turn_id is None and not full:
            # The whole reply came before she heard it begin: wait for the doll to keep it (or
            # to close the stream: she went on, and nothing is stored).
            try:
                await asyncio.wait_for(kept.wait(), HOLD_S)
            except TimeoutError:
                _LOGGER.warning(
                    "a tentative reply was neither kept nor dropped in %.0f s: storing it", HOLD_S
                )
            try:
                turn_id = turn_id or await asyncio.to_thread(add_hers)
                if sentences:
                    reply_id = await asyncio.to_thread(
                        self._record_partial, conversation, reply_id, sentences, channel, used
                    )
            except (sqlite3.Error, OSError) as exc:
                if not is_disk_full(exc):
                    raise
                self.disk.failed(exc)
                full, sent = True, 0
                sentences.clear()
        if turn_id is None:  # the disk was full before anything of a tentative reply was stored
            async for event in self._disk_full(conversation, channel, started):
                yield event
            return
        if full:
            del sentences[sent:]
            if reply_id is None:  # nothing of his is on record: hers is taken back, and he says why
                if await asyncio.to_thread(drop_turn, self.store, turn_id):
                    _LOGGER.info(
                        "turn %d of %s taken back: his reply could not be stored", turn_id, conversation
                    )
                else:
                    _LOGGER.warning(
                        "turn %d of %s stays without a reply: the full disk kept it from being taken back",
                        turn_id,
                        conversation,
                    )
                async for event in self._disk_full(conversation, channel, started):
                    yield event
                return
            cut_short = True  # what she heard stays on record, marked cut
        reply = " ".join(sentences)
        if heard:
            await self._write(self.store.set_heard, turn_id, heard)
        if reply_id is None:
            used = "none"
        elif not cut_short:
            await self._write(self.store.finish_reply, reply_id, reply, backend=used)
        if self.memory is not None:
            await self._remember(conversation, turn_id, heard or text, channel, reply_id)
        total_ms = (time.perf_counter() - started) * 1000
        _LOGGER.info(
            "turn %s (%s): %d sentence(s) from %s in %.0f ms%s",
            conversation,
            channel,
            len(sentences),
            used,
            total_ms,
            f" after {', '.join(f.backend + ':' + f.reason for f in fallbacks)}" if fallbacks else "",
        )
        if self.summariser is not None:
            task = self.summariser.request(conversation, window, names=(persona.partner, persona.name))
            if task is not None:
                self._keep(task)
        yield FinalEvent(
            conversation=conversation,
            reply=reply,
            backend=used,
            heard=heard,
            turn_id=turn_id,
            reply_id=reply_id,
            timings_ms=Timings(
                first_sentence=None if first_ms is None else round(first_ms, 1), total=round(total_ms, 1)
            ),
            fallbacks=tuple(fallbacks),
        )

    async def _write(self, write: Callable[..., object], *args, **kwargs) -> bool:
        """A write that finishes a turn whose words are stored already: one that finds the disk full
        tells the guard and leaves the turn as it is (his reply stays marked cut)."""
        try:
            await asyncio.to_thread(write, *args, **kwargs)
        except (sqlite3.Error, OSError) as exc:
            if not is_disk_full(exc):
                raise
            self.disk.failed(exc)
            return False
        return True

    async def _write_failed(
        self, exc: BaseException, conversation: str, channel: str, started: float
    ) -> AsyncIterator[ChatEvent]:
        """A write of the turn failed: on a full disk, his one sentence about it; else the error."""
        if not is_disk_full(exc):
            raise exc
        self.disk.failed(exc)
        async for event in self._disk_full(conversation, channel, started):
            yield event

    async def _disk_full(self, conversation: str, channel: str, started: float) -> AsyncIterator[ChatEvent]:
        """The data folder's disk is full: he says so in one sentence, as a whole reply, and nothing
        of the turn is stored (no backend is asked)."""
        total_ms = round((time.perf_counter() - started) * 1000, 1)
        _LOGGER.info(
            "turn %s (%s): the disk is full; he said so, and nothing of the turn is kept",
            conversation,
            channel,
        )
        yield SentenceEvent(index=0, text=DISK_FULL_REPLY)
        yield FinalEvent(
            conversation=conversation,
            reply=DISK_FULL_REPLY,
            backend=DISK_FULL_BACKEND,
            timings_ms=Timings(first_sentence=total_ms, total=total_ms),
        )

    def _keep(self, task: asyncio.Task) -> None:
        """Hold a background task until it is done (the loop keeps only weak references)."""
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def settle(self) -> None:
        """Wait until the background work started so far (summaries, probes) is done."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    # -- the breaker's trial ----------------------------------------------------------------------

    def _start_probe(self, backend: LLMBackend, breaker: CircuitBreaker) -> None:
        """The chain found a half-open breaker whose trial the quota can spare: probe in the
        background, and this turn skips the backend and keeps fast."""
        self._keep(asyncio.create_task(self._probe(backend, breaker), name=f"probe-{backend.name}"))

    async def _probe(self, backend: LLMBackend, breaker: CircuitBreaker) -> None:
        """The breaker's trial: a tiny streamed request (charged to the quota ledger, channel
        "probe"), under the backend's own first-text timeout. An answer closes the breaker."""
        request = LLMRequest(
            conversation="probe",
            text=PROBE_TEXT,
            system_instruction=PROBE_INSTRUCTION,
            channel="probe",
            max_output_tokens=PROBE_TOKENS,
        )
        settled = False
        try:
            pieces = backend.stream(request)
            try:
                async for _ in pieces:
                    pass
            finally:
                await pieces.aclose()
            _LOGGER.info("%s answered its probe", backend.name)
            breaker.succeeded(trial=True)
            settled = True
        except BackendError as exc:
            _LOGGER.info("%s probe failed (%s: %s)", backend.name, exc.reason, exc.detail)
            breaker.failed(exc.reason, exc.detail, trial=True)
            settled = True
        except Exception as exc:  # a broken probe must not leave the breaker half-open for good
            if is_disk_full(exc):  # the ledger could not count it: the full disk is said once
                self.disk.failed(exc)
            else:
                _LOGGER.exception("%s probe broke", backend.name)
        finally:
            if not settled:
                breaker.release()

    def _record_partial(
        self, conversation: str, reply_id: int | None, sentences: list[str], channel: str, backend: str
    ) -> int:
        """Store (or extend) his reply so far, marked `cut` until the reply is finished."""
        text = " ".join(sentences)
        if reply_id is None:
            return self.store.add(conversation, "model", text, channel=channel, backend=backend, source="cut")
        self.store.extend_reply(reply_id, text)
        return reply_id

    async def _remember(
        self, conversation: str, turn_id: int, text: str, channel: str, reply_id: int | None
    ) -> None:
        """Keep her words as a raw memory of the session; a failure costs the memory, not the reply."""
        try:
            await asyncio.to_thread(
                self.memory.note_exchange,
                conversation,
                turn_id,
                text,
                channel=channel,
                at=self.now(),
                reply_id=reply_id,
            )
        except Exception as exc:
            if is_disk_full(exc):
                self.disk.failed(exc)
            else:
                _LOGGER.exception("could not keep turn %d as a memory", turn_id)

    async def _forget(
        self, conversation: str, forget, channel: str, started: float
    ) -> AsyncIterator[ChatEvent]:
        """She asked him to forget something: delete it, and say so (no LLM is asked)."""
        turn_id = await asyncio.to_thread(
            self.store.add, conversation, "user", FORGOTTEN_TURN, channel=channel, source="forget"
        )
        forgotten = await asyncio.to_thread(
            self.memory.forget, conversation, forget, before_turn=turn_id, now=self.now()
        )
        reply = FORGOT_REPLY if forgotten.memories or forgotten.turns else NOTHING_TO_FORGET_REPLY
        _LOGGER.info(
            "forgot %d memories and %d turns of %s at her request",
            len(forgotten.memories),
            len(forgotten.turns),
            conversation,
        )
        reply_id = await asyncio.to_thread(
            self.store.add, conversation, "model", reply, channel=channel, backend="memory"
        )
        total_ms = round((time.perf_counter() - started) * 1000, 1)
        yield SentenceEvent(index=0, text=reply, reply_id=reply_id)
        yield FinalEvent(
            conversation=conversation,
            reply=reply,
            backend="memory",
            turn_id=turn_id,
            reply_id=reply_id,
            timings_ms=Timings(first_sentence=total_ms, total=total_ms),
            forget_id=forgotten.log_id,
        )

    @staticmethod
    async def _try_backend(
        backend: LLMBackend, request: LLMRequest, shaper: ReplyShaper
    ) -> AsyncIterator[str]:
        """The sentences of one backend's answer as they become ready; BackendError goes through."""
        pieces = reply_pieces(backend, request)
        truncated = False
        try:
            async for piece in pieces:
                if isinstance(piece, StreamEnd):
                    truncated = truncated or piece.truncated
                    continue
                for sentence in shaper.feed(piece):
                    yield sentence
                if shaper.full:
                    break
            rest = shaper.end(truncated=truncated)
            if shaper.dropped:
                _LOGGER.info("%s reached its token limit: the unfinished sentence is dropped", backend.name)
            for sentence in rest:
                yield sentence
        finally:
            await pieces.aclose()
