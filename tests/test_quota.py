"""The quota ledger: limits enforced before each call, kept across restarts, and a real SDK
against a fake Gemini that enforces Google's limits itself."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest
from fakes.chat import chat_final

from device.bench.fake_gemini import FakeGemini, Reply
from inference_server.backends.phrasebook import PhrasebookBackend
from inference_server.quota import PACIFIC, QuotaLedger, next_reset, pacific_day
from inference_server.settings import QuotaSettings

pytestmark = pytest.mark.timeout(120)


class Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 22, 10, 0, tzinfo=PACIFIC).timestamp())


def admit(ledger, limits, channel="doll", tokens=100):
    return ledger.admit("m", limits, channel=channel, tokens=tokens)


def test_requests_per_minute_are_enforced_with_the_wait_until_a_slot_frees(tmp_path, clock):
    ledger = QuotaLedger(tmp_path / "q.sqlite3", clock=clock)
    limits = QuotaSettings(requests_per_minute=3, requests_per_day=100)
    for _ in range(3):
        assert admit(ledger, limits).admitted
        clock.now += 1
    refused = admit(ledger, limits)
    assert not refused.admitted and refused.wait_s == pytest.approx(57.0)
    clock.now += 57.01
    assert admit(ledger, limits).admitted


def test_requests_per_day_and_the_dolls_reserve(tmp_path, clock):
    ledger = QuotaLedger(tmp_path / "q.sqlite3", clock=clock)
    limits = QuotaSettings(requests_per_minute=100, requests_per_day=10, doll_reserve=0.3)
    for _ in range(7):
        assert admit(ledger, limits, channel="telegram").admitted
    refused = admit(ledger, limits, channel="telegram")
    assert not refused.admitted and "kept for the doll" in refused.reason
    for _ in range(3):
        assert admit(ledger, limits, channel="doll").admitted
    refused = admit(ledger, limits, channel="doll")
    assert not refused.admitted and refused.wait_s == 0 and "spent" in refused.reason


def test_the_day_resets_at_midnight_pacific(tmp_path, clock):
    ledger = QuotaLedger(tmp_path / "q.sqlite3", clock=clock)
    limits = QuotaSettings(requests_per_minute=100, requests_per_day=1)
    assert admit(ledger, limits).admitted
    assert not admit(ledger, limits).admitted
    clock.now = next_reset(clock.now) + 1
    assert pacific_day(clock.now) == "2026-11-23"
    assert admit(ledger, limits).admitted


def test_tokens_per_minute_use_what_the_model_reported(tmp_path, clock):
    ledger = QuotaLedger(tmp_path / "q.sqlite3", clock=clock)
    limits = QuotaSettings(requests_per_minute=100, tokens_per_minute=1000, requests_per_day=100)
    first = admit(ledger, limits, tokens=900)
    ledger.settle(first.request_id, 300)  # the model used fewer than estimated
    assert admit(ledger, limits, tokens=600).admitted
    refused = admit(ledger, limits, tokens=600)
    assert not refused.admitted and refused.wait_s > 0


def test_a_429_cools_the_model_down_for_its_retry_delay_or_a_growing_backoff(tmp_path, clock):
    ledger = QuotaLedger(tmp_path / "q.sqlite3", clock=clock)
    limits = QuotaSettings(backoff_s=10, backoff_max_s=35)
    assert ledger.cool_down("m", limits, retry_after_s=17, reason="rpm") == 17
    assert "cooling down" in admit(ledger, limits).reason
    clock.now += 17.5
    assert admit(ledger, limits).admitted
    assert [ledger.cool_down("m", limits, retry_after_s=None, reason="x") for _ in range(3)] == [20, 35, 35]
    ledger.succeeded("m")
    assert ledger.cool_down("m", limits, retry_after_s=None, reason="x") == 10
    until_midnight = ledger.cool_down("m", limits, retry_after_s=5, reason="quota per day exceeded")
    assert until_midnight == pytest.approx(next_reset(clock.now) - clock.now)


def test_counts_survive_a_restart(tmp_path, clock):
    limits = QuotaSettings(requests_per_day=5)
    first = QuotaLedger(tmp_path / "q.sqlite3", clock=clock)
    for _ in range(3):
        admit(first, limits)
    first.close()
    again = QuotaLedger(tmp_path / "q.sqlite3", clock=clock)
    assert again.status("m", limits).left_today == 2


# --- the whole server against a Gemini that enforces its own limits --------------------------


def _ledger_backend(fake, tmp_path, **quota):
    from inference_server.backends.gemini import GeminiBackend
    from inference_server.settings import GeminiSettings

    settings = GeminiSettings(base_url=fake.base_url, model="gemini-test-flash", quota=QuotaSettings(**quota))
    return GeminiBackend(settings, "test-key", QuotaLedger(tmp_path / "data" / "quota.sqlite3"))


def test_fifty_rapid_turns_never_provoke_a_429_and_every_turn_is_answered(
    start_server, token, phrasebook, tmp_path
):
    with FakeGemini(
        requests_per_minute=5, requests_per_day=100, default=Reply.stream(["응, 듣고 있어."])
    ) as fake:
        gemini = _ledger_backend(fake, tmp_path, requests_per_minute=5, requests_per_day=100)
        server = start_server(gemini, PhrasebookBackend(phrasebook), data_dir=tmp_path / "data")
        finals = [chat_final(server, token, f"배고파 {i}") for i in range(50)]
        assert fake.rate_limited == 0, "the ledger must stop us before Google has to"
        assert all(f.reply for f in finals)
        by = [f.backend for f in finals]
        assert by.count("gemini") == 5 and by.count("phrasebook") == 45
        assert all(f.fallbacks[0].reason == "quota" for f in finals if f.backend == "phrasebook")
        assert gemini.ledger.requests_today("gemini-test-flash") == len(fake.accepted_at) == 5
        health = httpx.get(f"{server.url}/v1/health", headers={"Authorization": f"Bearer {token}"}).json()
        quota = health["backends"][0]["quota"]
        assert quota["requests_today"] == 5 and quota["left_today"] == 95
        server.stop()

        restarted = _ledger_backend(fake, tmp_path, requests_per_minute=5, requests_per_day=100)
        assert restarted.ledger.requests_today("gemini-test-flash") == 5


def test_a_429_from_google_puts_gemini_in_cooldown_without_a_retry_loop(
    start_server, token, phrasebook, tmp_path
):
    with FakeGemini() as fake:
        fake.push(Reply.error(429, "RESOURCE_EXHAUSTED", "quota", retry_delay="37s"))
        gemini = _ledger_backend(fake, tmp_path)
        server = start_server(gemini, PhrasebookBackend(phrasebook), data_dir=tmp_path / "data")
        first = chat_final(server, token, "안녕")
        assert first.backend == "phrasebook" and first.fallbacks[0].reason == "rate_limited"
        second = chat_final(server, token, "안녕")
        assert second.backend == "phrasebook" and "cooling down" in second.fallbacks[0].detail
        assert len(fake.requests) == 1
        quota = gemini.quota_status()
        assert 30 < quota.cooldown_s <= 37


def test_telegram_cannot_spend_the_dolls_share(start_server, token, phrasebook, tmp_path):
    with FakeGemini(default=Reply.stream(["응."])) as fake:
        gemini = _ledger_backend(fake, tmp_path, requests_per_day=10, doll_reserve=0.5)
        server = start_server(gemini, PhrasebookBackend(phrasebook), data_dir=tmp_path / "data")
        telegram = [chat_final(server, token, "뭐 해", channel="telegram").backend for _ in range(7)]
        assert telegram == ["gemini"] * 5 + ["phrasebook"] * 2
        doll = [chat_final(server, token, "뭐 해").backend for _ in range(6)]
        assert doll == ["gemini"] * 5 + ["phrasebook"]
