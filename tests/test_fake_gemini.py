"""The real google-genai SDK against the local fake Gemini server (device/bench/fake_gemini.py).

These tests pin down both the fake and the SDK behaviour the inference server relies on:
which exceptions come out for rate limits, server errors, timeouts and broken streams, and
that streamed chunks reach the caller before the model has finished.
"""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import httpx2
import pytest
from google.genai import errors, types

from device.bench.fake_gemini import DEFAULT_TEXT, FakeGemini, Reply

pytestmark = pytest.mark.timeout(30)

MODEL = "gemini-2.5-flash"
PERSONA = "너는 차차야. 다정한 봉제 인형이고, 짧게 한국어로 대답해."


@pytest.fixture
def fake():
    with FakeGemini() as server:
        yield server
    assert server.server_errors == []


def _run_async(client, run):
    """asyncio.run(run()), closing the SDK's async connection pool inside the loop.

    Without client.aio.aclose() the SDK leaves that loop's sockets to the garbage collector
    (ResourceWarning: unclosed transport).
    """

    async def main():
        try:
            return await run()
        finally:
            await client.aio.aclose()

    return asyncio.run(main())


def _retry_info(err: errors.APIError) -> list[dict]:
    """RetryInfo details of an SDK error: err.details is Google's whole JSON error body."""
    return [
        d
        for d in err.details["error"].get("details", [])
        if d.get("@type") == "type.googleapis.com/google.rpc.RetryInfo"
    ]


# -- plain replies and what reaches the model ------------------------------------------------


def test_text_reply_and_request_recorded(fake):
    fake.push(Reply.text("안녕! 나는 차차야."))
    client = fake.client()
    response = client.models.generate_content(
        model=MODEL,
        contents=[
            types.Content(role="user", parts=[types.Part(text="안녕")]),
            types.Content(role="model", parts=[types.Part(text="안녕, 반가워!")]),
            types.Content(role="user", parts=[types.Part(text="너 누구야?")]),
        ],
        config=types.GenerateContentConfig(
            system_instruction=PERSONA, temperature=0.7, max_output_tokens=200
        ),
    )

    assert response.text == "안녕! 나는 차차야."
    candidate = response.candidates[0]
    assert candidate.finish_reason == types.FinishReason.STOP
    assert candidate.content.role == "model"
    assert response.model_version == MODEL
    assert response.response_id
    usage = response.usage_metadata
    assert usage.candidates_token_count == len("안녕! 나는 차차야.")
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count

    [request] = fake.requests
    assert request.method == "POST"
    assert request.path == f"/v1beta/models/{MODEL}:generateContent"
    assert request.query == {}
    assert request.headers["x-goog-api-key"] == "test-key"
    assert request.headers["content-type"] == "application/json"
    assert request.status == 200
    assert request.system_text == PERSONA
    assert request.system_instruction == {"parts": [{"text": PERSONA}], "role": "user"}
    assert request.history == [
        ("user", "안녕"),
        ("model", "안녕, 반가워!"),
        ("user", "너 누구야?"),
    ]
    assert request.generation_config == {"temperature": 0.7, "maxOutputTokens": 200}


def test_default_reply_when_queue_is_empty(fake):
    response = fake.client().models.generate_content(model=MODEL, contents="여보세요?")
    assert response.text == DEFAULT_TEXT
    assert fake.requests[0].history == [("user", "여보세요?")]


def test_replies_are_consumed_in_order_then_default(fake):
    fake.push(Reply.text("하나"), Reply.text("둘"))
    client = fake.client()
    texts = [client.models.generate_content(model=MODEL, contents="?").text for _ in range(3)]
    assert texts == ["하나", "둘", DEFAULT_TEXT]
    assert fake.pending == 0


def test_sequential_requests_reuse_one_keep_alive_connection(fake):
    fake.push(Reply.text("a"), Reply.stream(["b", "c"]), Reply.error(500, "INTERNAL"))
    client = fake.client()
    client.models.generate_content(model=MODEL, contents="1")
    assert [c.text for c in client.models.generate_content_stream(model=MODEL, contents="2")] == [
        "b",
        "c",
    ]
    with pytest.raises(errors.ServerError):
        client.models.generate_content(model=MODEL, contents="3")
    client.models.generate_content(model=MODEL, contents="4")
    assert len({r.peer for r in fake.requests}) == 1


