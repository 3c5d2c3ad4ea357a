"""The server–client contract (inference_server/api): the real server's bytes, read by the client's parser."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from fakes.chat import chat_final, send_chat
from pydantic import ValidationError

from device.bench.fake_gemini import FakeGemini, Reply
from inference_server.api import (
    BackendStatus,
    BreakerStatus,
    FallbackInfo,
    FinalEvent,
    Health,
    InferenceClient,
    QuotaStatus,
    ReplyFinal,
    ReplySentence,
    SentenceEvent,
    ServerUnavailable,
    Timings,
    decode_event,
    encode_event,
)
from inference_server.backends.gemini import GeminiBackend
from inference_server.backends.phrasebook import PhrasebookBackend
from inference_server.quota import QuotaLedger
from inference_server.settings import GeminiSettings

QUOTA = QuotaStatus(
    model="gemini-test-flash",
    requests_today=3,
    requests_per_day=20,
    left_today=17,
    left_today_for_telegram=11,
    requests_last_minute=1,
    requests_per_minute=10,
    tokens_last_minute=420,
    tokens_per_minute=250_000,
    cooldown_s=0.0,
    cooldown_reason=None,
    resets_in_s=40_000,
)
FINAL = FinalEvent(
    conversation="jinju",
    reply="진주야, 오늘 뭐 했어?",
    backend="phrasebook",
    heard="오늘 피곤해",
    turn_id=41,
    timings_ms=Timings(first_sentence=812.3, total=1504.0),
    fallbacks=(FallbackInfo(backend="gemini", reason="rate_limited", detail="429 RESOURCE_EXHAUSTED"),),
)


@pytest.fixture
def server(start_server, phrasebook, tmp_path):
    """The real server: Gemini (the real backend and its quota ledger, a fake Google), then the phrasebook."""
    with FakeGemini(default=Reply.stream(["진주야, 오늘 ", "뭐 했어? 나는 ", "좋았어."])) as fake:
        settings = GeminiSettings(base_url=fake.base_url, model="gemini-test-flash")
        gemini = GeminiBackend(settings, "test-key", QuotaLedger(tmp_path / "data" / "quota.sqlite3"))
        yield fake, start_server(gemini, PhrasebookBackend(phrasebook), data_dir=tmp_path / "data")


def _post_chat(server, token: str, text: str) -> list[bytes]:
    """The answer's lines as the server wrote them, byte for byte (this module checks the wire)."""
    response = send_chat(server, token, {"conversation": "jinju", "text": text, "channel": "cli"})
    assert response.status_code == 200
    return [line + b"\n" for line in response.content.split(b"\n") if line.strip()]


def test_the_servers_chat_lines_are_what_the_client_parses(server, token):
    fake, app = server
    finals = []
    for text in (
        "오늘 피곤해",
        "배고파",
    ):  # Gemini answers the first; a 429 sends the second to the phrasebook
        lines = _post_chat(app, token, text)
        events = [decode_event(line) for line in lines]
        assert [encode_event(e) for e in events] == lines, "the models write the server's bytes exactly"
        *sentences, final = events
        assert sentences and all(isinstance(e, SentenceEvent) for e in sentences)
        assert [e.index for e in sentences] == list(range(len(sentences)))
        assert isinstance(final, FinalEvent) and final.reply == " ".join(e.text for e in sentences)
        assert list(json.loads(lines[-1])) == [
            "type",
            "conversation",
            "reply",
            "backend",
            "heard",
            "turn_id",
            "reply_id",
            "timings_ms",
            "fallbacks",
        ]
        finals.append(final)
        fake.push(Reply.error(429, "RESOURCE_EXHAUSTED", "quota", retry_delay="20s"))
    assert finals[0].backend == "gemini" and finals[0].fallbacks == ()
    assert finals[0].reply.startswith("진주야, ")
    assert finals[1].backend == "phrasebook"
    assert [(f.backend, f.reason) for f in finals[1].fallbacks] == [("gemini", "rate_limited")]

    async def through_the_client() -> list:
        client = InferenceClient(app.url, token, timeout_s=10)
        return [event async for event in client.chat("또 피곤해", conversation="jinju", channel="cli")]

    *sentences, final = asyncio.run(through_the_client())
    assert all(isinstance(e, ReplySentence) for e in sentences) and isinstance(final, ReplyFinal)
    assert final.conversation == "jinju" and final.reply == " ".join(e.text for e in sentences)
    assert final.timings_ms.total >= (final.timings_ms.first_sentence or 0.0)
    # each final names the id her turn was stored under
    hers = [t for t in app.chat.store.recent("jinju", 10) if t.role == "user"]
    assert [f.turn_id for f in (*finals, final)] == [t.id for t in hers]
    assert [t.text for t in hers] == ["오늘 피곤해", "배고파", "또 피곤해"]


