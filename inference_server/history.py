"""The history the model sees: bounded by turns and by tokens, with older talk summarised.

A long day of talk must never grow the prompt without limit: the newest turns that fit the
token budget go in whole; the turns that fell out of the window are summarised by the LLM
when a backend and the quota allow (in the background, after the reply), and otherwise are
simply dropped, oldest first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from inference_server.backends.base import BackendError, HistoryTurn, LLMBackend, LLMRequest
from inference_server.store import ConversationStore, Turn

_LOGGER = logging.getLogger(__name__)

SUMMARY_MIN_TURNS = 4
"""Summarise only once at least this many turns have left the window."""

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
    """Folds turns that left the window into the conversation's summary, one job at a time."""

    def __init__(
        self, store: ConversationStore, backends: Sequence[LLMBackend], *, name: str, partner: str
    ) -> None:
        self.store = store
        self.backends = [b for b in backends if hasattr(b, "complete") and b.name != "phrasebook"]
        self.instruction = SUMMARY_INSTRUCTION.format(name=name, partner=partner)
        self._busy: set[str] = set()

    def wanted(self, window: Window) -> bool:
        return bool(self.backends) and len(window.left_out) >= SUMMARY_MIN_TURNS

    async def summarise(self, conversation: str, window: Window, *, names: tuple[str, str]) -> bool:
        if conversation in self._busy or not self.wanted(window):
            return False
        self._busy.add(conversation)
        try:
            she, he = names
            lines = [f"{she if t.role == 'user' else he}: {t.for_model}" for t in window.left_out]
            text = (f"Earlier summary: {window.summary}\n\n" if window.summary else "") + "\n".join(lines)
            request = LLMRequest(conversation, text, self.instruction, channel="summary")
            for backend in self.backends:
                if backend.unavailable_reason:
                    continue
                try:
                    summary = await backend.complete(request)
                except BackendError as exc:
                    _LOGGER.info(
                        "summary by %s skipped (%s: %s); old turns are dropped instead",
                        backend.name,
                        exc.reason,
                        exc.detail,
                    )
                    continue
                await asyncio.to_thread(
                    self.store.save_summary, conversation, window.left_out[-1].id, summary.strip()
                )
                _LOGGER.info(
                    "summarised %d older turn(s) of %s with %s",
                    len(window.left_out),
                    conversation,
                    backend.name,
                )
                return True
            return False
        finally:
            self._busy.discard(conversation)