# -- streaming --------------------------------------------------------------------------------


def test_stream_first_chunk_arrives_before_model_finishes_sync(fake):
    gate = threading.Event()
    fake.push(Reply.stream(["안녕! ", "나는 차차야. ", "오늘 뭐 했어?"], gate=gate))
    stream = fake.client().models.generate_content_stream(
        model=MODEL, contents="안녕", config=types.GenerateContentConfig(system_instruction=PERSONA)
    )

    first = next(stream)
    assert not gate.is_set()  # the server is still holding back the rest
    assert first.text == "안녕! "
    assert first.candidates[0].finish_reason is None
    gate.set()
    rest = list(stream)

    assert [c.text for c in rest] == ["나는 차차야. ", "오늘 뭐 했어?"]
    assert rest[-1].candidates[0].finish_reason == types.FinishReason.STOP
    # usage_metadata is on every chunk, as running totals; the last one is final.
    assert [c.usage_metadata.candidates_token_count for c in [first, *rest]] == [4, 12, 20]
    assert len({c.response_id for c in [first, *rest]}) == 1

    [request] = fake.requests
    assert request.path == f"/v1beta/models/{MODEL}:streamGenerateContent"
    assert request.query == {"alt": "sse"}
    assert request.system_text == PERSONA
    assert fake.gate_timeouts == 0


def test_stream_first_chunk_arrives_before_model_finishes_async(fake):
    gate = threading.Event()
    fake.push(Reply.stream(["첫 문장. ", "둘째 문장. ", "끝."], gate=gate))
    client = fake.client()

    async def run() -> list[str]:
        stream = await client.aio.models.generate_content_stream(model=MODEL, contents="얘기해 줘")
        texts = []
        async for chunk in stream:
            if not texts:
                assert not gate.is_set()
                gate.set()
            texts.append(chunk.text)
        return texts

    assert _run_async(client, run) == ["첫 문장. ", "둘째 문장. ", "끝."]
    assert fake.requests[0].history == [("user", "얘기해 줘")]


def test_stream_delay_spaces_out_chunks(fake):
    fake.push(Reply.stream(["a", "b", "c"], delay_s=0.2))
    arrivals = []
    start = time.monotonic()
    for _ in fake.client().models.generate_content_stream(model=MODEL, contents="?"):
        arrivals.append(time.monotonic() - start)
    assert arrivals[1] - arrivals[0] >= 0.15
    assert arrivals[2] - arrivals[1] >= 0.15


def test_paced_reply_holds_the_first_text_then_streams_at_the_token_rate(fake):
    """Reply.paced (what `chacha bench latency` serves): pieces of 4 tokens = 6 characters."""
    paced = Reply.paced("가나다라마바사아자차카타", first_token_s=0.2, tokens_per_s=20)
    assert paced.chunks == ("가나다라마바", "사아자차카타") and paced.delay_s == pytest.approx(0.2)
    assert paced.total_s == pytest.approx(0.4)
    fake.push(paced, paced)
    client = fake.client()
    start = time.monotonic()
    arrivals = [
        (time.monotonic() - start, c.text)
        for c in client.models.generate_content_stream(model=MODEL, contents="?")
    ]
    assert [t for _, t in arrivals] == list(paced.chunks)
    # lower bounds only: the server cannot send sooner, a busy client may read later
    assert arrivals[0][0] >= 0.18 and arrivals[1][0] >= 0.38
    start = time.monotonic()
    assert client.models.generate_content(model=MODEL, contents="?").text == "가나다라마바사아자차카타"
    assert time.monotonic() - start >= 0.38


def test_concurrent_requests_are_served_in_parallel(fake):
    gate = threading.Event()
    fake.push(Reply.stream(["먼저 ", "나중"], gate=gate))
    client = fake.client()
    first_chunk = threading.Event()
    gated_texts: list[str] = []

    def gated() -> None:
        for chunk in client.models.generate_content_stream(model=MODEL, contents="느린 질문"):
            gated_texts.append(chunk.text)
            first_chunk.set()

    worker = threading.Thread(target=gated, daemon=True)
    worker.start()
    assert first_chunk.wait(5)
    # While that stream is held open, another request is answered.
    assert client.models.generate_content(model=MODEL, contents="빠른 질문").text == DEFAULT_TEXT
    gate.set()
    worker.join(5)
    assert gated_texts == ["먼저 ", "나중"]


