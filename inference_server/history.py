"""The history the model sees: bounded by turns and by tokens, with older talk summarised.

A long day of talk must never grow the prompt without limit: the newest turns that fit the
token budget go in whole; the turns that fell out of the window are summarised by the LLM
when a backend and the quota allow (in the background, after the reply), and otherwise are
simply dropped, oldest first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from inference_server.backends.base import BackendError, HistoryTurn, LLMRequest
from inference_server.backends.chain import BackendChain
from inference_server.disk import DiskGuard, is_disk_full
from inference_server.store import ConversationStore, Turn

_LOGGER = logging.getLogger(__name__)

SUMMARY_MIN_TURNS = 4
"""Summarise only once at least this many turns have left the window."""
SUMMARY_RETRY_S = 600.0
"""After a summary failed, the conversation's next summary waits this long (seconds)."""

SUMMARY_INSTRUCTION = (
    "You keep the memory of a couple's conversation. Summarise, in Korean, in at most four short "
    "sentences, what {partner} and {name} talked about: facts about her day, plans, feelings, "
    "anything he should remember. Merge the earlier summary in. Write only the summary."
)


def estimate_tokens(text: str) -> int:
    """Roughly: Korean takes about one token per 1.5 characters; plus a little per turn."""
    return int(len(text) / 1.5) + 4


@dataclass(frozen=True)
class Window:
    turns: tuple[Turn, ...]  # oldest first, within both budgets
    summary: str | None  # of what came before, if there is one
    left_out: tuple[Turn, ...]  # turns after the summary that no longer fit

    def as_history(self) -> tuple[HistoryTurn, ...]:
        return tuple(HistoryTurn(t.role, t.for_model) for t in self.turns)


class HistoryWindow:
    def __init__(self, store: ConversationStore, *, max_turns: int, max_tokens: int) -> None:
        self.store = store
        self.max_turns = max_turns
        self.max_tokens = max_tokens

    def build(self, conversation: str, before_id: int) -> Window:
        summary = self.store.latest_summary(conversation)
        through = summary[0] if summary else 0
        recent = [
            t for t in self.store.recent(conversation, self.max_turns, before_id=before_id) if t.id > through
        ]
        kept: list[Turn] = []
        budget = self.max_tokens
        for turn in reversed(recent):
            cost = estimate_tokens(turn.for_model)
            if cost > budget:
                break
            kept.append(turn)
            budget -= cost
        kept.reverse()
        while kept and kept[0].role == "model":  # a history starts with something she said
            kept.pop(0)
        first = kept[0].id if kept else before_id
        left_out = self.store.between(conversation, through, first) if first > through + 1 else []
        return Window(tuple(kept), summary[1] if summary else None, tuple(left_out))


