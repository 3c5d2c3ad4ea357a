"""Tentative replies over real HTTP on loopback, with the real SDK against a fake Gemini: nothing
is stored until the doll keeps one; a dropped one leaves no trace; one spends only what is not
kept in reserve for her confirmed turns."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import pytest
from conftest import gemini_backend

from device.bench.fake_gemini import FakeGemini, Reply
from inference_server.api import InferenceClient, ReplyFinal, ReplySentence, TentativeRefused
from inference_server.backends.gemini import GeminiBackend
from inference_server.backends.phrasebook import PhrasebookBackend
from inference_server.quota import QuotaLedger
from inference_server.settings import GeminiSettings, QuotaSettings

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def fake():
    with FakeGemini() as fake:
        yield fake


def _stored(server) -> list[tuple[str, str]]:
    return [(t.role, t.text) for t in server.chat.store.recent("jinju", 20)]


async def _first_then(client: InferenceClient, tentative: str, then) -> list:
    """Open a tentative reply, read its first sentence, run ``then()``, read the rest."""
    events = []
    chat = client.chat("오늘 뭐 했어", conversation="jinju", tentative=tentative)
    async with contextlib.aclosing(chat) as stream:
        async for event in stream:
            events.append(event)
            if len(events) == 1 and await then() is False:
                break
    return events


def test_a_kept_tentative_reply_is_stored_whole(start_server, token, fake, phrasebook):
    gate = threading.Event()
    fake.push(Reply.stream(["응, 나는 책 읽었어.", " 너는 뭐 했어?"], gate=gate))
    server = start_server(gemini_backend(fake.base_url), PhrasebookBackend(phrasebook))
    client = InferenceClient(server.url, token)

    async def keep() -> None:
        assert _stored(server) == [], "nothing is stored before she hears it"
        assert await client.keep("turn-0001-a")
        gate.set()

    events = asyncio.run(_first_then(client, "turn-0001-a", keep))
    final = events[-1]
    assert isinstance(final, ReplyFinal) and isinstance(final.turn_id, int)
    assert [e.text for e in events if isinstance(e, ReplySentence)] == [
        "응, 나는 책 읽었어.",
        "너는 뭐 했어?",
    ]
    assert _stored(server) == [("user", "오늘 뭐 했어"), ("model", "응, 나는 책 읽었어. 너는 뭐 했어?")]
    hers = server.chat.store.recent("jinju", 20)[0]
    assert hers.id == final.turn_id
    assert not asyncio.run(client.keep("turn-0001-a")), "once answered, it is no longer held"


def test_a_reply_that_arrives_whole_before_it_is_kept_waits_for_the_doll(
    start_server, token, fake, phrasebook
):
    fake.push(Reply.stream(["응, 나는 책 읽었어."]))
    server = start_server(gemini_backend(fake.base_url), PhrasebookBackend(phrasebook))
    client = InferenceClient(server.url, token)

    async def late_keep() -> None:
        await asyncio.sleep(0.3)  # the whole reply has arrived at the server by now
        assert _stored(server) == []
        assert await client.keep("turn-0002-b")

    events = asyncio.run(_first_then(client, "turn-0002-b", late_keep))
    assert isinstance(events[-1], ReplyFinal)
    assert _stored(server) == [("user", "오늘 뭐 했어"), ("model", "응, 나는 책 읽었어.")]


def test_a_dropped_tentative_reply_leaves_no_trace(start_server, token, fake, phrasebook):
    gate = threading.Event()
    fake.push(Reply.stream(["응, 나는 책 읽었어.", " 너는?"], gate=gate), Reply.stream(["그랬구나."]))
    server = start_server(gemini_backend(fake.base_url), PhrasebookBackend(phrasebook))
    client = InferenceClient(server.url, token)

    async def drop() -> bool:
        return False  # she went on talking: the doll closes the stream

    events = asyncio.run(_first_then(client, "turn-0003-c", drop))
    gate.set()
    assert len(events) == 1 and isinstance(events[0], ReplySentence) and events[0].reply_id is None
    asyncio.run(server.chat.settle())
    assert _stored(server) == []
    assert not asyncio.run(client.keep("turn-0003-c"))
    # her whole turn, asked again, is stored as usual; the dropped reply is not in its history
    final = asyncio.run(_collect(client.chat("오늘 뭐 했어 친구랑 놀았어", conversation="jinju")))[-1]
    assert final.reply == "그랬구나."
    assert _stored(server) == [("user", "오늘 뭐 했어 친구랑 놀았어"), ("model", "그랬구나.")]
    assert "응, 나는 책 읽었어." not in str(fake.requests[-1])


async def _collect(stream) -> list:
    return [event async for event in stream]


def test_an_unknown_or_malformed_id_is_refused(start_server, token, fake, phrasebook):
    server = start_server(gemini_backend(fake.base_url), PhrasebookBackend(phrasebook))
    client = InferenceClient(server.url, token)
    assert not asyncio.run(client.keep("never-asked-0"))
    with pytest.raises(Exception, match="tentative"):
        asyncio.run(_collect(client.chat("안녕", conversation="jinju", tentative="bad id!")))


def test_a_tentative_request_never_spends_the_dolls_reserve(start_server, token, phrasebook, tmp_path):
    # 10 a day, 30 % kept for the doll: 7 may be spent on tentative replies, never the last 3
    with FakeGemini(default=Reply.stream(["응."])) as fake:
        settings = GeminiSettings(
            base_url=fake.base_url,
            model="gemini-test-flash",
            quota=QuotaSettings(requests_per_day=10, requests_per_minute=100, doll_reserve=0.3),
        )
        ledger = QuotaLedger(tmp_path / "data" / "quota.sqlite3")
        server = start_server(
            GeminiBackend(settings, "test-key", ledger),
            PhrasebookBackend(phrasebook),
            data_dir=tmp_path / "data",
        )
        client = InferenceClient(server.url, token)

        async def keep_it(n: int):
            async def keep() -> None:
                assert await client.keep(f"turn-{n:04d}-x")

            return await _first_then(client, f"turn-{n:04d}-x", keep)

        for n in range(7):
            assert asyncio.run(keep_it(n))[-1].backend == "gemini"
        with pytest.raises(TentativeRefused, match="kept for her confirmed turns"):
            asyncio.run(keep_it(7))
        finals = [asyncio.run(_collect(client.chat(f"안녕 {n}", conversation="jinju")))[-1] for n in range(3)]
        assert [f.backend for f in finals] == ["gemini"] * 3, "the reserve is still there for her turns"
        assert ledger.requests_today("gemini-test-flash") == 10