def test_stream_without_sse_returns_json_array(fake):
    fake.push(Reply.stream(["a", "b"]))
    response = httpx.post(
        f"{fake.base_url}/v1beta/models/{MODEL}:streamGenerateContent",
        headers={"x-goog-api-key": "test-key"},
        json={"contents": [{"role": "user", "parts": [{"text": "?"}]}]},
    )
    assert response.status_code == 200
    body = response.json()
    assert [e["candidates"][0]["content"]["parts"][0]["text"] for e in body] == ["a", "b"]
    assert body[-1]["candidates"][0]["finishReason"] == "STOP"


# -- errors -------------------------------------------------------------------------------------


def test_429_with_retry_delay_raises_client_error(fake):
    fake.push(Reply.error(429, "RESOURCE_EXHAUSTED", "quota exceeded", retry_delay="7s"))
    with pytest.raises(errors.ClientError) as caught:
        fake.client().models.generate_content(model=MODEL, contents="?")
    err = caught.value
    assert err.code == 429
    assert err.status == "RESOURCE_EXHAUSTED"
    assert err.message == "quota exceeded"
    assert err.details["error"]["code"] == 429
    assert [d["retryDelay"] for d in _retry_info(err)] == ["7s"]
    assert len(fake.requests) == 1  # no retry by default


def test_429_on_stream_raises_at_first_iteration_sync_and_async(fake):
    fake.push(
        Reply.error(429, "RESOURCE_EXHAUSTED", retry_delay="3s"),
        Reply.error(429, "RESOURCE_EXHAUSTED", retry_delay="3s"),
    )
    client = fake.client()
    stream = client.models.generate_content_stream(model=MODEL, contents="?")
    assert fake.requests == []  # a generator: nothing is sent before iterating
    with pytest.raises(errors.ClientError) as caught:
        next(stream)
    assert caught.value.code == 429
    assert [d["retryDelay"] for d in _retry_info(caught.value)] == ["3s"]

    async def run() -> None:
        stream = await client.aio.models.generate_content_stream(model=MODEL, contents="?")
        assert len(fake.requests) == 1  # awaiting the call sends nothing either
        async for _ in stream:
            pass

    with pytest.raises(errors.ClientError) as caught:
        _run_async(client, run)
    assert caught.value.code == 429
    assert len(fake.requests) == 2


def test_500_raises_server_error_without_retry(fake):
    fake.push(Reply.error(500, "INTERNAL"))
    with pytest.raises(errors.ServerError) as caught:
        fake.client().models.generate_content(model=MODEL, contents="?")
    assert caught.value.code == 500
    assert caught.value.status == "INTERNAL"
    assert len(fake.requests) == 1  # the SDK does not retry unless retry_options is set


def test_retry_options_make_the_sdk_retry(fake):
    fake.push(Reply.error(503, "UNAVAILABLE"), Reply.text("이제 됐다"))
    client = fake.client(retry_options=types.HttpRetryOptions(attempts=3, initial_delay=0.0, jitter=0.0))
    assert client.models.generate_content(model=MODEL, contents="?").text == "이제 됐다"
    assert [r.status for r in fake.requests] == [503, 200]


def test_bad_api_key_raises_client_error_400(fake):
    fake.push(Reply.text("not used"))
    with pytest.raises(errors.ClientError) as caught:
        fake.client(api_key="wrong-key").models.generate_content(model=MODEL, contents="?")
    err = caught.value
    assert err.code == 400
    assert err.status == "INVALID_ARGUMENT"
    assert err.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    assert fake.pending == 1  # a rejected request does not consume a reply


def test_blocked_candidate_has_no_text(fake):
    fake.push(Reply.blocked(), Reply.blocked("RECITATION"))
    client = fake.client()
    response = client.models.generate_content(model=MODEL, contents="?")
    assert response.candidates[0].finish_reason == types.FinishReason.SAFETY
    assert response.candidates[0].content is None
    assert response.text is None
    assert any(r.blocked for r in response.candidates[0].safety_ratings)

    [chunk] = list(client.models.generate_content_stream(model=MODEL, contents="?"))
    assert chunk.candidates[0].finish_reason == types.FinishReason.RECITATION
    assert chunk.text is None


