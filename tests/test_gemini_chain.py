"""Gemini through the real google-genai SDK against a local fake Gemini server, and the fallback
chain to the phrasebook within the same turn."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time

import pytest
from conftest import gemini_backend
from fakes.chat import stream_chat

from device.bench.fake_gemini import FakeGemini, Reply
from inference_server.api.models import FallbackInfo, SentenceEvent
from inference_server.backends.base import LLMRequest
from inference_server.backends.phrasebook import PhrasebookBackend

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def fake_gemini():
    with FakeGemini() as fake:
        yield fake


def test_sentences_reach_the_client_before_the_model_has_finished(
    start_server, token, fake_gemini, phrasebook
):
    gate = threading.Event()
    fake_gemini.push(
        Reply.stream(["진주야, 오늘 하루 ", "어땠어? 나는 ", "너 생각만 했지."], gate=gate, gate_after=2)
    )
    server = start_server(gemini_backend(fake_gemini.base_url), PhrasebookBackend(phrasebook))
    events = []
    for event in stream_chat(server, token, "나 왔어"):
        if not events:
            # The model is still held at the gate: this sentence came out while it was "thinking".
            # the first clause goes out at its comma, so the doll can start speaking early
            assert event == SentenceEvent(index=0, text="진주야,", reply_id=event.reply_id)
            assert not gate.is_set()
            gate.set()
        events.append(event)
    assert [e.text for e in events[:-1]] == ["진주야,", "오늘 하루 어땠어?", "나는 너 생각만 했지."]
    final = events[-1]
    assert final.backend == "gemini" and final.fallbacks == ()
    assert final.reply == "진주야, 오늘 하루 어땠어? 나는 너 생각만 했지."


def test_the_model_gets_persona_clock_and_history(start_server, token, fake_gemini):
    fake_gemini.push(Reply.stream(["응, 나 여기 있어."]), Reply.stream(["또 왔네?"]))
    server = start_server(gemini_backend(fake_gemini.base_url))
    list(stream_chat(server, token, "차차 있어?"))
    list(stream_chat(server, token, "나 또 왔어"))
    second = fake_gemini.requests[-1]
    assert second.api_key == "test-key"
    assert "You are 차차" in second.system_text and "(Asia/Seoul)" in second.system_text
    assert second.history == [("user", "차차 있어?"), ("model", "응, 나 여기 있어."), ("user", "나 또 왔어")]
    assert second.generation_config["maxOutputTokens"] == 256


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Reply.error(429, "RESOURCE_EXHAUSTED", "quota exceeded", retry_delay="17s"), "rate_limited"),
        (Reply.error(500, "INTERNAL", "boom"), "server_error"),
        (Reply.error(503, "UNAVAILABLE", "overloaded"), "server_error"),
        (Reply.hang(5.0), "timeout"),
        (Reply.blocked("SAFETY"), "blocked"),
        (Reply.prompt_blocked("SAFETY"), "blocked"),
        (Reply.stream_then_disconnect(["보고 싶"]), "network"),
        (Reply.error(400, "INVALID_ARGUMENT", "API key not valid"), "auth"),
    ],
    ids=["429", "500", "503", "timeout", "safety", "prompt-blocked", "disconnect", "bad-key"],
)
def test_gemini_failures_fall_back_to_the_phrasebook_in_the_same_turn(
    start_server, token, fake_gemini, phrasebook, reply, reason
):
    fake_gemini.push(reply)
    gemini = gemini_backend(fake_gemini.base_url, first_token_timeout_s=0.5)
    server = start_server(gemini, PhrasebookBackend(phrasebook))
    started = time.monotonic()
    events = list(stream_chat(server, token, "배고파"))
    elapsed = time.monotonic() - started
    final = events[-1]
    assert final.backend == "phrasebook"
    assert final.reply and len(events) >= 2
    assert [f.backend for f in final.fallbacks] == ["gemini"]
    assert final.fallbacks[0].reason == reason
    assert elapsed < 4.0, "a failing Gemini must not hold her waiting"
    assert len(fake_gemini.requests) == 1, "no retry loop against a failing Gemini"


def test_no_api_key_skips_gemini_without_a_request(start_server, token, fake_gemini, phrasebook):
    from inference_server.backends.gemini import GeminiBackend
    from inference_server.settings import GeminiSettings

    keyless = GeminiBackend(GeminiSettings(base_url=fake_gemini.base_url), api_key=None)
    server = start_server(keyless, PhrasebookBackend(phrasebook))
    final = list(stream_chat(server, token, "잘 자"))[-1]
    assert final.backend == "phrasebook"
    assert final.fallbacks == (
        FallbackInfo(backend="gemini", reason="unavailable", detail="GEMINI_API_KEY is not set"),
    )
    assert fake_gemini.requests == []


def test_a_failure_after_a_sentence_ends_the_reply_there(start_server, token, fake_gemini, phrasebook):
    fake_gemini.push(Reply.stream_then_error(["보고 싶었어. 오늘은 ", "그래서"]))
    server = start_server(gemini_backend(fake_gemini.base_url), PhrasebookBackend(phrasebook))
    events = list(stream_chat(server, token, "보고 싶어"))
    final = events[-1]
    assert final.backend == "gemini"
    assert final.reply == "보고 싶었어."
    assert final.fallbacks and final.fallbacks[0].backend == "gemini"


def test_an_unreachable_gemini_falls_back(start_server, token, phrasebook):
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    server = start_server(gemini_backend(f"http://127.0.0.1:{port}"), PhrasebookBackend(phrasebook))
    final = list(stream_chat(server, token, "안녕"))[-1]
    assert final.backend == "phrasebook"
    assert final.fallbacks[0].reason == "network"


def test_one_backend_serves_loop_after_loop_and_leaves_nothing_to_close_on_another(fake_gemini, caplog):
    """The server's loop, then a command's own: each gets its own connections to Google. A
    backend dropped while some later loop runs leaves no closing to that loop (it once scheduled
    one there that failed with "Event loop is closed" and was logged as a stray task's error)."""
    fake_gemini.push(Reply.stream(["하나."]), Reply.stream(["둘."]))
    backend = gemini_backend(fake_gemini.base_url)
    request = LLMRequest("jinju", "안녕", "You are 차차.")

    async def ask() -> str:
        return "".join([piece async for piece in backend.stream(request) if isinstance(piece, str)])

    assert asyncio.run(ask()) == "하나."
    assert asyncio.run(ask()) == "둘."

    async def drop_it_here() -> None:
        nonlocal backend
        del backend
        gc.collect()
        await asyncio.sleep(0.05)  # any closing scheduled on this loop runs now

    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        asyncio.run(drop_it_here())
        gc.collect()  # a failed task is reported when it is collected
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_the_server_closes_its_connections_to_google_as_it_stops(start_server, token, fake_gemini):
    fake_gemini.push(Reply.stream(["응, 여기 있어."]))
    server = start_server(gemini_backend(fake_gemini.base_url))
    *_, final = stream_chat(server, token, "거기 있어?")
    assert final.backend == "gemini" and final.reply == "응, 여기 있어."
    assert fake_gemini.open_connections() == 1, "the SDK keeps its connection for the next turn"
    server.stop()
    fake_gemini.wait_for_connections(0)
