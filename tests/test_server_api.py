"""The HTTP contract of the inference server, over real HTTP on loopback."""

from __future__ import annotations

import httpx
import pytest
from fakes.chat import read_events, send_chat

from inference_server.api.models import FinalEvent, SentenceEvent
from inference_server.backends.phrasebook import PhrasebookBackend


def test_chat_streams_sentences_then_a_final_event(start_server, token):
    server = start_server()
    response = send_chat(server, token, {"conversation": "jinju", "text": "오늘 너무 피곤해"})
    assert response.status_code == 200
    events = read_events(response)
    *sentences, final = events
    assert sentences and all(isinstance(e, SentenceEvent) for e in sentences)
    assert [e.index for e in sentences] == list(range(len(sentences)))
    assert isinstance(final, FinalEvent)
    assert final.backend == "phrasebook"
    assert final.reply == " ".join(e.text for e in sentences)
    assert final.timings_ms.total >= final.timings_ms.first_sentence >= 0
    hers, his = server.chat.store.recent("jinju", 2)
    assert final.turn_id == hers.id and (hers.role, hers.text) == ("user", "오늘 너무 피곤해")
    assert his.role == "model" and his.id > hers.id


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}])
def test_missing_or_wrong_token_is_401_everywhere(start_server, headers):
    server = start_server()
    chat = httpx.post(f"{server.url}/v1/chat", json={"text": "안녕"}, headers=headers)
    health = httpx.get(f"{server.url}/v1/health", headers=headers)
    assert chat.status_code == health.status_code == 401
    assert chat.headers["www-authenticate"] == "Bearer"


def test_401_comes_before_validation(start_server):
    server = start_server()
    assert send_chat(server, None, None, raw=b"{not json").status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"text": ""},
        {"text": "   \n "},
        {"text": "가" * 2001},
        {},
        {"text": "안녕", "conversation": "../etc/passwd"},
        {"text": "안녕", "channel": "fax"},
        {"text": "안녕", "unexpected": 1},
    ],
    ids=["empty", "blank", "too-long", "no-text", "bad-conversation", "bad-channel", "extra-key"],
)
def test_bad_requests_are_422(start_server, token, body):
    server = start_server()
    response = send_chat(server, token, body)
    assert response.status_code == 422, response.text


def test_malformed_json_is_422(start_server, token):
    server = start_server()
    assert send_chat(server, token, None, raw='{"text": "안녕"'.encode()).status_code == 422


def test_text_of_exactly_2000_characters_is_accepted(start_server, token):
    server = start_server()
    response = send_chat(server, token, {"text": "배고파" + "아" * 1997})
    assert response.status_code == 200
    assert read_events(response)[-1].reply


def test_health_reports_the_chain(start_server, token, phrasebook):
    from conftest import gemini_backend

    server = start_server(gemini_backend("http://127.0.0.1:9"), PhrasebookBackend(phrasebook))
    response = httpx.get(f"{server.url}/v1/health", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    health = response.json()
    assert health["status"] == "ok"
    assert health["backend"] == "gemini"
    assert [b["name"] for b in health["backends"]] == ["gemini", "phrasebook"]
    assert [b["hears_audio"] for b in health["backends"]] == [True, False]
    assert health["hears_audio"] is True


@pytest.mark.parametrize(
    ("key", "overrides", "answers"),
    [(None, {}, "phrasebook"), ("test-key", {"send_audio": False}, "gemini")],
    ids=["gemini-without-a-key", "gemini-without-send-audio"],
)
def test_health_says_no_audio_is_heard_when_the_answering_backend_reads_text_only(
    start_server, token, phrasebook, key, overrides, answers
):
    from inference_server.backends.gemini import GeminiBackend
    from inference_server.settings import GeminiSettings

    settings = GeminiSettings(base_url="http://127.0.0.1:9", model="gemini-test-flash", **overrides)
    server = start_server(GeminiBackend(settings, api_key=key), PhrasebookBackend(phrasebook))
    health = httpx.get(f"{server.url}/v1/health", headers={"Authorization": f"Bearer {token}"}).json()
    assert health["backend"] == answers
    assert health["hears_audio"] is False
    # Gemini would hear it, were it the one to answer, only with send_audio on
    assert health["backends"][0]["hears_audio"] is (overrides.get("send_audio", True))


def test_health_of_the_phrasebook_alone_hears_no_audio(start_server, token):
    server = start_server()
    health = httpx.get(f"{server.url}/v1/health", headers={"Authorization": f"Bearer {token}"}).json()
    assert (health["backend"], health["hears_audio"]) == ("phrasebook", False)
    assert [b["hears_audio"] for b in health["backends"]] == [False]


def test_history_survives_a_server_restart(start_server, token, tmp_path):
    data = tmp_path / "persisted"
    first = start_server(data_dir=data)
    assert send_chat(first, token, {"conversation": "c1", "text": "보고 싶어"}).status_code == 200
    reply = read_events(send_chat(first, token, {"conversation": "c1", "text": "잘 자"}))[-1].reply
    first.stop()

    second = start_server(data_dir=data)
    turns = second.chat.store.recent("c1", 10)
    assert [(t.role, t.text) for t in turns][:2] == [("user", "보고 싶어"), ("model", turns[1].text)]
    assert (turns[-1].role, turns[-1].text) == ("model", reply)
    assert turns[-1].backend == "phrasebook"
    assert second.chat.store.recent("other", 10) == []
