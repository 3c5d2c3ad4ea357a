"""She stops his reply (a barge-in): POST /v1/conversations/{c}/turns/{reply_id}/heard keeps only
the sentences she heard of it, so the history is what she really heard; over real HTTP."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from conftest import gemini_backend

from device.bench.fake_gemini import FakeGemini, Reply
from inference_server.api import InferenceClient, TurnRejected
from inference_server.store import ConversationStore

pytestmark = pytest.mark.timeout(60)


def _events(server, token: str, text: str) -> list[dict]:
    response = httpx.post(
        f"{server.url}/v1/chat",
        json={"conversation": "jinju", "text": text},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines()]


@pytest.fixture
def fake():
    with FakeGemini() as fake:
        yield fake


def test_after_a_barge_in_the_history_keeps_only_what_she_heard(start_server, token, fake):
    fake.push(Reply.stream(["오늘 날씨 좋다. 산책 갈래? 공원에 꽃이 폈어."]))
    server = start_server(gemini_backend(fake.base_url))
    *sentences, final = _events(server, token, "뭐 해?")
    assert len(sentences) == 3
    reply_id = sentences[0]["reply_id"]
    assert isinstance(reply_id, int) and {s["reply_id"] for s in sentences} == {reply_id}
    assert final["reply_id"] == reply_id

    client = InferenceClient(server.url, token, timeout_s=10)
    turn = asyncio.run(client.interrupted("jinju", reply_id, [sentences[0]["text"]]))
    assert (turn.id, turn.role, turn.source) == (reply_id, "model", "interrupted")
    assert turn.text == "오늘 날씨 좋다."

    his = server.chat.store.recent("jinju", 10)[-1]
    assert his.text == "오늘 날씨 좋다." and his.for_model == "오늘 날씨 좋다. …"


def test_a_reply_still_being_written_when_she_stops_it_stays_cut(tmp_path):
    store = ConversationStore(tmp_path / "c.sqlite3")
    reply_id = store.add("jinju", "model", "하나.", channel="doll", backend="gemini", source="cut")
    store.extend_reply(reply_id, "하나. 둘.")
    store.interrupt_reply(reply_id, "jinju", ["하나."])
    store.extend_reply(reply_id, "하나. 둘. 셋.")  # the server had not noticed the hang-up yet
    store.finish_reply(reply_id, "하나. 둘. 셋.", backend="gemini")
    his = store.recent("jinju", 10)[-1]
    assert (his.text, his.source) == ("하나.", "interrupted")
    store.interrupt_reply(reply_id, "jinju", [])  # she heard nothing of it after all
    assert store.recent("jinju", 10)[-1].for_model == "…"
    store.close()


def test_an_interruption_that_does_not_fit_the_reply_is_refused(start_server, token, fake):
    fake.push(Reply.stream(["오늘 날씨 좋다. 산책 갈래?"]))
    server = start_server(gemini_backend(fake.base_url))
    *sentences, final = _events(server, token, "뭐 해?")
    client = InferenceClient(server.url, token, timeout_s=10)
    with pytest.raises(TurnRejected, match="does not begin with") as wrong:
        asyncio.run(client.interrupted("jinju", final["reply_id"], ["전혀 다른 말."]))
    assert wrong.value.status_code == 409
    with pytest.raises(TurnRejected, match="is hers") as hers:
        asyncio.run(client.interrupted("jinju", final["turn_id"], []))
    assert hers.value.status_code == 409
    with pytest.raises(TurnRejected, match="has no turn") as unknown:
        asyncio.run(client.interrupted("someone-else", final["reply_id"], []))
    assert unknown.value.status_code == 404
    his = server.chat.store.recent("jinju", 10)[-1]
    assert (his.text, his.source) == ("오늘 날씨 좋다. 산책 갈래?", "text")
