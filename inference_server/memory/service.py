"""차차's long-term memory of her life: what the chat service calls around every reply.

- Every exchange: her words become a raw memory (searchable at once, no LLM) in the session's
  buffer.
- Every reply: the session's buffer (what left the history window) and the best long-term
  memories for what she just said go into the prompt, within a token budget.
- A session ends after `memory.session_idle_min` of quiet or at `memory.night_hour`; then one
  LLM call (reflection) rates and rewrites the session into memories and insights, charged to
  the quota ledger, and skipped while the quota is short (the raw memories stay meanwhile).
- "잊어줘": the memories she means are deleted, with the turns and summaries that held them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from inference_server.backends.base import BackendError, LLMBackend, LLMRequest
from inference_server.backends.chain import BackendChain
from inference_server.history import estimate_tokens
from inference_server.memory import reflect
from inference_server.memory.embed import Embedder
from inference_server.memory.index import Entry, MemoryIndex
from inference_server.memory.rank import Scored, rank
from inference_server.memory.store import Memory, MemoryStore, NewMemory, Session
from inference_server.memory.text import (
    ForgetRequest,
    canonical,
    letters,
    terms,
    turn_observation,
    word_terms,
)
from inference_server.settings import MemorySettings
from inference_server.shared.text import word_digest
from inference_server.store import ConversationStore, Turn

_LOGGER = logging.getLogger(__name__)

RAW_IMPORTANCE = 0.3
"""Her raw words before reflection rates them."""
ADDED_IMPORTANCE = 0.7
"""A memory the developer adds by hand, unless told otherwise."""
MAX_ATTEMPTS = 3
"""A session whose reflection answer is unusable this many times keeps its raw memories for good."""
REBUILD_DEAD_SHARE = 0.25

RECENT_TURNS = 200
"""'잊어줘 <topic>' also erases the topic's words from this many of the latest turns."""

FORGOTTEN_TURN = "(진주가 무언가를 잊어 달라고 했다)"
"""What stays in the history in place of her request to forget (it names what to forget)."""

_HEADING_LONG = "## What you remember of earlier days (oldest first)"
_HEADING_BUFFER = "## Remembered from this conversation"
RULES_HEADING = "## How you use your memories"
_RULES = (
    RULES_HEADING,
    "- These are your own memories of her: bring one up only when it fits, naturally, as a person would.",
    '- Ask a follow-up about something she told you before when it fits (e.g. "면접 어떻게 됐어?").',
    "- Never invent a memory. If you do not remember something, say so honestly.",
)


@dataclass(frozen=True)
class Found:
    memory: Memory
    score: Scored


@dataclass(frozen=True)
class Context:
    """The memory section of one prompt, and which memories it holds."""

    section: str | None
    ids: tuple[int, ...]


@dataclass(frozen=True)
class ReflectionOutcome:
    session_id: int
    status: str  # reflected | postponed | raw | nothing
    detail: str
    facts: int = 0
    insights: int = 0


@dataclass(frozen=True)
class Forgotten:
    memories: tuple[Memory, ...]
    turns: tuple[int, ...]
    said: tuple[str, ...] = ()
    """`said_digest` of the erased turns' words."""
    log_id: int | None = None
    """The forgetting's id in the forget log (None when nothing was erased)."""


def _stem(word: str) -> str:
    """A word without a trailing particle, so that "새우는" also finds "새우를"."""
    for particle in (
        "에서",
        "이랑",
        "하고",
        "으로",
        "이가",
        "은",
        "는",
        "이",
        "가",
        "을",
        "를",
        "에",
        "도",
        "랑",
        "로",
        "와",
        "과",
    ):
        if word.endswith(particle) and letters(word) - len(particle) >= 2:
            return word[: -len(particle)]
    return word


def _names(text: str, stems: list[str]) -> bool:
    """Whether a memory holds at least half of the words she named (one of one or two)."""
    if not stems:
        return False
    return sum(stem in text for stem in stems) * 2 >= len(stems)