def test_the_servers_health_is_what_the_client_parses(server, token):
    _, app = server
    response = httpx.get(f"{app.url}/v1/health", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    health = Health.model_validate_json(response.content)
    assert health.status == "ok" and health.backend == "gemini" and health.hears_audio
    assert health.reason is None and health.disk is not None and not health.disk.full
    assert health.disk.path == str(app.chat.store.path.parent) and health.disk.free_bytes > 0
    gemini, phrasebook = health.backends
    assert gemini.name == "gemini" and gemini.quota is not None and gemini.quota.model == "gemini-test-flash"
    assert phrasebook.name == "phrasebook" and phrasebook.quota is None and phrasebook.reason is None
    assert gemini.hears_audio and not phrasebook.hears_audio
    assert gemini.breaker.state == "closed" and gemini.breaker.until is None
    raw = response.json()
    assert "quota" not in raw["backends"][1] and "reason" in raw["backends"][1]
    # `chacha status --json` prints the parsed health: the same JSON, key for key, as the server sent
    assert json.dumps(health.model_dump(mode="json"), ensure_ascii=False) == json.dumps(
        raw, ensure_ascii=False
    )
    compact = json.dumps(health.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":"))
    assert compact.encode() == response.content
    # the client reads the same answer (asked again a moment later: the quota's clock moved on)
    again = asyncio.run(InferenceClient(app.url, token, timeout_s=10).health())
    moving = {"backends": {0: {"quota": {"resets_in_s", "cooldown_s"}}}, "disk": {"free_bytes"}}
    assert again.model_dump(exclude=moving) == health.model_dump(exclude=moving)


@pytest.mark.parametrize(
    "model",
    [
        SentenceEvent(index=0, text="진주야,"),
        FINAL,
        FinalEvent(
            conversation="j", reply="", backend="none", timings_ms=Timings(first_sentence=None, total=3.0)
        ),
        QUOTA,
        BackendStatus(name="gemini", available=True, reason=None, quota=QUOTA),
        BackendStatus(name="phrasebook", available=False, reason="no phrasebook"),
        BackendStatus(
            name="gemini",
            available=True,
            reason=None,
            quota=QUOTA,
            breaker=BreakerStatus(
                state="open",
                failures=2,
                until=1_800_000_030.0,
                retry_in_s=30.0,
                last_failure="timeout: no text",
                opened=1,
            ),
        ),
        Health(
            status="ok",
            version="0.1.0",
            backend="gemini",
            backends=(
                BackendStatus(name="gemini", available=True, reason=None, quota=QUOTA, hears_audio=True),
            ),
            hears_audio=True,
        ),
    ],
    ids=lambda m: type(m).__name__,
)
def test_every_model_round_trips(model):
    assert type(model).model_validate_json(model.model_dump_json()) == model
    assert type(model).model_validate(json.loads(json.dumps(model.model_dump(mode="json")))) == model
    if isinstance(model, SentenceEvent | FinalEvent):
        assert decode_event(encode_event(model)) == model
    with pytest.raises(ValidationError, match="frozen"):
        model.__setattr__(next(iter(type(model).model_fields)), None)


def test_the_lines_keep_todays_format():
    assert encode_event(SentenceEvent(index=1, text="좋았어.", reply_id=7)) == (
        '{"type": "sentence", "index": 1, "text": "좋았어.", "reply_id": 7}\n'.encode()
    )
    assert json.loads(encode_event(FINAL)) == {
        "type": "final",
        "conversation": "jinju",
        "reply": "진주야, 오늘 뭐 했어?",
        "backend": "phrasebook",
        "heard": "오늘 피곤해",
        "turn_id": 41,
        "reply_id": None,
        "timings_ms": {"first_sentence": 812.3, "total": 1504.0},
        "fallbacks": [{"backend": "gemini", "reason": "rate_limited", "detail": "429 RESOURCE_EXHAUSTED"}],
    }
    assert "quota" not in BackendStatus(name="x", available=True, reason=None).model_dump()


