"""차차's brain under real failures: every one ends in an in-persona reply and a log line;
audio mode, persona management and a history that stays bounded."""

from __future__ import annotations

import base64
import logging
import socket

import httpx
import pytest
from conftest import gemini_backend
from fakes.chat import chat, chat_final, send_chat

from device.bench.fake_gemini import FakeGemini, Reply
from inference_server.backends.phrasebook import PhrasebookBackend

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def fake():
    with FakeGemini() as fake:
        yield fake


FAILURES = [
    (Reply.error(400, "INVALID_ARGUMENT", "Request contains an invalid argument."), "bad_request"),
    (Reply.error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."), "auth"),
    (Reply.error(403, "PERMISSION_DENIED", "The caller does not have permission"), "auth"),
    (Reply.error(500, "INTERNAL", "An internal error has occurred."), "server_error"),
    (Reply.error(503, "UNAVAILABLE", "The model is overloaded."), "server_error"),
    (Reply.stream([]), "empty"),
    (Reply.blocked("SAFETY"), "blocked"),
    (Reply.blocked("RECITATION"), "blocked"),
    (Reply.blocked("OTHER"), "blocked"),
    (Reply.stream_then_disconnect(["진주"]), "network"),
]


@pytest.mark.parametrize(
    ("reply", "reason"),
    FAILURES,
    ids=["400", "401", "403", "500", "503", "empty", "safety", "recitation", "other", "network"],
)
def test_every_failure_gives_an_in_persona_reply_and_a_log_line(
    start_server, token, fake, phrasebook, caplog, reply, reason
):
    caplog.set_level(logging.INFO)
    fake.push(reply)
    server = start_server(gemini_backend(fake.base_url), PhrasebookBackend(phrasebook))
    final = chat_final(server, token, "오늘 너무 피곤해")
    assert final.backend == "phrasebook"
    assert final.reply in {he for _, he in phrasebook.pairs} | set(phrasebook.not_understood)
    assert final.fallbacks[0].reason == reason
    assert any(f"gemini could not answer ({reason}" in r.getMessage() for r in caplog.records)


def test_an_unreachable_gemini_is_logged_too(start_server, token, phrasebook, caplog):
    caplog.set_level(logging.INFO)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    server = start_server(gemini_backend(f"http://127.0.0.1:{port}"), PhrasebookBackend(phrasebook))
    assert chat_final(server, token, "안녕").backend == "phrasebook"
    assert any("gemini could not answer (network" in r.getMessage() for r in caplog.records)


def test_a_rejected_key_turns_gemini_off_with_one_error_and_no_retries(
    start_server, token, fake, phrasebook, caplog
):
    fake.push(Reply.error(403, "PERMISSION_DENIED", "API key not valid"))
    server = start_server(gemini_backend(fake.base_url), PhrasebookBackend(phrasebook))
    for _ in range(3):
        assert chat_final(server, token, "안녕").backend == "phrasebook"
    assert len(fake.requests) == 1
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and "GEMINI_API_KEY" in r.getMessage()]
    assert len(errors) == 1
    health = httpx.get(f"{server.url}/v1/health", headers={"Authorization": f"Bearer {token}"}).json()
    assert "rejected GEMINI_API_KEY" in health["backends"][0]["reason"]


def test_a_reply_cut_at_max_tokens_ends_at_the_last_whole_sentence(start_server, token, fake, caplog):
    caplog.set_level(logging.INFO)
    fake.push(Reply.stream(["진주야 오늘 고생했어. 저녁은 ", "뭐 먹"], finish_reason="MAX_TOKENS"))
    server = start_server(gemini_backend(fake.base_url))
    events = chat(server, token, "배고파")
    assert [e.text for e in events[:-1]] == ["진주야 오늘 고생했어."]
    assert events[-1].reply == "진주야 오늘 고생했어." and events[-1].backend == "gemini"
    assert any("token limit" in r.getMessage() for r in caplog.records)


def test_unspeakable_text_is_removed_and_long_replies_are_cut(start_server, token, fake):
    fake.push(
        Reply.stream(
            [
                "**진주야** 😊 보고 싶어! ",
                "- 밥 먹기\n- 잠 자기\n",
                "자세한 건 https://x.io 봐. ",
                "사랑해. 또 사랑해. 계속 사랑해.",
            ]
        )
    )
    server = start_server(gemini_backend(fake.base_url), max_sentences=3)
    final = chat_final(server, token, "뭐 해")
    assert final.reply == "진주야 보고 싶어! 밥 먹기 잠 자기"
    assert "*" not in final.reply and "😊" not in final.reply and "http" not in final.reply


# --- audio mode -----------------------------------------------------------------------------


