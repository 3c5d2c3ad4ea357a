"""Memory end to end on a simulated calendar: the real google-genai SDK against the fake Gemini,
the real quota ledger, SQLite, and the e5 embedder.

Day 1 she tells the doll something; the session ends, reflection runs; on day 8 a related
Telegram message's prompt carries the memory. "잊어줘" removes it for good. A 50-turn day at the
free-tier limits costs at most one extra request a session, and with the quota spent nothing is
lost: reflection runs after the quota resets.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fakes.calendar_clock import Calendar

from device.bench.fake_gemini import FakeGemini, Reply
from inference_server.api.models import FinalEvent
from inference_server.backends.gemini import GeminiBackend
from inference_server.backends.phrasebook import PhrasebookBackend
from inference_server.chat import FORGOT_REPLY, ChatService
from inference_server.memory import MemoryService
from inference_server.persona import PersonaBook
from inference_server.quota import QuotaLedger
from inference_server.settings import GeminiSettings, MemorySettings, QuotaSettings
from inference_server.store import ConversationStore

pytestmark = pytest.mark.timeout(120)

SEOUL = ZoneInfo("Asia/Seoul")
FACT = "진주가 새우 알레르기가 있다고 했다"


@pytest.fixture
def fake_gemini():
    with FakeGemini() as fake:
        yield fake


def _server(
    tmp_path: Path, fake: FakeGemini, calendar: Calendar, phrasebook, quota: QuotaSettings | None = None
):
    ledger = QuotaLedger(tmp_path / "quota.sqlite3", clock=calendar.timestamp)
    settings = GeminiSettings(
        base_url=fake.base_url, model="gemini-test-flash", quota=quota or QuotaSettings()
    )
    gemini = GeminiBackend(settings, api_key="test-key", ledger=ledger)
    store = ConversationStore(tmp_path / "conversations.sqlite3")
    memory = MemoryService(store, MemorySettings(), [gemini], timezone="Asia/Seoul")
    chat = ChatService(
        PersonaBook(None, tmp_path),
        store,
        [gemini, PhrasebookBackend(phrasebook)],
        summarize=False,
        clock=calendar.now,
        memory=memory,
    )
    return chat, ledger


async def _say(chat: ChatService, text: str, channel: str) -> FinalEvent:
    final = None
    async for event in chat.reply("jinju", text, channel):
        final = event
    assert isinstance(final, FinalEvent)
    return final


def _reflection(fact_turn: int) -> Reply:
    return Reply.text(
        json.dumps(
            {
                "memories": [
                    {
                        "text": FACT,
                        "importance": 0.9,
                        "turns": [fact_turn],
                        "cues": ["해산물", "뷔페", "회식"],
                    },
                    {
                        "text": "진주가 오늘 회사에서 피곤했다고 했다",
                        "importance": 0.3,
                        "turns": [fact_turn + 2],
                    },
                ],
                "insights": [{"text": "진주는 먹을 것을 조심해야 한다", "importance": 0.7, "reasons": [0]}],
            },
            ensure_ascii=False,
        )
    )


def _prompt_text(request) -> str:
    return request.system_text + "\n" + "\n".join(text for _, text in request.history)


def test_a_fact_told_to_the_doll_is_in_a_telegram_prompt_a_week_later_until_she_says_forget(
    tmp_path: Path, fake_gemini: FakeGemini, phrasebook
) -> None:
    calendar = Calendar(datetime(2026, 11, 23, 20, 0, tzinfo=SEOUL))
    chat, ledger = _server(tmp_path, fake_gemini, calendar, phrasebook)

    async def week() -> None:
        fake_gemini.push(Reply.stream(["헉, 진짜? 꼭 조심해."]), Reply.stream(["오늘도 고생했어."]))
        told = await _say(chat, "나 새우 먹으면 온몸에 두드러기 나", "doll")
        calendar.advance(minutes=2)
        await _say(chat, "오늘 회사에서 너무 피곤했어", "doll")
        # Quiet for 31 minutes: the session ends, and the minute's upkeep reflects on it.
        calendar.advance(minutes=31)
        fake_gemini.push(_reflection(told.turn_id))
        [outcome] = await chat.memory.reflect_due(calendar.timestamp())
        assert (outcome.status, outcome.facts, outcome.insights) == ("reflected", 2, 1)
        reflection = fake_gemini.requests[-1]
        assert (
            not reflection.stream and reflection.generation_config["responseMimeType"] == "application/json"
        )
        assert "나 새우 먹으면 온몸에 두드러기 나" in reflection.history[-1][1]
        kept = chat.memory.list("jinju")
        assert [(m.kind, m.text) for m in kept if m.kind == "insight"] == [
            ("insight", "진주는 먹을 것을 조심해야 한다")
        ]
        assert {m.state for m in kept} == {"long"} and not [m for m in kept if m.kind == "turn"]

        calendar.advance(days=7)
        before = len(fake_gemini.requests)
        fake_gemini.push(
            Reply.stream(["새우는 빼고 먹어야 해, 알지?"]), Reply.stream(["좋아, 맛있는 거 먹으러 가자."])
        )
        asked = await _say(chat, "이번 주 금요일 회식이 해산물 뷔페래", "telegram")
        week_later = fake_gemini.requests[before]
        assert FACT in week_later.system_text
        assert "7일 전, 인형" in week_later.system_text  # when and where she said it
        assert "진주는 먹을 것을 조심해야 한다" in week_later.system_text  # the insight, with its reason
        assert "Never invent a memory" in week_later.system_text
        assert asked.backend == "gemini"

        # "잊어줘" is answered by the memory itself: no model call, and he says so.
        forget = await _say(chat, "새우 얘기는 이제 잊어줘", "telegram")
        assert forget.backend == "memory" and forget.reply == FORGOT_REPLY
        assert len(fake_gemini.requests) == before + 1
        assert all("새우" not in m.text for m in chat.memory.list("jinju"))
        after = await _say(chat, "주말에 뷔페 갈까?", "telegram")
        assert after.backend == "gemini"
        assert "새우" not in _prompt_text(fake_gemini.requests[-1])  # not in memory, history or summary

    asyncio.run(week())


def test_a_fifty_turn_day_costs_one_reflection_and_a_spent_quota_only_delays_it(
    tmp_path: Path, fake_gemini: FakeGemini, phrasebook
) -> None:
    calendar = Calendar(datetime(2026, 11, 24, 9, 0, tzinfo=SEOUL))  # 16:00 the day before, in Pacific time
    chat, ledger = _server(tmp_path, fake_gemini, calendar, phrasebook, quota=QuotaSettings())
    sayings = [f"오늘 {i}번째로 하는 이야기인데 점심에 김밥 먹었어" for i in range(49)] + [
        "나 다음 달에 제주도 여행 가"
    ]

    async def days() -> None:
        for text in sayings:
            await _say(chat, text, "doll")
            calendar.advance(minutes=1)
        calendar.advance(minutes=40)
        [outcome] = await chat.memory.reflect_due(calendar.timestamp())
        # The doll spent the day's 20 free requests; reflection waits instead of taking one more.
        assert outcome.status == "postponed" and "left today" in outcome.detail
        assert len(fake_gemini.requests) == 20 and all(r.stream for r in fake_gemini.requests)
        # Nothing is lost meanwhile: her raw words are long-term memories, found by meaning.
        [found] = chat.memory.search("jinju", "제주 비행기 표 끊었어?", limit=1, now=calendar.timestamp())
        assert "제주도" in found.memory.text and found.memory.kind == "turn"

        calendar.advance(hours=1)
        assert await chat.memory.reflect_due(calendar.timestamp()) == []  # not due before the reset
        fake_gemini.push(
            Reply.text(
                json.dumps(
                    {"memories": [{"text": "진주가 다음 달에 제주도에 간다고 했다", "importance": 0.8}]}
                )
            )
        )
        calendar.advance(hours=16)  # past midnight Pacific time
        [done] = await chat.memory.reflect_due(calendar.timestamp())
        assert done.status == "reflected"
        reflections = [r for r in fake_gemini.requests if not r.stream]
        assert len(reflections) == 1  # one session, one extra request
        assert [m.text for m in chat.memory.list("jinju")] == ["진주가 다음 달에 제주도에 간다고 했다"]
        assert ledger.requests_today("gemini-test-flash") == 1

    asyncio.run(days())


def test_reflection_skips_a_backend_whose_breaker_is_open_and_its_failures_count_towards_it(
    tmp_path: Path, fake_gemini: FakeGemini, phrasebook
) -> None:
    calendar = Calendar(datetime(2026, 11, 24, 20, 0, tzinfo=SEOUL))
    chat, _ = _server(tmp_path, fake_gemini, calendar, phrasebook)
    breaker = chat.breakers["gemini"]

    async def evening() -> None:
        await _say(chat, "나 다음 달에 제주도 여행 가", "doll")
        calendar.advance(minutes=40)  # the session has ended
        # A sick Gemini: reflection's failure counts, as a turn's would.
        fake_gemini.push(Reply.error(503, "UNAVAILABLE", "overloaded"))
        [failed] = await chat.memory.reflect_due(calendar.timestamp())
        assert failed.status == "postponed" and "503" in failed.detail, failed
        assert breaker.status().failures == 1
        breaker.failed("timeout", "no first text")  # one of her turns times out: the breaker opens
        assert breaker.state == "open"
        asked = len(fake_gemini.requests)
        calendar.advance(seconds=10)  # the breaker is still open (30 s)
        [waiting] = await chat.memory.reflect_due(calendar.timestamp(), force=True)
        assert waiting.status == "postponed" and "gemini's breaker is open" in waiting.detail, waiting
        assert len(fake_gemini.requests) == asked  # not asked
        breaker.succeeded()  # the breaker's probe found Gemini well again
        fake_gemini.push(Reply.text(json.dumps({"memories": [{"text": "진주가 제주도에 간다고 했다"}]})))
        [done] = await chat.memory.reflect_due(calendar.timestamp(), force=True)
        assert done.status == "reflected" and breaker.state == "closed"

    asyncio.run(evening())
