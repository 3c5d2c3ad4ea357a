"""PATCH /v1/conversations/{conversation}/turns/{turn_id}: her turn, heard better after the reply
began, replaces the draft in the history; over real HTTP on loopback, and through the client."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx
import pytest
from conftest import gemini_backend
from fakes.chat import chat_final

from device.bench.fake_gemini import FakeGemini, Reply
from inference_server.api import InferenceClient, ServerUnavailable, StoredTurn, TurnRejected
from inference_server.backends.phrasebook import PhrasebookBackend

pytestmark = pytest.mark.timeout(60)


def _auth(token: str | None) -> dict:
    return {"Authorization": f"Bearer {token}"} if token is not None else {}


def _correct(server, token: str | None, conversation: str, turn_id, body) -> httpx.Response:
    return httpx.patch(
        f"{server.url}/v1/conversations/{conversation}/turns/{turn_id}",
        json=body,
        headers=_auth(token),
        timeout=10,
    )


@pytest.fixture
def fake():
    with FakeGemini() as fake:
        yield fake


def test_her_corrected_turn_is_what_the_next_request_shows_the_model(start_server, token, fake, phrasebook):
    fake.push(Reply.stream(["응? 배가 고프다고?"]), Reply.stream(["얼른 밥 먹자."]))
    server = start_server(gemini_backend(fake.base_url), PhrasebookBackend(phrasebook))
    final = chat_final(server, token, "배 고 파 주 겠 어")
    assert isinstance(final.turn_id, int)

    response = _correct(server, token, "jinju", final.turn_id, {"text": "  배고파 죽겠어 \n"})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "id": final.turn_id,
        "conversation": "jinju",
        "role": "user",
        "text": "배고파 죽겠어",
        "heard": None,
        "source": "text",
        "channel": "doll",
    }
    hers, his = server.chat.store.recent("jinju", 10)
    assert (hers.id, hers.text) == (final.turn_id, "배고파 죽겠어")
    assert his.text == final.reply, "his reply stays as it was"

    chat_final(server, token, "뭐 먹을까?")
    history = fake.requests[-1].body["contents"]
    assert [c["role"] for c in history] == ["user", "model", "user"]
    assert history[0]["parts"][0]["text"] == "배고파 죽겠어"


def test_in_audio_mode_the_draft_is_replaced_and_what_gemini_heard_stays_first(
    start_server, token, fake, phrasebook
):
    fake.push(Reply.stream(["⟦배고파 죽겠어⟧ 얼른 밥 먹자."]), Reply.stream(["응, 그러자."]))
    server = start_server(gemini_backend(fake.base_url), PhrasebookBackend(phrasebook))
    recording = {"mime_type": "audio/ogg", "data": base64.b64encode(b"OggS" + bytes(200)).decode()}
    final = chat_final(server, token, "배 고 파 주 겠 어", audio=recording)
    assert (final.backend, final.heard) == ("gemini", "배고파 죽겠어")

    corrected = _correct(server, token, "jinju", final.turn_id, {"text": "배고파 죽겠다"}).json()
    assert corrected["text"] == "배고파 죽겠다" and corrected["source"] == "stt"
    assert corrected["heard"] == "배고파 죽겠어", "what Gemini heard stays beside it"

    chat_final(server, token, "뭐 먹을까?")
    assert fake.requests[-1].body["contents"][0]["parts"][0]["text"] == "배고파 죽겠어"


def test_an_unknown_turn_or_one_of_another_conversation_is_404(start_server, token):
    server = start_server()
    theirs = chat_final(server, token, "안녕", conversation="someone-else").turn_id
    ours = chat_final(server, token, "보고 싶어").turn_id
    for conversation, turn_id in (("jinju", ours + 100), ("jinju", theirs), ("nobody", ours)):
        response = _correct(server, token, conversation, turn_id, {"text": "배고파"})
        assert response.status_code == 404, (conversation, turn_id)
        detail = response.json()["detail"]
        assert f"no turn {turn_id}" in detail and repr(conversation) in detail and "turn_id" in detail
    assert [t.text for t in server.chat.store.recent("someone-else", 10)][0] == "안녕"
    assert [t.text for t in server.chat.store.recent("jinju", 10)][0] == "보고 싶어"


def test_his_reply_cannot_be_corrected_409(start_server, token):
    server = start_server()
    final = chat_final(server, token, "보고 싶어")
    his = server.chat.store.recent("jinju", 10)[-1]
    assert his.role == "model" and his.id != final.turn_id
    response = _correct(server, token, "jinju", his.id, {"text": "나도"})
    assert response.status_code == 409
    assert "차차's reply, not hers" in response.json()["detail"]
    assert server.chat.store.recent("jinju", 10)[-1].text == final.reply


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
def test_without_the_token_it_is_401_and_nothing_changes(start_server, token, headers):
    server = start_server()
    final = chat_final(server, token, "보고 싶어")
    url = f"{server.url}/v1/conversations/jinju/turns/{final.turn_id}"
    response = httpx.patch(url, json={"text": "배고파"}, headers=headers)
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert httpx.patch(url, content=b"{not json", headers=headers).status_code == 401
    assert server.chat.store.recent("jinju", 10)[0].text == "보고 싶어"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("jinju/turns/{id}", {"text": ""}),
        ("jinju/turns/{id}", {"text": "  \n\t "}),
        ("jinju/turns/{id}", {"text": "가" * 4001}),
        ("jinju/turns/{id}", {}),
        ("jinju/turns/{id}", {"text": 12}),
        ("jinju/turns/{id}", {"text": "배고파", "heard": "x"}),
        ("jinju/turns/first", {"text": "배고파"}),
        ("jin%20ju/turns/{id}", {"text": "배고파"}),
    ],
    ids=["empty", "blank", "too-long", "no-text", "not-text", "extra-key", "bad-turn-id", "bad-conversation"],
)
def test_bad_corrections_are_422(start_server, token, path, body):
    server = start_server()
    turn_id = chat_final(server, token, "보고 싶어").turn_id
    response = httpx.patch(
        f"{server.url}/v1/conversations/{path.format(id=turn_id)}",
        json=body,
        headers=_auth(token),
    )
    assert response.status_code == 422, response.text
    assert server.chat.store.recent("jinju", 10)[0].text == "보고 싶어"


def test_blank_text_is_called_empty_and_4000_characters_fit_once_trimmed(start_server, token):
    server = start_server()
    turn_id = chat_final(server, token, "보고 싶어").turn_id
    blank = _correct(server, token, "jinju", turn_id, {"text": "   "})
    assert "text is empty" in json.dumps(blank.json()["detail"])
    longest = "가" * 4000
    assert _correct(server, token, "jinju", turn_id, {"text": f"  {longest}\n"}).json()["text"] == longest


def test_the_client_corrects_a_turn_and_says_why_it_could_not(start_server, token):
    server = start_server()
    final = chat_final(server, token, "보고 싶어")
    his = server.chat.store.recent("jinju", 10)[-1]
    client = InferenceClient(server.url, token, timeout_s=10)

    turn = asyncio.run(client.correct_turn("jinju", final.turn_id, "보고 싶다"))
    assert turn == StoredTurn(
        id=final.turn_id,
        conversation="jinju",
        role="user",
        text="보고 싶다",
        heard=None,
        source="text",
        channel="doll",
    )
    assert server.chat.store.recent("jinju", 10)[0].text == "보고 싶다"

    with pytest.raises(TurnRejected, match="has no turn") as unknown:
        asyncio.run(client.correct_turn("someone-else", final.turn_id, "보고 싶다"))
    assert unknown.value.status_code == 404
    with pytest.raises(TurnRejected, match="not hers") as not_hers:
        asyncio.run(client.correct_turn("jinju", his.id, "나도"))
    assert not_hers.value.status_code == 409
    with pytest.raises(ServerUnavailable, match="rejected the token"):
        asyncio.run(InferenceClient(server.url, "wrong", timeout_s=10).correct_turn("jinju", 1, "x"))
    with pytest.raises(ServerUnavailable, match="answered 422") as empty:
        asyncio.run(client.correct_turn("jinju", final.turn_id, " "))
    assert not isinstance(empty.value, TurnRejected)


def test_the_client_says_when_the_server_is_away_or_too_old(start_server, token):
    away = InferenceClient("http://127.0.0.1:9", token, timeout_s=5)
    with pytest.raises(ServerUnavailable, match="not reachable") as unreachable:
        asyncio.run(away.correct_turn("jinju", 1, "배고파"))
    assert not isinstance(unreachable.value, TurnRejected)

    server = start_server()
    # A server without the endpoint answers FastAPI's own 404 (here: a path it does not serve).
    older = InferenceClient(f"{server.url}/older", token, timeout_s=5)
    with pytest.raises(ServerUnavailable, match="does not know PATCH .*update it") as too_old:
        asyncio.run(older.correct_turn("jinju", 1, "배고파"))
    assert not isinstance(too_old.value, TurnRejected)