def test_audio_mode_sends_the_recording_with_persona_and_history(start_server, token, fake, phrasebook):
    from inference_server.backends.gemini import GeminiBackend
    from inference_server.settings import GeminiSettings

    fake.push(Reply.stream(["응, 나 여기 있어."]), Reply.stream(["⟦배고파 죽겠어⟧ 얼른 ", "밥 먹으러 가자."]))
    gemini = GeminiBackend(GeminiSettings(base_url=fake.base_url, send_audio=True), "test-key")
    server = start_server(gemini, PhrasebookBackend(phrasebook))
    chat(server, token, "차차 있어?")
    recording = b"OggS" + bytes(range(200))
    final = chat_final(
        server,
        token,
        "배 고파 죽 겠 어",
        audio={"mime_type": "audio/ogg", "data": base64.b64encode(recording).decode()},
    )

    sent = fake.requests[-1].body
    user = sent["contents"][-1]
    inline = [
        p.get("inlineData") or p.get("inline_data")
        for p in user["parts"]
        if "inlineData" in p or "inline_data" in p
    ]
    assert len(inline) == 1
    assert (inline[0].get("mimeType") or inline[0].get("mime_type")) == "audio/ogg"
    assert base64.urlsafe_b64decode(inline[0]["data"]) == recording
    assert any("배 고파 죽 겠 어" in p.get("text", "") for p in user["parts"])
    assert [c["role"] for c in sent["contents"]] == ["user", "model", "user"]
    assert "You are 차차" in fake.requests[-1].system_text
    assert "⟦" in fake.requests[-1].system_text
    assert final.reply == "얼른 밥 먹으러 가자." and final.heard == "배고파 죽겠어"
    turns = server.chat.store.recent("jinju", 10)
    assert (turns[-2].text, turns[-2].source, turns[-2].heard) == ("배 고파 죽 겠 어", "stt", "배고파 죽겠어")


def test_audio_that_is_too_large_or_not_base64_is_422(start_server, token):
    server = start_server()
    bad = send_chat(server, token, {"text": "안녕", "audio": {"mime_type": "audio/ogg", "data": "%%%"}})
    assert bad.status_code == 422
    # over MAX_AUDIO_BYTES (1.5 MB), under the body limit (2 MiB); a body over that is 413 (test_limits)
    huge = base64.b64encode(b"x" * 1_520_000).decode()
    too_big = send_chat(server, token, {"text": "안녕", "audio": {"mime_type": "audio/ogg", "data": huge}})
    assert too_big.status_code == 422


# --- persona management ------------------------------------------------------------------------


def test_persona_is_replaced_and_reloaded_without_a_restart(start_server, token, fake, tmp_path):
    server = start_server(gemini_backend(fake.base_url), data_dir=tmp_path / "d")
    headers = {"Authorization": f"Bearer {token}"}
    current = httpx.get(f"{server.url}/v1/admin/persona", headers=headers).json()
    assert current["name"] == "차차" and "speaking_style" in current["text"]

    broken = httpx.put(f"{server.url}/v1/admin/persona", headers=headers, json={"text": "name: [\n"})
    assert broken.status_code == 422 and "not valid YAML" in broken.json()["detail"]
    changed = current["text"].replace("name: 차차", "name: 차돌이")
    saved = httpx.put(f"{server.url}/v1/admin/persona", headers=headers, json={"text": changed})
    assert saved.status_code == 200 and saved.json()["path"] == str(tmp_path / "d" / "persona.yaml")
    chat(server, token, "안녕")
    assert "You are 차돌이" in fake.requests[-1].system_text

    (tmp_path / "d" / "persona.yaml").write_text(
        current["text"].replace("name: 차차", "name: 차순이"), encoding="utf-8"
    )
    assert httpx.post(f"{server.url}/v1/admin/persona/reload", headers=headers).json()["name"] == "차순이"
    chat(server, token, "안녕")
    assert "You are 차순이" in fake.requests[-1].system_text
    assert httpx.get(f"{server.url}/v1/admin/persona").status_code == 401


# --- a history that stays bounded ----------------------------------------------------------------


def test_history_stays_within_its_token_budget_and_old_turns_are_summarised(start_server, token, fake):
    fake.default = Reply.stream(["응, 그랬구나. 더 얘기해 줘."])
    server = start_server(gemini_backend(fake.base_url), history_turns=40, history_tokens=120)
    for i in range(12):
        chat(server, token, f"오늘 있었던 일 {i}번째 이야기를 들려줄게 정말 길게 말하는 중이야")
    chats = [r for r in fake.requests if r.action == "streamGenerateContent"]
    sizes = [sum(len(t) for _, t in r.history) for r in chats]
    assert max(sizes) < 400, "the prompt must not grow with the day"
    summaries = [r for r in fake.requests if r.action == "generateContent"]
    assert summaries, "old turns should have been summarised"
    assert "summary" in summaries[0].system_text.lower()
    assert "## Earlier today (summary)" in chats[-1].system_text


def test_without_a_summariser_old_turns_are_dropped_oldest_first(start_server, token, phrasebook):
    server = start_server(PhrasebookBackend(phrasebook), history_turns=40, history_tokens=60)
    for i in range(8):
        chat(server, token, f"이야기 {i}")
    window = server.chat.window.build("jinju", 10**9)
    assert window.turns and window.turns[-1].text
    assert sum(len(t.text) / 1.5 + 4 for t in window.turns) <= 60
    assert window.turns[0].id > 1 and window.summary is None


@pytest.mark.parametrize(
    ("deltas", "expected"),
    [
        (["진주야, 오늘 ", "뭐 했어?"], ["진주야,", "오늘 뭐 했어?"]),
        (["응. 그래, 알겠어."], ["응. 그래, 알겠어."]),  # a sentence ended first: no early clause
        (["3,000원이야."], ["3,000원이야."]),  # a comma inside a number is no clause
        (["아, 진짜? ", "좋다, 좋아."], ["아, 진짜?", "좋다, 좋아."]),  # too short a clause waits
    ],
)
def test_only_the_first_clause_is_let_out_early(deltas, expected):
    from inference_server.reply import FirstClause
    from tts.sentences import SentenceSplitter

    first, splitter, out = FirstClause(), SentenceSplitter(), []
    for delta in deltas:
        clause, passed = first.feed(delta)
        out += ([clause] if clause else []) + splitter.feed(passed)
    out += splitter.feed(first.flush()) + splitter.flush()
    assert out == expected
