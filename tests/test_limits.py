"""Limits where input enters the server, over real sockets on loopback: the body's size, the
headers' size and time, what an error answer repeats, the API docs, and the clients' side."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time

import httpx
import pytest
import uvicorn

from inference_server.api import InferenceClient, ServerUnavailable
from inference_server.api.client import MAX_REFUSAL_CHARS
from inference_server.api.models import MAX_AUDIO_BYTES
from inference_server.backends.phrasebook import PhrasebookBackend
from inference_server.chat import ChatService
from inference_server.limits import MAX_ERRORS_SHOWN, GuardedH11Protocol
from inference_server.persona import PersonaBook
from inference_server.runtime import serve
from inference_server.settings import MAX_BODY_BYTES, MAX_TEXT_CHARS, ServerSettings
from inference_server.store import ConversationStore

WAIT_S = 10.0  # how long a socket waits for the server's answer: far beyond any deadline below


def _connect(server) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=WAIT_S)
    return sock


def _head(path: str, token: str | None, *headers: str, method: str = "POST") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or WAIT_S passes: a failure)."""
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    return answer


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def _headers(answer: bytes) -> dict[str, str]:
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
    return {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in head)}


# --- the body --------------------------------------------------------------------------------


def test_a_100_mb_body_is_refused_413_before_it_is_read(start_server, token):
    server = start_server()
    with _connect(server) as sock:
        head = _head("/v1/chat", token, "Content-Type: application/json", "Content-Length: 100000000")
        sock.sendall(head + b'{"text": "' + b"x" * 1000)  # 1 KB of the 100 MB, then nothing
        answer = _read_until_closed(sock)  # answered and closed without waiting for the rest
    assert _status(answer) == 413
    assert _headers(answer)["connection"] == "close"
    detail = json.loads(answer.split(b"\r\n\r\n", 1)[1])["detail"]
    assert "2,097,152 bytes" in detail and "server.max_body_bytes" in detail
    assert server.chat.store.recent("jinju", 5) == []


def test_a_client_still_writing_a_body_over_the_limit_reads_the_413_not_a_reset(start_server, token):
    """The server answers before it has read the body; the client writes all of it before it
    reads. The connection lingers, so the client reads the 413 every time, never a reset."""
    server = start_server()
    body = b'{"text": "' + b"x" * 10_000_000 + b'"}'
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    statuses = []
    for _ in range(10):
        try:
            statuses.append(httpx.post(f"{server.url}/v1/chat", headers=headers, content=body).status_code)
        except httpx.HTTPError as exc:
            statuses.append(repr(exc))
    assert statuses == [413] * 10


def test_a_client_that_asks_to_continue_is_refused_413_and_sends_no_body(start_server, token):
    server = start_server()
    with _connect(server) as sock:
        sock.sendall(_head("/v1/chat", token, "Content-Length: 100000000", "Expect: 100-continue"))
        answer = _read_until_closed(sock)
    assert _status(answer) == 413  # and no "100 Continue" before it
    assert b"100 Continue" not in answer


