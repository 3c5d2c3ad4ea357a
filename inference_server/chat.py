"""One turn of conversation: persona + history → the backend chain → sentences as they are ready."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from inference_server.backends.base import BackendError, HistoryTurn, LLMBackend, LLMRequest
from inference_server.persona import Persona
from inference_server.store import ConversationStore
from tts.sentences import SentenceSplitter

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sentence:
    """A whole sentence of the reply, sent as soon as it is complete."""

    index: int
    text: str

    def as_json(self) -> dict:
        return {"type": "sentence", "index": self.index, "text": self.text}


@dataclass(frozen=True)
class Fallback:
    backend: str
    reason: str
    detail: str


@dataclass(frozen=True)
class ReplyDone:
    """The end of a turn: the whole reply, which backend made it, and how long it took."""

    conversation: str
    reply: str
    backend: str
    first_sentence_ms: float | None
    total_ms: float
    fallbacks: tuple[Fallback, ...] = field(default_factory=tuple)

    def as_json(self) -> dict:
        return {
            "type": "final",
            "conversation": self.conversation,
            "reply": self.reply,
            "backend": self.backend,
            "timings_ms": {
                "first_sentence": _round(self.first_sentence_ms),
                "total": _round(self.total_ms),
            },
            "fallbacks": [
                {"backend": f.backend, "reason": f.reason, "detail": f.detail} for f in self.fallbacks
            ],
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


ChatEvent = Sentence | ReplyDone


class ChatService:
    """Builds the request from persona and history and walks the backend chain.

    A backend that fails before it has produced a sentence is skipped and the next one
    answers within the same turn; one that fails after some sentences were sent ends the
    reply there (she has already heard them).
    """

    def __init__(
        self,
        persona: Persona,
        store: ConversationStore,
        backends: Sequence[LLMBackend],
        *,
        history_turns: int = 12,
        timezone: str = "Asia/Seoul",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if not backends:
            raise ValueError("at least one backend is needed")
        self.persona = persona
        self.store = store
        self.backends = list(backends)
        self.history_turns = history_turns
        self._zone = ZoneInfo(timezone)
        self._clock = clock or (lambda: datetime.now(self._zone))

    def backend_status(self) -> list[dict]:
        return [
            {"name": b.name, "available": b.unavailable_reason is None, "reason": b.unavailable_reason}
            for b in self.backends
        ]

    def preferred_backend(self) -> str:
        return next((b.name for b in self.backends if b.unavailable_reason is None), "none")

    async def reply(self, conversation: str, text: str, channel: str) -> AsyncIterator[ChatEvent]:
        started = time.perf_counter()
        history = await asyncio.to_thread(self.store.recent, conversation, self.history_turns)
        await asyncio.to_thread(self.store.add, conversation, "user", text, channel=channel)
        request = LLMRequest(
            conversation=conversation,
            text=text,
            system_instruction=self.persona.system_instruction(self._clock()),
            history=tuple(HistoryTurn(t.role, t.text) for t in history),
        )
        fallbacks: list[Fallback] = []
        sentences: list[str] = []
        first_ms: float | None = None
        used = "none"
        for backend in self.backends:
            reason = backend.unavailable_reason
            if reason is not None:
                fallbacks.append(Fallback(backend.name, "unavailable", reason))
                continue
            used = backend.name
            splitter = SentenceSplitter()
            try:
                async for delta in backend.stream(request):
                    for sentence in splitter.feed(delta):
                        if first_ms is None:
                            first_ms = (time.perf_counter() - started) * 1000
                        yield Sentence(len(sentences), sentence)
                        sentences.append(sentence)
                for sentence in splitter.flush():
                    if first_ms is None:
                        first_ms = (time.perf_counter() - started) * 1000
                    yield Sentence(len(sentences), sentence)
                    sentences.append(sentence)
            except BackendError as exc:
                fallbacks.append(Fallback(backend.name, exc.reason, exc.detail))
                if sentences:
                    _LOGGER.warning(
                        "%s failed mid-reply (%s); ending the reply after %d sentence(s)",
                        backend.name,
                        exc.reason,
                        len(sentences),
                    )
                    break
                _LOGGER.warning(
                    "%s could not answer (%s: %s); trying the next backend",
                    backend.name,
                    exc.reason,
                    exc.detail,
                )
                continue
            if sentences:
                break
            fallbacks.append(Fallback(backend.name, "empty", "no speakable text"))
        reply = " ".join(sentences)
        if reply:
            await asyncio.to_thread(
                self.store.add, conversation, "model", reply, channel=channel, backend=used
            )
        else:
            used = "none"
        total_ms = (time.perf_counter() - started) * 1000
        _LOGGER.info(
            "turn %s: %d sentence(s) from %s in %.0f ms%s",
            conversation,
            len(sentences),
            used,
            total_ms,
            f" after {', '.join(f.backend + ':' + f.reason for f in fallbacks)}" if fallbacks else "",
        )
        yield ReplyDone(conversation, reply, used, first_ms, total_ms, tuple(fallbacks))