class MemoryService:
    def __init__(
        self,
        conversations: ConversationStore,
        settings: MemorySettings,
        backends: Sequence[LLMBackend] = (),
        *,
        name: str = "차차",
        partner: str = "진주",
        timezone: str = "Asia/Seoul",
        embedder: Embedder | None = None,
        form: Callable[[str], str] = canonical,
        use_cues: bool = True,
    ) -> None:
        self.settings = settings
        self.conversations = conversations
        self.store = MemoryStore(conversations)
        self.embedder = embedder or Embedder()
        self.form = form  # what of a memory is embedded and counted: its canonical form
        self.use_cues = use_cues  # … and the cues reflection gave it
        self.chain = BackendChain(backends)
        """The backends reflection may ask; the chat service shares its breakers with it
        (`BackendChain.sharing`): reflection does not ask a backend whose breaker is not closed,
        and tells it how the request went."""
        self.name, self.partner = name, partner
        self._zone = ZoneInfo(timezone)
        self._indexes: dict[str, MemoryIndex] = {}
        self._lock = threading.RLock()
        self._reflecting: asyncio.Lock | None = None  # made in the server's event loop, on first use

    # -- the index -------------------------------------------------------------------------------

    def surface(self, text: str, cues: Sequence[str] = ()) -> str:
        """What of a memory is embedded and counted: its canonical form, then its cues."""
        form = self.form(text)
        return f"{form} ({', '.join(cues)})" if cues and self.use_cues else form

    def _entry(self, memory: Memory, vector: np.ndarray) -> Entry:
        found = terms(self.surface(memory.text, memory.cues))
        return Entry(memory.id, vector, found, memory.importance, memory.created_at)

    def _index(self, conversation: str) -> MemoryIndex:
        with self._lock:
            index = self._indexes.get(conversation)
            if index is not None and index.dead_share <= REBUILD_DEAD_SHARE:
                return index
            rows = self.store.vectors(conversation)
            missing = [m for m, v in rows if v is None]
            fresh = dict(
                zip(
                    (m.id for m in missing),
                    self.embedder.passages([self.surface(m.text, m.cues) for m in missing]),
                    strict=True,
                )
            )
            index = MemoryIndex(capacity=max(256, len(rows) + 64))
            for memory, vector in rows:
                index.add(self._entry(memory, vector if vector is not None else fresh[memory.id]))
            self._indexes[conversation] = index
            return index

    def _insert(
        self, conversation: str, new: list[NewMemory], *, state: str, session_id: int | None, at: float
    ) -> list[Memory]:
        vectors = self.embedder.passages([self.surface(m.text, m.cues) for m in new])
        with self._lock:
            index = self._index(conversation)
            added = []
            for item, vector in zip(new, vectors, strict=True):
                memory = self.store.add(
                    conversation, item, vector=vector, state=state, session_id=session_id, at=at
                )
                index.add(self._entry(memory, vector))
                added.append(memory)
        return added

    def _remove(self, conversation: str, ids: list[int]) -> None:
        with self._lock:
            self.store.delete(ids)
            index = self._indexes.get(conversation)
            if index is not None:
                for memory_id in ids:
                    index.remove(memory_id)

    # -- every exchange ----------------------------------------------------------------------------

    def _session_over(self, session: Session, at: float) -> bool:
        if at - session.last_at > self.settings.session_idle_min * 60:
            return True
        night = self._last_night(at)
        return night is not None and session.started_at < night <= at

    def _last_night(self, at: float) -> float | None:
        """The latest `night_hour` boundary at or before `at` (epoch seconds)."""
        if self.settings.night_hour is None:
            return None
        local = datetime.fromtimestamp(at, self._zone)
        boundary = local.replace(hour=self.settings.night_hour, minute=0, second=0, microsecond=0)
        if boundary > local:
            boundary -= timedelta(days=1)
        return boundary.timestamp()

    def note_exchange(
        self,
        conversation: str,
        turn_id: int,
        text: str,
        *,
        channel: str,
        at: float,
        reply_id: int | None = None,
    ) -> Memory | None:
        """Her turn (and his reply) joined the conversation: extend or start its session, and keep
        her words as a raw memory (unless they are too short to mean anything)."""
        last = reply_id or turn_id
        with self._lock:
            session = self.store.open_session(conversation)
            if session is not None and self._session_over(session, at):
                self.store.close_session(session.id, at)
                session = None
            if session is None:
                session = self.store.start_session(conversation, turn_id, at)
            self.store.extend_session(session.id, last, at)
            if letters(text) < self.settings.min_turn_chars:
                return None
            raw = NewMemory("turn", turn_observation(self.partner, text), RAW_IMPORTANCE, channel, (turn_id,))
            return self._insert(conversation, [raw], state="buffer", session_id=session.id, at=at)[0]

    def turn_corrected(self, conversation: str, turn_id: int, text: str) -> Memory | None:
        """Her turn got a better transcript: its raw memory (if any) takes the new words."""
        with self._lock:
            old = [m for m in self.store.all(conversation) if m.kind == "turn" and m.turn_ids == (turn_id,)]
            if not old:
                return None
            memory = old[0]
            self._remove(conversation, [memory.id])
            if letters(text) < self.settings.min_turn_chars:
                return None
            raw = NewMemory(
                "turn", turn_observation(self.partner, text), memory.importance, memory.channel, (turn_id,)
            )
            return self._insert(
                conversation, [raw], state=memory.state, session_id=memory.session_id, at=memory.created_at
            )[0]

    # -- every reply -----------------------------------------------------------------------------

    def search(self, conversation: str, query: str, *, limit: int, now: float) -> list[Found]:
        """The `limit` memories with the highest priority for `query`, best first."""
        return self.search_vector(conversation, self.embedder.query(query), query, limit=limit, now=now)

    def search_vector(
        self, conversation: str, vector: np.ndarray, query: str, *, limit: int, now: float
    ) -> list[Found]:
        """The same with the query already embedded."""
        with self._lock:
            scores = self._index(conversation).scores(vector, word_terms(query))
            ranked = rank(scores, self.settings, now=now, limit=limit)
        memories = {m.id: m for m in self.store.many([s.id for s in ranked])}
        return [Found(memories[s.id], s) for s in ranked if s.id in memories]

    def context(self, conversation: str, query: str, *, visible_turns: set[int], now: float) -> Context:
        """The prompt's memory section for what she just said (None when nothing is remembered)."""
        settings = self.settings
        buffer = [
            m
            for m in self.store.all(conversation, state="buffer")
            if not (m.turn_ids and set(m.turn_ids) <= visible_turns)
        ]
        kept_buffer: list[Memory] = []
        budget = settings.buffer_tokens
        for memory in reversed(buffer):  # the newest first
            cost = estimate_tokens(self._buffer_line(memory))
            if cost > budget:
                break
            kept_buffer.append(memory)
            budget -= cost
        kept_buffer.reverse()
        budget = settings.prompt_tokens - sum(estimate_tokens(self._buffer_line(m)) for m in kept_buffer)
        chosen: dict[int, Memory] = {}
        found = self.search(conversation, query, limit=settings.top_n, now=now) if budget > 0 else []
        reasons = {r.id: r for r in self.store.many(sorted({i for f in found for i in f.memory.reason_ids}))}

        def cost_of(group: list[Memory]) -> int:
            return sum(estimate_tokens(self._line(m, now)) for m in group)

        for item in found:
            memory = item.memory
            if memory.state == "buffer" or memory.id in chosen:
                continue
            group = [memory] + [reasons[i] for i in memory.reason_ids if i in reasons and i not in chosen]
            if cost_of(group) > budget or len(chosen) + len(group) > settings.top_n:
                group = [memory]  # the insight without its reasons, if that fits
            cost = cost_of(group)
            if cost > budget or len(chosen) + 1 > settings.top_n:
                continue
            for m in group:
                chosen[m.id] = m
            budget -= cost
        long_term = sorted(chosen.values(), key=lambda m: (m.created_at, m.id))
        if not long_term and not kept_buffer:
            return Context(None, ())
        lines: list[str] = []
        if long_term:
            lines.append(_HEADING_LONG)
            lines += [self._line(m, now) for m in long_term]
        if kept_buffer:
            if lines:
                lines.append("")
            lines.append(_HEADING_BUFFER)
            lines += [self._buffer_line(m) for m in kept_buffer]
        lines += ["", *_RULES]
        return Context("\n".join(lines), tuple(m.id for m in long_term + kept_buffer))

    @staticmethod
    def _buffer_line(memory: Memory) -> str:
        return f"- {memory.text}"

    def _line(self, memory: Memory, now: float) -> str:
        day = datetime.fromtimestamp(memory.created_at, self._zone)
        days = int(max(now - memory.created_at, 0) // 86_400)
        when = f"{day.month}월 {day.day}일, " + ("오늘" if days == 0 else f"{days}일 전")
        where = {"doll": "인형", "telegram": "텔레그램"}.get(memory.channel)
        label = f"{when}, {where}" if where else when
        kind = " (생각)" if memory.kind == "insight" else ""
        return f"- [{label}]{kind} {memory.text}"

    # -- the developer's hand -----------------------------------------------------------------------

    def add(
        self,
        conversation: str,
        text: str,
        *,
        importance: float | None,
        now: float,
        cues: Sequence[str] = (),
    ) -> Memory:
        item = NewMemory(
            "observation",
            text.strip(),
            ADDED_IMPORTANCE if importance is None else importance,
            "developer",
            cues=tuple(c.strip() for c in cues if c.strip()),
        )
        return self._insert(conversation, [item], state="long", session_id=None, at=now)[0]

    def list(self, conversation: str) -> list[Memory]:
        return self.store.all(conversation)

    def forget_ids(self, conversation: str, ids: list[int], *, turns: bool = True) -> Forgotten:
        """Delete these memories, the insights that rest on them, and (with `turns`) erase the turns
        they came from, so that none of it reaches a prompt again; log it for the other stores and
        scrub the file."""
        return self._finish(conversation, self._forget_ids(conversation, ids, turns=turns), [])

    def _finish(self, conversation: str, forgotten: Forgotten, words: list[tuple[int, str]]) -> Forgotten:
        """Log a forgetting (digests only) for the Telegram collector, and empty the WAL."""
        if not forgotten.memories and not forgotten.turns:
            return forgotten
        log_id = self.conversations.log_forget(conversation, list(forgotten.said), words)
        if not self.conversations.scrub():
            _LOGGER.warning(
                "a reader kept the WAL from being emptied after a forget; a later checkpoint empties it"
            )
        return Forgotten(forgotten.memories, forgotten.turns, forgotten.said, log_id)

    def _forget_ids(self, conversation: str, ids: list[int], *, turns: bool = True) -> Forgotten:
        with self._lock:
            doomed = {m.id: m for m in self.store.many(ids) if m.conversation == conversation}
            if not doomed:
                return Forgotten((), ())
            for memory in self.store.all(conversation):
                if memory.kind == "insight" and set(memory.reason_ids) & doomed.keys():
                    doomed[memory.id] = memory
            self._remove(conversation, list(doomed))
        turn_ids = sorted({t for m in doomed.values() for t in m.turn_ids}) if turns else []
        said: list[str] = []
        if turn_ids:
            turn_ids = sorted({*turn_ids, *self.conversations.replies_to(conversation, turn_ids)})
            said = self.conversations.forget_turns(conversation, turn_ids)
        return Forgotten(tuple(doomed.values()), tuple(turn_ids), tuple(said))

    def forget_all(self, conversation: str) -> int:
        with self._lock:
            ids = self.store.delete_all(conversation)
            self._indexes.pop(conversation, None)
        self.conversations.scrub()
        return len(ids)

    # -- "잊어줘" -------------------------------------------------------------------------------------

    def forget(self, conversation: str, request: ForgetRequest, *, before_turn: int, now: float) -> Forgotten:
        """What she asked to forget: the memories her words name, or else what she said last."""
        if request.topic:
            found = self.search(conversation, request.topic, limit=10, now=now)
            best = max((f.score.similarity for f in found), default=0.0)
            floor = max(self.settings.forget_threshold, best - 0.15)
            near = [f.memory.id for f in found if f.score.similarity >= floor][:5]
            stems = [_stem(w) for w in request.topic.split() if letters(_stem(w)) >= 2]
            named = [m.id for m in self.store.all(conversation) if _names(m.text, stems)]
            forgotten = self._forget_ids(conversation, list(dict.fromkeys(near + named)))
            # His and her recent words on the topic go too, or the history would bring it back.
            mentioned = self.conversations.mentioning(conversation, stems, last=RECENT_TURNS)
            # The collector erases every message naming the topic, however old.
            words = sorted({(len(stem), word_digest(stem)) for stem in stems})
            return self._also_turns(conversation, forgotten, set(mentioned), words)
        last = [
            t for t in self.conversations.recent(conversation, 4, before_id=before_turn) if t.role == "user"
        ]
        if not last:
            return Forgotten((), ())
        turn = last[-1]
        ids = [m.id for m in self.store.all(conversation) if turn.id in m.turn_ids]
        forgotten = self._forget_ids(conversation, ids)
        erased = {turn.id, *self.conversations.replies_to(conversation, [turn.id])}
        return self._also_turns(conversation, forgotten, erased, [])

    def _also_turns(
        self, conversation: str, forgotten: Forgotten, turn_ids: set[int], words: list[tuple[int, str]]
    ) -> Forgotten:
        """`forgotten` with these turns erased too, logged and scrubbed."""
        erased = sorted(turn_ids - set(forgotten.turns))
        digests = self.conversations.forget_turns(conversation, erased)
        return self._finish(
            conversation,
            Forgotten(
                forgotten.memories,
                tuple(sorted({*forgotten.turns, *erased})),
                tuple(sorted({*forgotten.said, *digests})),
            ),
            words,
        )

    # -- sessions and reflection ------------------------------------------------------------------

    def close_idle(self, now: float) -> list[Session]:
        closed = []
        with self._lock:
            for session in self.store.open_sessions():
                if self._session_over(session, now):
                    self.store.close_session(session.id, now)
                    closed.append(session)
        return closed

    def end_session(self, conversation: str, now: float) -> Session | None:
        with self._lock:
            session = self.store.open_session(conversation)
            if session is not None:
                self.store.close_session(session.id, now)
        return session

    async def reflect_due(
        self, now: float, *, force: bool = False, conversation: str | None = None
    ) -> list[ReflectionOutcome]:
        """Close idle sessions, then reflect on every ended session that is due (all with `force`;
        only `conversation`'s when given).

        One reflection runs at a time; sessions are taken oldest first.
        """
        if self._reflecting is None:
            self._reflecting = asyncio.Lock()
        async with self._reflecting:
            await asyncio.to_thread(self.close_idle, now)
            sessions = await asyncio.to_thread(self.store.unreflected, now, due_only=not force)
            if conversation is not None:
                sessions = [s for s in sessions if s.conversation == conversation]
            outcomes = []
            for session in sessions:
                outcomes.append(await self.reflect_session(session, now))
            return outcomes

    async def reflect_session(self, session: Session, now: float) -> ReflectionOutcome:
        turns: list[Turn] = await asyncio.to_thread(
            self.conversations.between, session.conversation, session.first_turn - 1, session.last_turn + 1
        )
        if not any(t.role == "user" and letters(t.for_model) >= self.settings.min_turn_chars for t in turns):
            await asyncio.to_thread(self.store.reflected, session.id, now, "nothing to remember")
            return ReflectionOutcome(session.id, "nothing", "no words of hers to remember")
        choice = self.chain.for_background(reserve=self.settings.quota_reserve, now=now)
        backend = choice.backend
        if backend is None:
            why, until = choice.why_not(
                "no LLM backend can reflect (Gemini or openai)", now + self.settings.retry_min * 60
            )
            await asyncio.to_thread(self.store.postpone, session.id, until, f"waiting: {why}")
            _LOGGER.info("reflection on session %d postponed: %s (raw memories kept)", session.id, why)
            return ReflectionOutcome(session.id, "postponed", why)
        request = LLMRequest(
            conversation=session.conversation,
            text=reflect.transcript(turns, name=self.name, partner=self.partner),
            system_instruction=reflect.instruction(
                name=self.name,
                partner=self.partner,
                started=datetime.fromtimestamp(session.started_at, self._zone),
            ),
            channel="memory",
            max_output_tokens=reflect.OUTPUT_TOKENS,
            json=True,
        )
        attempts = await asyncio.to_thread(self.store.attempted, session.id)
        breaker = self.chain.breakers.get(backend.name)
        try:
            try:
                answer = await backend.complete(request)
            except BackendError as exc:
                if breaker is not None:
                    breaker.failed(exc.reason, exc.detail)
                raise
            if breaker is not None:
                breaker.succeeded()
            result = reflect.parse(answer, turn_ids={t.id for t in turns})
        except (BackendError, reflect.ReflectionError) as exc:
            detail = f"{backend.name}: {exc}"
            if isinstance(exc, reflect.ReflectionError) and attempts >= MAX_ATTEMPTS:
                await asyncio.to_thread(self.store.reflected, session.id, now, f"raw only: {detail}")
                _LOGGER.warning(
                    "reflection on session %d gave up (%s); raw memories kept", session.id, detail
                )
                return ReflectionOutcome(session.id, "raw", detail)
            await asyncio.to_thread(
                self.store.postpone, session.id, now + self.settings.retry_min * 60, f"failed: {detail}"
            )
            _LOGGER.info("reflection on session %d failed (%s); tried again later", session.id, detail)
            return ReflectionOutcome(session.id, "postponed", detail)
        await asyncio.to_thread(self._store_reflection, session, turns, result, now)
        _LOGGER.info(
            "reflected on session %d of %s: %d memories, %d insights",
            session.id,
            session.conversation,
            len(result.facts),
            len(result.insights),
        )
        return ReflectionOutcome(
            session.id, "reflected", backend.name, len(result.facts), len(result.insights)
        )

    def _store_reflection(
        self, session: Session, turns: list[Turn], result: reflect.Reflection, now: float
    ) -> None:
        channel_of = {t.id: t.channel for t in turns}
        conversation = session.conversation
        facts = [
            NewMemory(
                "observation",
                f.text,
                f.importance,
                channel_of.get(f.turn_ids[0], "reflection") if f.turn_ids else "reflection",
                f.turn_ids,
                cues=f.cues,
            )
            for f in result.facts
        ]
        with self._lock:
            raw = [m.id for m in self.store.of_session(session.id) if m.kind == "turn"]
            added = self._insert(conversation, facts, state="long", session_id=session.id, at=session.last_at)
            insights = [
                NewMemory(
                    "insight",
                    i.text,
                    i.importance,
                    "reflection",
                    tuple(sorted({t for r in i.reasons for t in added[r].turn_ids})),
                    tuple(added[r].id for r in i.reasons),
                )
                for i in result.insights
            ]
            self._insert(conversation, insights, state="long", session_id=session.id, at=session.last_at)
            self._remove(conversation, raw)
            self.store.reflected(session.id, now, f"{len(facts)} memories, {len(insights)} insights")
