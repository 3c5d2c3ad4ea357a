"""History summaries go through one queue per conversation: concurrent replies never summarise the
same turns twice, the work is batched, and the quota keeps a reserve for conversation.

The real google-genai SDK talks to the local fake Gemini; its recorded `generateContent` requests
are the summaries, and their lines name the turns each one covered.
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fakes.calendar_clock import Calendar

from device.bench.fake_gemini import FakeGemini, Reply
from inference_server.api.models import FinalEvent
from inference_server.backends.gemini import GeminiBackend
from inference_server.chat import ChatService
from inference_server.history import SUMMARY_MIN_TURNS
from inference_server.persona import PersonaBook
from inference_server.quota import QuotaLedger, next_reset
from inference_server.settings import GeminiSettings, QuotaSettings
from inference_server.store import ConversationStore

pytestmark = pytest.mark.timeout(120)

SEOUL = ZoneInfo("Asia/Seoul")
CONVERSATION = "jinju"


@pytest.fixture
def fake():
    with FakeGemini(default=Reply.text("응, 그랬구나.")) as fake:
        yield fake


def _chat(tmp_path: Path, fake: FakeGemini, calendar: Calendar, *, quota: QuotaSettings, history_turns: int):
    ledger = QuotaLedger(tmp_path / "quota.sqlite3", clock=calendar.timestamp)
    settings = GeminiSettings(base_url=fake.base_url, model="gemini-test-flash", quota=quota)
    gemini = GeminiBackend(settings, api_key="test-key", ledger=ledger)
    store = ConversationStore(tmp_path / "conversations.sqlite3")
    chat = ChatService(
        PersonaBook(None, tmp_path),
        store,
        [gemini],
        history_turns=history_turns,
        history_tokens=100_000,
        clock=calendar.now,
    )
    return chat, ledger


async def _say(chat: ChatService, text: str) -> FinalEvent:
    final = None
    async for event in chat.reply(CONVERSATION, text, "telegram"):
        final = event
    assert isinstance(final, FinalEvent)
    return final


def _summaries(fake: FakeGemini) -> list[list[str]]:
    """The turns (one line each) in each summary request, in order."""
    return [
        [line for line in r.history[0][1].splitlines() if line.startswith(("진주: ", "차차: "))]
        for r in fake.requests
        if r.action == "generateContent"
    ]


def test_fifty_concurrent_replies_at_a_time_never_summarise_the_same_turns_twice(tmp_path, fake):
    calendar = Calendar()
    roomy = QuotaSettings(requests_per_minute=100_000, tokens_per_minute=10**9, requests_per_day=100_000)
    chat, _ = _chat(tmp_path, fake, calendar, quota=roomy, history_turns=6)
    fake.push(*(Reply.text(f"그랬구나 {n}번째 대답이야.") for n in range(400)))  # every turn unique

    async def load() -> None:
        for wave in range(4):  # 200 replies, 400 turns, 50 replies in flight at once
            await asyncio.gather(*(_say(chat, f"이야기 {wave}-{i:02d}") for i in range(50)))
        await chat.settle()

    asyncio.run(load())
    store = chat.store
    assert store.count(CONVERSATION) == 400
    # every turn older than the last six has left the window (the window is 6 turns)
    left_out = len(store.between(CONVERSATION, 0, store.recent(CONVERSATION, 6)[0].id))
    summaries = _summaries(fake)
    covered = [line for lines in summaries for line in lines]
    assert len(covered) == len(set(covered)), "two summaries over the same turns"
    assert summaries and len(summaries) <= math.ceil(left_out / SUMMARY_MIN_TURNS)
    assert all(len(lines) >= SUMMARY_MIN_TURNS for lines in summaries)
    print(f"400 turns, {left_out} left the window: {len(summaries)} summaries of {len(covered)} turns")


def test_a_job_that_finds_its_turns_already_summarised_does_nothing(tmp_path, fake):
    calendar = Calendar()
    chat, _ = _chat(tmp_path, fake, calendar, quota=QuotaSettings(), history_turns=2)
    summariser = chat.summariser
    summariser.min_turns = 10**6  # no summaries while she talks: this test asks for them itself

    async def talk() -> None:
        for i in range(5):
            await _say(chat, f"이야기 {i}")
        window = chat.window.build(CONVERSATION, chat.store.recent(CONVERSATION, 1)[0].id + 1)
        summariser.min_turns = SUMMARY_MIN_TURNS
        through = window.left_out[-1].id
        names = ("진주", "차차")
        assert await summariser.summarise(CONVERSATION, through, names=names)
        assert not await summariser.summarise(CONVERSATION, through, names=names)  # the same turns

    asyncio.run(talk())
    assert len(_summaries(fake)) == 1


def test_summaries_keep_a_reserve_for_conversation_and_wait_for_the_reset_without_retrying(
    tmp_path, fake, caplog
):
    caplog.set_level(logging.INFO, logger="inference_server.history")
    calendar = Calendar()
    # 20 a day, 14 of them Telegram's share; summaries stop while fewer than 4 of those are left.
    quota = QuotaSettings(requests_per_minute=1000, requests_per_day=20, doll_reserve=0.3)
    chat, ledger = _chat(tmp_path, fake, calendar, quota=quota, history_turns=2)

    async def days() -> tuple[list[str], list[str]]:
        for i in range(16):
            await _say(chat, f"이야기 {i}")
            await chat.settle()
            calendar.at += timedelta(minutes=1)
        today = [r.action for r in fake.requests]
        calendar.at = datetime.fromtimestamp(next_reset(calendar.timestamp()) + 120, SEOUL)
        await _say(chat, "새로운 하루")
        await chat.settle()
        return today, [r.action for r in fake.requests[len(today) :]]

    today, tomorrow = asyncio.run(days())
    # Every summary went out while at least 4 of Telegram's 14 were left (index = requests before
    # it today); then the turns spent the share on their own.
    for index, kind in enumerate(today):
        if kind == "generateContent":
            assert 14 - index >= 4, today
    assert today.count("generateContent") >= 2 and len(today) == 14
    waits = [r.getMessage() for r in caplog.records if "waits until" in r.getMessage()]
    assert len(waits) == 1 and "kept for conversation" in waits[0], "skipped once, then no retries"
    assert ledger.status("gemini-test-flash", quota).requests_today == 2  # a new day
    # after Google's reset the waiting turns are summarised, once
    assert tomorrow == ["streamGenerateContent", "generateContent"]