def test_prompt_blocked_has_prompt_feedback_and_no_candidates(fake):
    fake.push(Reply.prompt_blocked(), Reply.prompt_blocked("PROHIBITED_CONTENT"))
    client = fake.client()
    response = client.models.generate_content(model=MODEL, contents="?")
    assert response.candidates is None
    assert response.text is None
    assert response.prompt_feedback.block_reason == types.BlockedReason.SAFETY
    [chunk] = list(client.models.generate_content_stream(model=MODEL, contents="?"))
    assert chunk.prompt_feedback.block_reason == types.BlockedReason.PROHIBITED_CONTENT


def test_stream_then_error_event_raises_mid_iteration(fake):
    fake.push(
        Reply.stream_then_error(["안녕, ", "나는"], code=500, status="INTERNAL"),
        Reply.stream_then_error(["앗"], code=503, status="UNAVAILABLE"),
    )
    client = fake.client()
    received = []
    with pytest.raises(errors.ServerError) as caught:
        for chunk in client.models.generate_content_stream(model=MODEL, contents="?"):
            received.append(chunk.text)
    assert received == ["안녕, ", "나는"]
    assert caught.value.code == 500

    async def run() -> None:
        async for chunk in await client.aio.models.generate_content_stream(model=MODEL, contents="?"):
            received.append(chunk.text)

    with pytest.raises(errors.ServerError) as caught:
        _run_async(client, run)
    assert caught.value.code == 503
    assert received[-1] == "앗"
    assert len(fake.requests) == 2  # not resumed or retried


def test_stream_disconnect_raises_remote_protocol_error(fake):
    fake.push(Reply.stream_then_disconnect(["안녕, "]), Reply.stream_then_disconnect(["또"]))
    client = fake.client()
    received = []
    with pytest.raises(httpx2.RemoteProtocolError, match="incomplete chunked read"):
        for chunk in client.models.generate_content_stream(model=MODEL, contents="?"):
            received.append(chunk.text)
    assert received == ["안녕, "]

    async def run() -> None:
        async for chunk in await client.aio.models.generate_content_stream(model=MODEL, contents="?"):
            received.append(chunk.text)

    with pytest.raises(httpx2.RemoteProtocolError):
        _run_async(client, run)
    assert received == ["안녕, ", "또"]


# -- timeouts -----------------------------------------------------------------------------------


def test_timeout_sync(fake):
    """HttpOptions.timeout is milliseconds; the SDK lets httpx2.ReadTimeout escape unwrapped."""
    fake.push(Reply.hang(10), Reply.hang(10), Reply.stream(["먼저"], gate=threading.Event()))
    client = fake.client(timeout=500)

    start = time.monotonic()
    with pytest.raises(httpx2.ReadTimeout):
        client.models.generate_content(model=MODEL, contents="?")
    assert time.monotonic() - start < 2

    with pytest.raises(httpx2.ReadTimeout):  # before the first chunk
        next(client.models.generate_content_stream(model=MODEL, contents="?"))

    received = []
    with pytest.raises(httpx2.ReadTimeout):  # mid-stream: each read has its own 0.5 s
        for chunk in client.models.generate_content_stream(model=MODEL, contents="?"):
            received.append(chunk.text)
    assert received == ["먼저"]
    assert fake.requests[0].headers["x-server-timeout"] == "1"  # ceil(seconds)
    assert len(fake.requests) == 3  # timeouts are not retried either


def test_timeout_async(fake):
    fake.push(Reply.hang(10), Reply.hang(10), Reply.stream(["먼저"], gate=threading.Event()))
    client = fake.client(timeout=500)
    outcomes: list[type[BaseException]] = []
    received = []

    async def run() -> None:
        try:
            await client.aio.models.generate_content(model=MODEL, contents="?")
        except Exception as exc:  # noqa: BLE001 - recording the type
            outcomes.append(type(exc))
        for _ in range(2):
            try:
                async for chunk in await client.aio.models.generate_content_stream(model=MODEL, contents="?"):
                    received.append(chunk.text)
            except Exception as exc:  # noqa: BLE001 - recording the type
                outcomes.append(type(exc))

    _run_async(client, run)
    assert outcomes == [httpx2.ReadTimeout] * 3
    assert received == ["먼저"]