def test_while_gemini_cools_down_health_says_no_audio_is_heard(server, token):
    fake, app = server
    fake.push(Reply.error(429, "RESOURCE_EXHAUSTED", "quota", retry_delay="20s"))
    assert chat_final(app, token, "배고파").backend == "phrasebook"
    health = asyncio.run(InferenceClient(app.url, token, timeout_s=10).health())
    assert health.backend == "phrasebook" and health.hears_audio is False
    assert health.backends[0].hears_audio, "Gemini would still hear it, once it may answer again"


def test_an_older_servers_final_line_reads_without_a_turn_id():
    older = {k: v for k, v in FINAL.model_dump(mode="json").items() if k != "turn_id"}
    assert decode_event(json.dumps(older)) == FINAL.model_copy(update={"turn_id": None})


def test_an_older_servers_health_reads_as_hearing_no_audio():
    older = {
        "status": "ok",
        "version": "0.1.0",
        "backend": "gemini",
        "backends": [{"name": "gemini", "available": True, "reason": None}],
    }
    health = Health.model_validate(older)
    assert health.hears_audio is False and health.backends[0].hears_audio is False
    assert health.backends[0].breaker is None  # from before the circuit breaker


def test_unknown_keys_are_ignored():
    line = json.dumps({**SentenceEvent(index=0, text="응.").model_dump(), "voice": "cha"})
    assert decode_event(line) == SentenceEvent(index=0, text="응.")
    raw = {**FINAL.model_dump(mode="json"), "tokens": 12}
    assert decode_event(json.dumps(raw)) == FINAL


def test_a_renamed_or_missing_field_is_a_validation_error_that_names_it():
    renamed = {k if k != "reply" else "answer": v for k, v in FINAL.model_dump(mode="json").items()}
    with pytest.raises(ValidationError, match=r"final\.reply\n\s+Field required"):
        decode_event(json.dumps(renamed))
    with pytest.raises(ValidationError, match=r"sentence\.index\n\s+Field required"):
        decode_event('{"type": "sentence", "text": "응."}')
    with pytest.raises(ValidationError, match="backends"):
        Health.model_validate({"status": "ok", "version": "1", "backend": "gemini"})


# --- the client against a server that breaks the contract ---------------------------------------


@pytest.fixture
def odd_server() -> Iterator[tuple[str, dict[str, bytes]]]:
    """A plain HTTP server on loopback answering each path with the bytes in `answers`."""
    answers: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            body = answers[self.path]
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", answers
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _chat(url: str) -> list:
    async def run() -> list:
        client = InferenceClient(url, "token", timeout_s=5)
        return [event async for event in client.chat("안녕", conversation="jinju")]

    return asyncio.run(run())


def test_the_client_names_a_missing_field(odd_server):
    url, answers = odd_server
    renamed = {k if k != "reply" else "answer": v for k, v in FINAL.model_dump(mode="json").items()}
    answers["/v1/chat"] = encode_event(SentenceEvent(index=0, text="응.")) + json.dumps(renamed).encode()
    missing = r"(?s)does not understand: .*final\.reply\n\s+Field required"
    with pytest.raises(ServerUnavailable, match=missing):
        _chat(url)
    answers["/v1/health"] = (
        b'{"status": "ok", "version": "1", "backend": "gemini", "backends": [{"name": "x"}]}'
    )
    with pytest.raises(ServerUnavailable, match=r"(?s)health this client does not understand: .*available"):
        asyncio.run(InferenceClient(url, "token").health())


def test_the_client_skips_an_event_type_it_does_not_know(odd_server):
    url, answers = odd_server
    answers["/v1/chat"] = b"".join(
        [
            encode_event(SentenceEvent(index=0, text="응.")),
            b'{"type": "viseme", "index": 0, "shape": "a"}\n',
            encode_event(FINAL),
        ]
    )
    assert _chat(url) == [SentenceEvent(index=0, text="응."), FINAL]
