"""The circuit breaker: a sick Gemini (slow first text, 5xx, flapping with 429s) costs her two
slow turns, then none; one probe in the background per cooling period finds it well again.

The breaker's clock and the quota ledger's are simulated; the SDK is the real google-genai,
talking to the local fake Gemini, whose recorded requests prove which turns never reached it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from conftest import gemini_backend
from fakes.calendar_clock import Calendar
from fakes.chat import chat_final

from device.bench.fake_gemini import FakeGemini, Reply
from device.cli.admin import breaker_text
from inference_server.api.models import BreakerStatus, FinalEvent
from inference_server.backends.gemini import GeminiBackend
from inference_server.backends.phrasebook import PhrasebookBackend
from inference_server.breaker import CircuitBreaker, Gate
from inference_server.chat import PROBE_INSTRUCTION, ChatService
from inference_server.persona import PersonaBook
from inference_server.quota import QuotaLedger
from inference_server.settings import BreakerSettings, GeminiSettings, QuotaSettings
from inference_server.store import ConversationStore

pytestmark = pytest.mark.timeout(60)

SEOUL = ZoneInfo("Asia/Seoul")
ROOMY = QuotaSettings(requests_per_minute=1000, requests_per_day=1000)


# --- the breaker alone ------------------------------------------------------------------------------


def _breaker(calendar: Calendar, **settings) -> CircuitBreaker:
    return CircuitBreaker("gemini", BreakerSettings(**settings), clock=calendar.timestamp, zone=SEOUL)


def test_failures_in_a_row_open_it_and_an_answer_between_them_starts_the_count_again():
    calendar = Calendar()
    breaker = _breaker(calendar)
    breaker.failed("timeout", "no first text")
    assert breaker.status().failures == 1 and breaker.decide().gate is Gate.ASK
    breaker.succeeded()
    breaker.failed("server_error", "HTTP 503")
    assert breaker.state == "closed"
    breaker.failed("network", "ConnectError")
    status = breaker.status()
    assert status.state == "open" and status.opened == 1 and status.failures == 2
    assert status.until == calendar.timestamp() + 30 and status.retry_in_s == 30
    assert status.last_failure == "network: ConnectError"
    decision = breaker.decide()
    assert decision.gate is Gate.SKIP
    assert decision.detail == "skipped until 09:00:30 (in 30 s) after network: ConnectError"


def test_429s_quota_and_a_rejected_key_do_not_count_and_any_answer_resets_the_count():
    breaker = _breaker(Calendar())
    for reason in ("rate_limited", "quota", "auth", "unavailable", "bad_response"):
        breaker.failed(reason, "x")
    assert breaker.status().failures == 0
    for answered in ("blocked", "empty", "bad_request"):
        breaker.failed("timeout", "slow")
        breaker.failed(answered, "the server answered, quickly")
        assert breaker.status().failures == 0 and breaker.state == "closed"


def test_the_cooling_period_doubles_up_to_its_limit_and_a_good_trial_closes_it():
    calendar = Calendar()
    breaker = _breaker(calendar, failures=1, open_s=30, open_max_s=600)
    breaker.failed("timeout", "slow")
    periods = []
    for _ in range(7):
        periods.append(breaker.status().retry_in_s)
        calendar.advance(periods[-1])
        assert breaker.state == "half_open"
        assert breaker.decide().gate is Gate.TRIAL
        assert breaker.decide().gate is Gate.SKIP, "one trial at a time"
        breaker.failed("server_error", "HTTP 500", trial=True)
    assert periods == [30, 60, 120, 240, 480, 600, 600]
    calendar.advance(600)
    assert breaker.decide().gate is Gate.TRIAL
    breaker.succeeded(trial=True)
    assert breaker.status() == BreakerStatus(
        state="closed", failures=0, last_failure="server_error: HTTP 500", opened=0
    )
    breaker.failed("timeout", "slow")
    assert breaker.status().retry_in_s == 30, "a closed breaker starts from the first period again"


def test_a_trial_that_ends_without_a_verdict_lets_the_next_caller_try():
    calendar = Calendar()
    breaker = _breaker(calendar, failures=1)
    breaker.failed("timeout", "slow")
    calendar.advance(30)
    assert breaker.decide().gate is Gate.TRIAL
    breaker.failed("quota", "cooling down", trial=True)  # the ledger said no: no verdict on Gemini
    assert breaker.state == "half_open" and breaker.decide().gate is Gate.TRIAL
    breaker.release()  # e.g. the turn was cancelled
    assert breaker.decide().gate is Gate.TRIAL


def test_a_late_failure_of_a_call_that_began_before_it_opened_does_not_extend_it():
    calendar = Calendar()
    breaker = _breaker(calendar)
    breaker.failed("timeout", "slow")
    breaker.failed("timeout", "slow")
    until = breaker.status().until
    calendar.advance(10)
    breaker.failed("timeout", "a turn that began before it opened")
    assert breaker.status().until == until and breaker.status().opened == 1


def test_chacha_status_says_closed_open_until_and_half_open():
    assert breaker_text(BreakerStatus(state="closed", failures=0)) == "breaker closed"
    assert breaker_text(BreakerStatus(state="closed", failures=1)) == "breaker closed (1 failure(s) in a row)"
    until = datetime(2026, 11, 24, 14, 3, 12).timestamp()  # the CLI shows its own local time
    opened = BreakerStatus(
        state="open", failures=2, until=until, retry_in_s=25.4, last_failure="timeout: slow", opened=1
    )
    assert breaker_text(opened) == "breaker open until 14:03:12 (in 25 s) after timeout: slow"
    half = BreakerStatus(state="half_open", failures=2, last_failure="timeout: slow", opened=1)
    assert breaker_text(half) == "breaker half-open: the next turn starts a probe (after timeout: slow)"


# --- a sick Gemini, through the real SDK ---------------------------------------------------------------


@pytest.fixture
def fake():
    with FakeGemini() as fake:
        yield fake


def _chat(tmp_path: Path, fake: FakeGemini, calendar: Calendar, phrasebook, *, quota=ROOMY):
    ledger = QuotaLedger(tmp_path / "quota.sqlite3", clock=calendar.timestamp)
    settings = GeminiSettings(
        base_url=fake.base_url, model="gemini-test-flash", first_token_timeout_s=0.5, quota=quota
    )
    gemini = GeminiBackend(settings, api_key="test-key", ledger=ledger)
    store = ConversationStore(tmp_path / "conversations.sqlite3")
    chat = ChatService(
        PersonaBook(None, tmp_path),
        store,
        [gemini, PhrasebookBackend(phrasebook)],
        summarize=False,
        clock=calendar.now,
    )
    return chat, ledger


async def _say(chat: ChatService, text: str = "배고파") -> FinalEvent:
    final = None
    async for event in chat.reply("jinju", text, "doll"):
        final = event
    assert isinstance(final, FinalEvent) and final.reply
    return final


def _reasons(final: FinalEvent) -> list[tuple[str, str]]:
    return [(f.backend, f.reason) for f in final.fallbacks]


def _channels(tmp_path: Path) -> list[str]:
    with sqlite3.connect(tmp_path / "quota.sqlite3") as db:
        return [row[0] for row in db.execute("SELECT channel FROM requests ORDER BY id")]


def test_a_sick_gemini_costs_two_slow_turns_then_none_until_a_probe_finds_it_well(tmp_path, fake, phrasebook):
    calendar = Calendar()
    chat, _ = _chat(tmp_path, fake, calendar, phrasebook)
    fake.push(Reply.error(503, "UNAVAILABLE", "overloaded"), Reply.hang(5.0))

    async def day() -> None:
        assert _reasons(await _say(chat)) == [("gemini", "server_error")]
        calendar.advance(5)
        assert _reasons(await _say(chat)) == [("gemini", "timeout")]
        opened_at = calendar.timestamp()
        [gemini, phrasebook_status] = chat.backend_status()
        assert gemini.breaker.state == "open" and gemini.breaker.until == opened_at + 30
        assert phrasebook_status.breaker.state == "closed"
        assert chat.preferred_backend() == "phrasebook" and not chat.hears_audio()

        for _ in range(5):  # every turn of the cooling period: no request, the phrasebook at once
            calendar.advance(5)
            final = await _say(chat)
            assert final.backend == "phrasebook" and _reasons(final) == [("gemini", "circuit_open")]
            assert final.fallbacks[0].detail.startswith("skipped until 09:00:35 (in ")
        assert len(fake.requests) == 2

        calendar.advance(5)  # 30 s after it opened: half-open
        assert chat.backend_status()[0].breaker.state == "half_open"
        final = await _say(chat)  # starts the probe and does not wait for it
        assert final.backend == "phrasebook" and _reasons(final) == [("gemini", "circuit_open")]
        assert "probing it in the background" in final.fallbacks[0].detail
        await chat.settle()
        probe = fake.requests[-1]
        assert len(fake.requests) == 3 and probe.system_text == PROBE_INSTRUCTION
        assert probe.history == [("user", "안녕")] and probe.generation_config["maxOutputTokens"] == 16
        assert chat.backend_status()[0].breaker.state == "closed"

        final = await _say(chat)
        assert final.backend == "gemini" and final.fallbacks == ()
        assert _channels(tmp_path) == ["doll", "doll", "probe", "doll"]

    asyncio.run(day())


def test_a_probe_that_fails_keeps_it_open_twice_as_long(tmp_path, fake, phrasebook):
    calendar = Calendar()
    chat, _ = _chat(tmp_path, fake, calendar, phrasebook)
    fake.push(*[Reply.error(500, "INTERNAL", "boom")] * 3)

    async def day() -> None:
        await _say(chat)
        await _say(chat)
        calendar.advance(30)
        await _say(chat)
        await chat.settle()
        status = chat.backend_status()[0].breaker
        assert status.state == "open" and status.opened == 2
        assert status.until == calendar.timestamp() + 60
        assert len(fake.requests) == 3, "one probe, not a retry loop"
        calendar.advance(59)
        assert _reasons(await _say(chat)) == [("gemini", "circuit_open")]
        assert len(fake.requests) == 3

    asyncio.run(day())


def test_flapping_with_429s_the_ledger_cools_down_and_the_breaker_neither_counts_nor_probes_meanwhile(
    tmp_path, fake, phrasebook
):
    calendar = Calendar()
    chat, ledger = _chat(tmp_path, fake, calendar, phrasebook)
    fake.push(
        Reply.error(429, "RESOURCE_EXHAUSTED", "quota exceeded", retry_delay="20s"),
        Reply.error(503, "UNAVAILABLE", "overloaded"),
        Reply.hang(5.0),
    )

    async def day() -> None:
        assert _reasons(await _say(chat)) == [("gemini", "rate_limited")]
        calendar.advance(5)
        assert _reasons(await _say(chat)) == [("gemini", "quota")]  # the ledger's cooldown: no request
        assert len(fake.requests) == 1 and chat.backend_status()[0].breaker.failures == 0
        calendar.advance(20)
        assert _reasons(await _say(chat)) == [("gemini", "server_error")]
        assert _reasons(await _say(chat)) == [("gemini", "timeout")]
        assert _reasons(await _say(chat)) == [("gemini", "circuit_open")]
        assert len(fake.requests) == 3

        # Half-open while the ledger cools the model down after a 429 (from Telegram, say): the
        # cooldown is respected, no probe is sent; the turn's own try is refused by the ledger.
        ledger.cool_down("gemini-test-flash", ROOMY, retry_after_s=60, reason="quota exceeded")
        calendar.advance(30)
        assert _reasons(await _say(chat)) == [("gemini", "quota")]
        await chat.settle()
        assert len(fake.requests) == 3 and chat.backend_status()[0].breaker.state == "half_open"
        calendar.advance(60)
        assert _reasons(await _say(chat)) == [("gemini", "circuit_open")]  # now the probe goes out
        await chat.settle()
        assert len(fake.requests) == 4 and fake.requests[-1].system_text == PROBE_INSTRUCTION
        assert (await _say(chat)).backend == "gemini"

    asyncio.run(day())


def test_without_a_request_to_spare_for_a_probe_the_next_turn_is_the_trial(tmp_path, fake, phrasebook):
    calendar = Calendar()
    # Telegram's share of the day is 2 requests: the two failing turns spend it.
    quota = QuotaSettings(requests_per_minute=1000, requests_per_day=20, doll_reserve=0.9)
    chat, _ = _chat(tmp_path, fake, calendar, phrasebook, quota=quota)
    fake.push(*[Reply.error(503, "UNAVAILABLE", "overloaded")] * 2)

    async def day() -> None:
        await _say(chat)
        await _say(chat)
        assert chat.backend_status()[0].breaker.state == "open"
        calendar.advance(30)
        final = await _say(chat, "오늘 뭐 했어?")
        assert final.backend == "gemini" and final.fallbacks == ()
        await chat.settle()
        assert len(fake.requests) == 3 and fake.requests[-1].history[-1] == ("user", "오늘 뭐 했어?")
        assert chat.backend_status()[0].breaker.state == "closed"
        assert _channels(tmp_path) == ["doll"] * 3

    asyncio.run(day())


# --- over HTTP: the turn's fallbacks and GET /v1/health --------------------------------------------


def test_health_and_the_turns_fallbacks_show_an_open_breaker(start_server, token, fake, phrasebook):
    calendar = Calendar()
    fake.push(*[Reply.error(500, "INTERNAL", "boom")] * 2)
    server = start_server(gemini_backend(fake.base_url), PhrasebookBackend(phrasebook), clock=calendar.now)
    chat_final(server, token, "안녕")
    chat_final(server, token, "안녕")
    final = chat_final(server, token, "배고파")
    assert final.backend == "phrasebook" and len(fake.requests) == 2
    assert [(f.backend, f.reason) for f in final.fallbacks] == [("gemini", "circuit_open")]
    assert "skipped until 09:00:30" in final.fallbacks[0].detail
    health = httpx.get(f"{server.url}/v1/health", headers={"Authorization": f"Bearer {token}"}).json()
    assert health["backend"] == "phrasebook" and health["hears_audio"] is False
    gemini = health["backends"][0]
    assert gemini["available"] is True
    assert gemini["breaker"] == {
        "state": "open",
        "failures": 2,
        "until": calendar.timestamp() + 30,
        "retry_in_s": 30.0,
        "last_failure": "server_error: HTTP 500 INTERNAL: boom",
        "opened": 1,
    }


@pytest.mark.realtime
def test_after_the_breaker_opens_the_fallback_comes_in_well_under_a_second_and_a_half(
    start_server, token, fake, phrasebook
):
    """Measured: without the breaker every turn would wait the whole first-text timeout."""
    fake.push(Reply.hang(10.0), Reply.hang(10.0))
    timeout_s = 1.0
    server = start_server(
        gemini_backend(fake.base_url, first_token_timeout_s=timeout_s), PhrasebookBackend(phrasebook)
    )
    slow = []
    for _ in range(2):
        started = time.monotonic()
        assert [f.reason for f in chat_final(server, token, "배고파").fallbacks] == ["timeout"]
        slow.append(time.monotonic() - started)
    fast = []
    for _ in range(5):
        started = time.monotonic()
        final = chat_final(server, token, "배고파")
        fast.append(time.monotonic() - started)
        assert final.backend == "phrasebook" and final.fallbacks[0].reason == "circuit_open"
    assert len(fake.requests) == 2
    assert min(slow) >= timeout_s
    # Each skipped turn takes a few milliseconds here; 1.5 s holds at 4x slowdown with room to spare.
    assert max(fast) < 1.5, fast