def test_a_chunked_body_is_refused_413_as_soon_as_it_passes_the_limit(start_server, token):
    limit = 64 * 1024
    server = start_server(settings=ServerSettings(max_body_bytes=limit))
    with _connect(server) as sock:
        sock.sendall(_head("/v1/chat", token, "Content-Type: application/json", "Transfer-Encoding: chunked"))
        chunk = b"x" * 4096
        for _ in range(limit // len(chunk) + 1):  # one chunk past the limit, and no end of the body
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        answer = _read_until_closed(sock)
    assert _status(answer) == 413
    assert "65,536 bytes" in json.loads(answer.split(b"\r\n\r\n", 1)[1])["detail"]
    assert server.chat.store.recent("jinju", 5) == []


def test_a_stranger_with_a_100_mb_body_gets_401_not_413(start_server):
    server = start_server()
    with _connect(server) as sock:
        sock.sendall(_head("/v1/chat", None, "Content-Length: 100000000") + b"x" * 1000)
        answer = _read_until_closed(sock)  # closed: the server does not read a stranger's body
    assert _status(answer) == 401


def test_the_largest_request_the_doll_sends_fits_under_the_default_limit(start_server, token):
    assert ServerSettings().max_body_bytes == MAX_BODY_BYTES
    audio = {"mime_type": "audio/ogg", "data": base64.b64encode(b"\x00" * MAX_AUDIO_BYTES).decode()}
    body = {"conversation": "jinju", "text": "가" * MAX_TEXT_CHARS, "channel": "doll", "audio": audio}
    as_sent = httpx.Request("POST", "http://x/v1/chat", json=body).content  # as InferenceClient sends
    escaped = json.dumps(body).encode()  # every Korean letter as \\uXXXX: the largest encoding
    assert len(as_sent) <= len(escaped) < MAX_BODY_BYTES
    server = start_server()
    response = httpx.post(
        f"{server.url}/v1/chat",
        content=escaped,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=WAIT_S,
    )
    assert response.status_code == 200, response.text[:300]


# --- 422 answers -----------------------------------------------------------------------------


def _post(server, token: str, content: bytes) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return httpx.post(f"{server.url}/v1/chat", content=content, headers=headers, timeout=WAIT_S)


def test_a_422_names_each_problem_but_never_echoes_the_input(start_server, token):
    server = start_server()
    secret = "비밀" * 250_000  # 1.5 MB of text: under the body limit, far over the text limit
    long_key = "k" * 10_000
    response = _post(server, token, json.dumps({"text": secret, long_key: 1}, ensure_ascii=False).encode())
    assert response.status_code == 422
    assert len(response.content) < 2000
    assert "비밀" not in response.text and long_key not in response.text
    errors = response.json()["detail"]
    assert {tuple(e) for e in errors} == {("loc", "type", "msg")}  # no input, no ctx, no url
    assert errors[0] == {
        "loc": ["body", "text"],
        "type": "string_too_long",
        "msg": f"String should have at most {MAX_TEXT_CHARS} characters",
    }
    assert errors[1]["type"] == "extra_forbidden" and len(errors[1]["loc"][1]) <= 64


def test_a_422_lists_ten_problems_and_counts_the_rest(start_server, token):
    server = start_server()
    body = {"text": "안녕", **{f"extra{i}": "값" * 10 for i in range(5000)}}
    response = _post(server, token, json.dumps(body).encode())
    assert response.status_code == 422
    answer = response.json()
    assert len(answer["detail"]) == MAX_ERRORS_SHOWN and answer["more_errors"] == 5000 - MAX_ERRORS_SHOWN
    assert len(response.content) < 3000


def test_malformed_json_is_422_without_the_json(start_server, token):
    server = start_server()
    response = _post(server, token, b'{"text": "' + "안녕".encode() * 10_000)
    assert response.status_code == 422
    assert len(response.content) < 500 and "안녕" not in response.text
    assert response.json()["detail"][0]["type"] == "json_invalid"


# --- the API docs --------------------------------------------------------------------------------

DOCS = ["/docs", "/redoc", "/openapi.json"]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_api_docs_are_off_by_default(start_server, token):
    server = start_server()
    for path in DOCS:
        assert httpx.get(f"{server.url}{path}").status_code == 401  # a stranger learns nothing
        assert httpx.get(f"{server.url}{path}", headers=_bearer(token)).status_code == 404


def test_the_api_docs_when_on_need_the_token(start_server, token):
    server = start_server(settings=ServerSettings(api_docs=True))
    for path in DOCS:
        assert httpx.get(f"{server.url}{path}").status_code == 401
        assert httpx.get(f"{server.url}{path}", headers=_bearer(token)).status_code == 200


def test_every_path_needs_the_token(start_server):
    server = start_server()
    for path in ["/", "/nowhere", "/v1/nowhere"]:
        assert httpx.get(f"{server.url}{path}").status_code == 401


# --- the headers: their size and their time --------------------------------------------------------


def test_headers_over_max_header_bytes_are_refused_431(start_server, token):
    server = start_server(settings=ServerSettings(max_header_bytes=4096))
    with _connect(server) as sock:
        sock.sendall(_head("/v1/health", token, "X-Padding: " + "p" * 8000, method="GET"))
        answer = _read_until_closed(sock)
    assert _status(answer) == 431
    assert b"4,096 bytes" in answer


def test_headers_under_max_header_bytes_are_answered(start_server, token):
    server = start_server(settings=ServerSettings(max_header_bytes=4096))
    headers = {"Authorization": f"Bearer {token}", "X-Padding": "p" * 3000}
    assert httpx.get(f"{server.url}/v1/health", headers=headers).status_code == 200


def test_serve_and_the_background_server_apply_the_limits_of_their_settings(
    start_server, monkeypatch, tmp_path, phrasebook
):
    settings = ServerSettings(
        header_timeout_s=3.5, body_timeout_s=12.0, max_connections=9, max_header_bytes=8192, keep_alive_s=7.0
    )
    configs = [start_server(settings=settings).config]

    async def not_serving(server, sockets=None):
        configs.append(server.config)

    monkeypatch.setattr(uvicorn.Server, "serve", not_serving)
    folder = tmp_path / "served"
    chat = ChatService(
        PersonaBook(None, folder), ConversationStore(folder / "c.sqlite3"), [PhrasebookBackend(phrasebook)]
    )
    with socket.socket() as sock:
        serve(chat, "token", sock, settings=settings)
    assert len(configs) == 2
    for config in configs:
        assert issubclass(config.http, GuardedH11Protocol) and config.http.header_timeout_s == 3.5
        assert config.http.body_timeout_s == 12.0 and config.http.max_connections == 9
        assert config.h11_max_incomplete_event_size == 8192
        assert config.timeout_keep_alive == 7.0


QUICK = ServerSettings(header_timeout_s=0.5, keep_alive_s=0.5)
"""Deadlines short enough to wait for: each test below waits for one to pass, at most WAIT_S."""


@pytest.mark.realtime
def test_a_request_whose_headers_never_finish_is_closed_with_408(start_server):
    server = start_server(settings=QUICK)
    with _connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /v1/hea")  # half a request line, and nothing more
        answer = _read_until_closed(sock)
        waited = time.monotonic() - started
    assert _status(answer) == 408
    assert waited >= 0.4  # not before the deadline (the upper bound is the socket's WAIT_S)


@pytest.mark.realtime
def test_a_connection_that_sends_nothing_is_closed(start_server):
    server = start_server(settings=QUICK)
    with _connect(server) as sock:
        assert _read_until_closed(sock) == b""


@pytest.mark.realtime
def test_headers_dripped_a_byte_at_a_time_are_cut_off_at_the_deadline(start_server):
    server = start_server(settings=QUICK)
    drip = b"GET /v1/health HTTP/1.1\r\n" + b"X-Slow: " + b"s" * 1000
    with _connect(server) as sock:
        sock.settimeout(0.05)
        answer = b""
        deadline = time.monotonic() + WAIT_S
        for byte in drip:  # a byte every 50 ms, far more often than the 0.5 s deadline
            assert time.monotonic() < deadline, "the server let the headers drip on"
            try:
                answer = sock.recv(65536)
                break  # the server answered, or closed
            except TimeoutError:
                pass
            try:
                sock.sendall(bytes([byte]))
            except OSError:  # closed by the server: its answer waits to be read
                sock.settimeout(WAIT_S)
                answer = sock.recv(65536)
                break
    assert answer.startswith(b"HTTP/1.1 408")


@pytest.mark.realtime
def test_an_idle_kept_alive_connection_is_closed_after_keep_alive_s(start_server, token):
    server = start_server(settings=QUICK)
    with _connect(server) as sock:
        sock.sendall(_head("/v1/health", token, method="GET"))
        answer = _read_until_closed(sock)  # the answer, then the close after 0.5 s of idling
    assert _status(answer) == 200
    assert answer.endswith(b"}")


@pytest.mark.realtime
def test_a_body_that_trickles_in_after_its_headers_is_cut_off_with_408(start_server, token):
    server = start_server(settings=ServerSettings(body_timeout_s=0.5))
    body = json.dumps({"text": "안녕", "conversation": "slow"}).encode()
    head = _head("/v1/chat", token, "Content-Type: application/json", f"Content-Length: {len(body)}")
    with _connect(server) as sock:
        sock.sendall(head + body[:5])  # the headers whole, then five bytes of the body and no more
        started = time.monotonic()
        answer = _read_until_closed(sock)
        waited = time.monotonic() - started
    assert _status(answer) == 408
    assert b"body did not arrive within 0.5 s" in answer
    assert waited >= 0.4  # not before the deadline (the upper bound is the socket's WAIT_S)
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{server.url}/v1/health", headers=headers).status_code == 200


@pytest.mark.realtime
def test_a_body_sent_in_time_is_not_cut_off_by_the_body_deadline(start_server, token):
    server = start_server(settings=ServerSettings(body_timeout_s=5.0))
    body = json.dumps({"text": "안녕", "conversation": "slow"}).encode()
    head = _head("/v1/chat", token, "Content-Type: application/json", f"Content-Length: {len(body)}")
    with _connect(server) as sock:
        sock.sendall(head + body[:5])
        time.sleep(0.2)  # a pause well inside the 5 s deadline, even at 4x slowdown
        sock.sendall(body[5:])
        answer = sock.recv(65536)
    assert _status(answer) == 200


def test_connections_over_max_connections_are_refused_at_once(start_server, token):
    cap = 4
    server = start_server(settings=ServerSettings(max_connections=cap, header_timeout_s=60.0))
    headers = {"Authorization": f"Bearer {token}"}
    held = [_connect(server) for _ in range(cap)]
    try:
        # the held connections are open and silent: each extra one is answered 503 and closed
        # without a byte of its request read (no deadline needs to pass)
        for _ in range(3):
            with _connect(server) as extra:
                answer = _read_until_closed(extra)
            assert _status(answer) == 503
            assert b"server.max_connections" in answer
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + WAIT_S  # the server notices the closes on its own loop
    while True:
        try:
            assert httpx.get(f"{server.url}/v1/health", headers=headers).status_code == 200
            break
        except (httpx.HTTPError, AssertionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    clients = [httpx.Client(headers=headers) for _ in range(cap)]  # a full set is served again
    try:
        assert [c.get(f"{server.url}/v1/health").status_code for c in clients] == [200] * cap
    finally:
        for c in clients:
            c.close()


def test_a_client_over_the_cap_reads_the_503_while_it_writes_its_request(start_server, token):
    """Refused at once, before a byte is read; the client writes its whole request, then reads
    the 503 (a plain socket: no client library's retry-on-reset hides a lost answer)."""
    server = start_server(settings=ServerSettings(max_connections=2, header_timeout_s=60.0))
    held = [_connect(server) for _ in range(2)]
    body = b'{"text": "' + b"x" * 1_000_000 + b'"}'  # under the body limit; refused for the cap
    head = _head("/v1/chat", token, "Content-Type: application/json", f"Content-Length: {len(body)}")
    answers = []
    try:
        for _ in range(5):
            with _connect(server) as sock:
                try:
                    sock.sendall(head + body)
                    answers.append(_read_until_closed(sock)[:12])
                except OSError as exc:  # a reset: the answer was lost
                    answers.append(repr(exc))
    finally:
        for sock in held:
            sock.close()
    assert answers == [b"HTTP/1.1 503"] * 5


# --- the clients' side -------------------------------------------------------------------------


def test_a_refusal_from_the_server_is_one_short_line(start_server, token):
    server = start_server()
    client = InferenceClient(server.url, token)

    async def ask() -> None:
        async for _ in client.chat("가" * 2500, conversation="jinju", channel="cli"):
            pass

    with pytest.raises(ServerUnavailable) as refused:
        asyncio.run(ask())
    message = str(refused.value)
    assert "\n" not in message and len(message) <= MAX_REFUSAL_CHARS
    assert message.endswith(f"answered 422: text: String should have at most {MAX_TEXT_CHARS} characters")


def test_an_older_servers_validation_dump_is_cut_to_one_line(token):
    dump = {
        "detail": [
            {
                "type": "string_too_long",
                "loc": ["body", "text"],
                "msg": "String should have at most 2000 characters",
                "input": "가\n" * 2500,
                "ctx": {"max_length": 2000},
            }
        ]
        * 3
    }
    request = httpx.Request("POST", "http://127.0.0.1:8750/v1/chat")
    message = InferenceClient("http://127.0.0.1:8750", token).refusal(
        httpx.Response(422, json=dump, request=request)
    )
    assert "\n" not in message and len(message) <= MAX_REFUSAL_CHARS and "가" not in message
    assert "answered 422: text: String should have at most 2000 characters; text:" in message