class Summariser:
    """Folds turns that left the window into the conversation's summary: one queue per conversation.

    Every reply may ask for a summary (`request`), but at most one job per conversation runs at
    a time; requests that arrive meanwhile are folded into one follow-up. A job reads the newest
    summary when it starts and summarises only the turns after it, so no two summaries ever cover
    the same turns, and it does nothing unless at least `min_turns` of them left the window: the
    work is batched however many replies asked. Summaries are charged to the quota ledger like
    Telegram and keep `quota_reserve` requests of Telegram's share of the day for conversation;
    a backend whose breaker is not closed is not asked. A job that is skipped (quota, breaker) or
    fails waits until the reason is gone (the quota's reset, the breaker's cooling, or
    SUMMARY_RETRY_S after a failure) before the conversation's next job may try: never a retry
    loop. The old turns wait meanwhile; the window keeps the prompt bounded anyway.
    """

    def __init__(
        self,
        store: ConversationStore,
        chain: BackendChain,
        *,
        name: str,
        partner: str,
        min_turns: int = SUMMARY_MIN_TURNS,
        quota_reserve: int = 4,
        clock: Callable[[], float] = time.time,
        disk: DiskGuard | None = None,
    ) -> None:
        self.store = store
        self.disk = disk  # told when a summary finds the disk full (said once, not a traceback)
        self.chain = chain  # the server's, with its breakers: a sick backend is not asked
        self.instruction = SUMMARY_INSTRUCTION.format(name=name, partner=partner)
        self.min_turns = min_turns
        self.quota_reserve = quota_reserve
        self._clock = clock
        self._jobs: dict[str, asyncio.Task] = {}
        self._wanted: dict[str, tuple[int, tuple[str, str]]] = {}  # conversation → (through id, names)
        self._not_before: dict[str, float] = {}

    def wanted(self, window: Window) -> bool:
        return bool(self.chain.background_backends()) and len(window.left_out) >= self.min_turns

    def request(self, conversation: str, window: Window, *, names: tuple[str, str]) -> asyncio.Task | None:
        """Ask for the turns that left `window` to be summarised; the new job, if one was started.

        Must be called in the event loop. While a job of the conversation runs, the request waits
        for it and one follow-up job takes every request made meanwhile.
        """
        if not self.wanted(window):
            return None
        through = window.left_out[-1].id
        known = self._wanted.get(conversation)
        self._wanted[conversation] = (max(through, known[0] if known else 0), names)
        running = self._jobs.get(conversation)
        if running is not None and not running.done():
            return None
        task = asyncio.create_task(self._drain(conversation), name=f"summary-{conversation}")
        self._jobs[conversation] = task
        return task

    async def _drain(self, conversation: str) -> None:
        while conversation in self._wanted:
            through, names = self._wanted.pop(conversation)
            try:
                await self.summarise(conversation, through, names=names)
            except Exception as exc:  # a bad summary must not stop the next one; the log says what happened
                if self.disk is not None and is_disk_full(exc):
                    self.disk.failed(exc)
                else:
                    _LOGGER.exception("summary of %s failed", conversation)

    async def summarise(self, conversation: str, through: int, *, names: tuple[str, str]) -> bool:
        """One job: summarise the turns after the newest summary up to turn `through`, if there are
        at least `min_turns` of them and a backend may be asked now. True when a summary was saved.

        Replies go through `request`; a direct call (a test) must not run beside a queued job.
        """
        now = self._clock()
        if self._not_before.get(conversation, 0.0) > now:
            return False
        latest = await asyncio.to_thread(self.store.latest_summary, conversation)
        after = latest[0] if latest else 0
        turns = await asyncio.to_thread(self.store.between, conversation, after, through + 1)
        if len(turns) < self.min_turns:
            return False  # already summarised, or too few new turns to be worth a request
        she, he = names
        lines = [f"{she if t.role == 'user' else he}: {t.for_model}" for t in turns]
        text = (f"Earlier summary: {latest[1]}\n\n" if latest else "") + "\n".join(lines)
        request = LLMRequest(conversation, text, self.instruction, channel="summary")
        choice = self.chain.for_background(reserve=self.quota_reserve, now=now)
        failed: list[tuple[str, float]] = []
        for backend in choice.ready:
            breaker = self.chain.breakers.get(backend.name)
            try:
                summary = await backend.complete(request)
            except BackendError as exc:
                if breaker is not None:
                    breaker.failed(exc.reason, exc.detail)
                failed.append((f"{backend.name}: {exc.reason}: {exc.detail}", now + SUMMARY_RETRY_S))
                continue
            if breaker is not None:
                breaker.succeeded()
            await asyncio.to_thread(self.store.save_summary, conversation, turns[-1].id, summary.strip())
            _LOGGER.info("summarised %d older turn(s) of %s with %s", len(turns), conversation, backend.name)
            return True
        why, until = choice.why_not("no backend can summarise", now + SUMMARY_RETRY_S, *failed)
        self._not_before[conversation] = until
        _LOGGER.info(
            "summary of %d turn(s) of %s waits until %s: %s (the window stays bounded meanwhile)",
            len(turns),
            conversation,
            time.strftime("%Y-%m-%d %H:%M", time.localtime(until)),
            why,
        )
        return False