def test_timeout_type_depends_on_http_backend(fake, monkeypatch):
    """With GOOGLE_GENAI_HTTP_CLIENT=httpx the same timeout is httpx.ReadTimeout instead:
    the two are unrelated classes, so catch both (or catch by base) in product code."""
    monkeypatch.setenv("GOOGLE_GENAI_HTTP_CLIENT", "httpx")
    fake.push(Reply.hang(10))
    with pytest.raises(httpx.ReadTimeout):
        fake.client(timeout=300).models.generate_content(model=MODEL, contents="?")
    assert not issubclass(httpx2.ReadTimeout, httpx.TimeoutException)


def test_hang_without_timeout_ends_in_disconnect(fake):
    fake.push(Reply.hang(0.3))
    with pytest.raises(httpx2.RemoteProtocolError, match="without sending a response"):
        fake.client().models.generate_content(model=MODEL, contents="?")


# -- Google-like validation and lifecycle ------------------------------------------------------


def test_validation_like_google(fake):
    url = f"{fake.base_url}/v1beta/models/{MODEL}:generateContent"
    key = {"x-goog-api-key": "test-key"}
    contents = {"contents": [{"role": "user", "parts": [{"text": "?"}]}]}
    with httpx.Client() as http:
        unknown = http.post(f"{fake.base_url}/v1beta/models/{MODEL}:frobnicate", headers=key)
        assert unknown.status_code == 404
        assert unknown.json()["error"]["status"] == "NOT_FOUND"
        assert http.get(url, headers=key).status_code == 404
        not_json = http.post(url, headers=key, content=b"{nope")
        assert not_json.status_code == 400
        assert not_json.json()["error"]["status"] == "INVALID_ARGUMENT"
        no_contents = http.post(url, headers=key, json={"generationConfig": {}})
        assert no_contents.status_code == 400
        assert "contents is not specified" in no_contents.json()["error"]["message"]
        no_key = http.post(url, json=contents)
        assert no_key.status_code == 403
        assert no_key.json()["error"]["status"] == "PERMISSION_DENIED"
        key_in_query = http.post(url, params={"key": "test-key"}, json=contents)
        assert key_in_query.status_code == 200
        assert key_in_query.json()["candidates"][0]["content"]["parts"][0]["text"] == DEFAULT_TEXT
    assert [r.status for r in fake.requests] == [404, 404, 400, 400, 403, 200]


def test_unknown_model_is_404_when_models_are_listed():
    with FakeGemini(models=[MODEL]) as server:
        client = server.client()
        with pytest.raises(errors.ClientError) as caught:
            client.models.generate_content(model="gemini-typo", contents="?")
        assert caught.value.code == 404
        assert client.models.generate_content(model=MODEL, contents="?").text == DEFAULT_TEXT


def test_stop_does_not_hang_on_hung_or_gated_requests():
    server = FakeGemini().start()
    server.push(Reply.hang(30), Reply.stream(["a", "b"], gate=threading.Event()))
    client = server.client()
    outcomes: list[BaseException | None] = []

    def call(stream: bool) -> None:
        try:
            if stream:
                list(client.models.generate_content_stream(model=MODEL, contents="?"))
            else:
                client.models.generate_content(model=MODEL, contents="?")
            outcomes.append(None)
        except Exception as exc:  # noqa: BLE001 - recording the outcome
            outcomes.append(exc)

    threads = [threading.Thread(target=call, args=(s,), daemon=True) for s in (False, True)]
    for n, t in enumerate(threads, start=1):
        t.start()
        server.wait_for_requests(n)
    time.sleep(0.1)

    start = time.monotonic()
    server.stop()
    assert time.monotonic() - start < 3
    for t in threads:
        t.join(5)
    assert len(outcomes) == 2
    assert all(isinstance(o, httpx2.TransportError) for o in outcomes)
    assert server.server_errors == []
