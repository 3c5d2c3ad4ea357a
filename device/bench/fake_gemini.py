"""A local fake of the Gemini REST API that the real `google-genai` SDK talks to as to Google.

Tests never reach the internet: point the real SDK at `FakeGemini.base_url` (or use
`FakeGemini.client()`), queue what the "model" should answer with `push(Reply...)`, and
assert on `FakeGemini.requests` (persona, history, generation config, API key).

`chacha bench latency` serves its fixed reply from here too, with realistic pacing
(`Reply.paced`: the first text after `first_token_s`, then pieces at `tokens_per_s`), so
latency runs repeat. It ships with the package, so it imports nothing but the standard
library at module level (google-genai only inside `FakeGemini.client()`).

Wire format emulated (what google-genai 3.x sends and parses, Gemini Developer API):

* `POST /v1beta/models/{model}:generateContent` -> one JSON `GenerateContentResponse`.
* `POST /v1beta/models/{model}:streamGenerateContent?alt=sse` -> `text/event-stream`, one
  `data: {GenerateContentResponse}` event per chunk, sent with chunked transfer-encoding on a
  keep-alive HTTP/1.1 connection, so a chunk reaches the client as soon as it is written and a
  truncated stream is detectable. Without `alt=sse` the chunks come back as one JSON array.
* The key travels in the `x-goog-api-key` header (`?key=` is accepted too).
* Errors use Google's JSON error body `{"error": {"code", "message", "status", "details"}}`;
  the SDK turns 4xx into `google.genai.errors.ClientError` and 5xx into `ServerError`, with the
  whole parsed body in `err.details`. A `data: {"error": {...}}` event in the middle of a stream
  is raised by the SDK as the same error classes while the caller iterates.

Every streamed chunk carries `usageMetadata` with running totals (as Gemini does); the last one
also carries `finishReason`. Token counts are fake but deterministic: one token per character
of text (prompt: all text parts of `contents` and `systemInstruction`; candidates: text sent).

Requests are validated lightly, like Google: 404 NOT_FOUND for unknown paths or methods (and
for models not in `models=` when given), 403 PERMISSION_DENIED without a key, 400
INVALID_ARGUMENT/API_KEY_INVALID for a wrong key, 400 INVALID_ARGUMENT for a body that is not
JSON or has no `contents`. Rejected requests are recorded but do not consume a queued reply.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import logging
import re
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

if TYPE_CHECKING:
    from google import genai

__all__ = ["DEFAULT_TEXT", "FakeGemini", "RecordedRequest", "Reply"]

log = logging.getLogger(__name__)

DEFAULT_TEXT = "응, 나 여기 있어."
MAX_HANG_S = 30.0  # upper bound on Reply.hang
DEFAULT_GATE_TIMEOUT_S = 10.0  # upper bound on waiting for a Reply.stream gate
STOP_JOIN_S = 2.0  # how long stop() waits for the serving and handler threads
CHARS_PER_TOKEN = 1.5  # Korean characters per Gemini token, for Reply.paced

_ROUTE = re.compile(
    r"^/(?P<version>v1|v1beta)/models/(?P<model>[^/:]+)"
    r":(?P<action>generateContent|streamGenerateContent)$"
)

_DEFAULT_MESSAGES = {
    400: "Request contains an invalid argument.",
    401: "Request had invalid authentication credentials.",
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "The request timed out. Please try again.",
}

_SAFETY_RATINGS = [
    {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": True},
    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "NEGLIGIBLE"},
]


@dataclasses.dataclass(frozen=True, eq=False)
class Reply:
    """What the fake answers to one request. Build it with the classmethods."""

    kind: str
    chunks: tuple[str, ...] = ()
    first_delay_s: float = 0.0
    delay_s: float = 0.0
    gate: threading.Event | None = None
    gate_after: int = 1
    gate_timeout_s: float = DEFAULT_GATE_TIMEOUT_S
    finish_reason: str = "STOP"
    code: int = 200
    status: str = "OK"
    message: str = ""
    details: tuple[dict[str, Any], ...] = ()
    seconds: float = 0.0
    disconnect: bool = False

    @classmethod
    def stream(
        cls,
        chunks: Iterable[str],
        *,
        first_delay_s: float = 0.0,
        delay_s: float = 0.0,
        gate: threading.Event | None = None,
        gate_after: int = 1,
        finish_reason: str = "STOP",
        gate_timeout_s: float = DEFAULT_GATE_TIMEOUT_S,
    ) -> Reply:
        """Text in several chunks: one SSE event per chunk.

        `first_delay_s` is slept before the first chunk (after the response headers) and
        `delay_s` before each chunk after the first. With `gate`, the server sends
        `gate_after` chunks, then waits (at most `gate_timeout_s`, or until the fake stops) for
        `gate.set()` before sending the rest; a test can so prove the client had the first
        sentence while the "model" was still generating. The last event carries
        `finishReason`. Answered to `:generateContent`, the chunks are joined into one
        response, sent after the gate and all the delays together.
        """
        chunks = tuple(chunks)
        if not all(isinstance(c, str) for c in chunks):
            raise TypeError("chunks must be strings")
        if gate_after < 0:
            raise ValueError("gate_after must be >= 0")
        return cls(
            kind="content",
            chunks=chunks,
            first_delay_s=max(0.0, first_delay_s),
            delay_s=max(0.0, delay_s),
            gate=gate,
            gate_after=gate_after,
            gate_timeout_s=min(max(0.0, gate_timeout_s), MAX_HANG_S),
            finish_reason=finish_reason,
        )

    @classmethod
    def paced(
        cls, text: str, *, first_token_s: float = 0.5, tokens_per_s: float = 40.0, chunk_tokens: int = 4
    ) -> Reply:
        """`text` at a model's pace: the first piece after `first_token_s`, then one piece of
        `chunk_tokens` tokens (CHARS_PER_TOKEN characters a token) every
        `chunk_tokens / tokens_per_s` seconds. Answered to `:generateContent`, the whole text
        comes after the whole time (`total_s`).
        """
        if tokens_per_s <= 0:
            raise ValueError("tokens_per_s must be > 0")
        size = max(1, round(chunk_tokens * CHARS_PER_TOKEN))
        pieces = [text[i : i + size] for i in range(0, len(text), size)] or [""]
        return cls.stream(pieces, first_delay_s=first_token_s, delay_s=size / CHARS_PER_TOKEN / tokens_per_s)

    @property
    def total_s(self) -> float:
        """How long the whole answer takes, gates aside: every delay together."""
        return self.first_delay_s + self.delay_s * max(0, len(self.chunks) - 1)

    @classmethod
    def text(cls, text: str, *, finish_reason: str = "STOP") -> Reply:
        """A whole text answer (one chunk when streamed)."""
        return cls.stream([text], finish_reason=finish_reason)

    @classmethod
    def error(
        cls,
        code: int,
        status: str,
        message: str | None = None,
        retry_delay: str | None = None,
        details: Iterable[dict[str, Any]] = (),
    ) -> Reply:
        """An HTTP error with Google's JSON error body, sent before any stream starts.

        `retry_delay` (e.g. "7s") adds a `google.rpc.RetryInfo` detail, as Gemini sends on 429.
        """
        all_details = list(details)
        if retry_delay is not None:
            all_details.append(
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}
            )
        return cls(
            kind="error",
            code=code,
            status=status,
            message=message if message is not None else _DEFAULT_MESSAGES.get(code, status),
            details=tuple(all_details),
        )

    @classmethod
    def hang(cls, seconds: float) -> Reply:
        """Accept the request, send nothing (not even headers) for `seconds`, then close.

        Bounded by MAX_HANG_S and released at once when the fake stops. A client still
        waiting when the connection closes sees "server disconnected without a response".
        """
        return cls(kind="hang", seconds=min(max(0.0, seconds), MAX_HANG_S))

    @classmethod
    def blocked(cls, finish_reason: str = "SAFETY") -> Reply:
        """A candidate with no content at all, only `finishReason` (and safety ratings)."""
        return cls(kind="blocked", finish_reason=finish_reason)

    @classmethod
    def prompt_blocked(cls, block_reason: str = "SAFETY") -> Reply:
        """No candidates; `promptFeedback.blockReason` says why the prompt was refused."""
        return cls(kind="prompt_blocked", finish_reason=block_reason)

    @classmethod
    def stream_then_error(
        cls,
        chunks: Iterable[str],
        code: int = 500,
        status: str = "INTERNAL",
        message: str | None = None,
        *,
        disconnect: bool = False,
    ) -> Reply:
        """Stream `chunks` (without finishReason), then break the stream.

        By default the break is a `data: {"error": {...}}` event followed by a clean end of
        the stream (what Gemini sends when generation fails mid-stream): the SDK raises
        ClientError/ServerError from the iterator after yielding the chunks. With
        `disconnect=True` the connection is closed without ending the chunked body: the SDK
        lets the transport's error (httpx2.RemoteProtocolError) escape from the iterator.
        Answered to `:generateContent`, this is a plain HTTP error.
        """
        return cls(
            kind="stream_then_error",
            chunks=tuple(chunks),
            code=code,
            status=status,
            message=message if message is not None else _DEFAULT_MESSAGES.get(code, status),
            disconnect=disconnect,
        )

    @classmethod
    def stream_then_disconnect(cls, chunks: Iterable[str]) -> Reply:
        """Stream `chunks`, then drop the connection mid-body (no error event)."""
        return cls.stream_then_error(chunks, disconnect=True)

    def error_body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = [dict(d) for d in self.details]
        return {"error": error}


@dataclasses.dataclass
class RecordedRequest:
    """One HTTP request the fake received, rejected ones included."""

    method: str
    path: str  # without the query string
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    raw_body: bytes
    body: Any  # parsed JSON, or None when the body is not JSON
    peer: tuple[str, int]  # the client's address: same port = same keep-alive connection
    model: str | None = None
    action: str | None = None  # "generateContent" or "streamGenerateContent"
    api_version: str | None = None
    status: int | None = None  # HTTP status the fake answered; None while pending or on hang
    reply: Reply | None = None  # the queued/default reply used; None if rejected

    @property
    def json(self) -> Any:
        return self.body

    @property
    def api_key(self) -> str | None:
        return self.headers.get("x-goog-api-key") or self.query.get("key")

    @property
    def stream(self) -> bool:
        return self.action == "streamGenerateContent"

    def _field(self, name: str) -> Any:
        return self.body.get(name) if isinstance(self.body, dict) else None

    @property
    def contents(self) -> list[dict[str, Any]] | None:
        return self._field("contents")

    @property
    def system_instruction(self) -> dict[str, Any] | None:
        return self._field("systemInstruction")

    @property
    def generation_config(self) -> dict[str, Any] | None:
        return self._field("generationConfig")

    @property
    def system_text(self) -> str:
        """The text of systemInstruction ('' if none)."""
        return _text_of(self.system_instruction)

    @property
    def history(self) -> list[tuple[str, str]]:
        """(role, text) for each item of `contents`, in order."""
        return [(c.get("role", ""), _text_of(c)) for c in self.contents or [] if isinstance(c, dict)]


def _text_of(content: Any) -> str:
    if not isinstance(content, dict):
        return ""
    parts = content.get("parts")
    if not isinstance(parts, list):
        return ""
    return "".join(p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str))


def _usage(prompt_tokens: int, candidate_tokens: int) -> dict[str, Any]:
    return {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": candidate_tokens,
        "totalTokenCount": prompt_tokens + candidate_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
    }


class _Abort(Exception):
    """Raised inside a handler to drop the connection without finishing the response."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # listen backlog: socketserver's 5 resets a burst of concurrent turns
    fake: FakeGemini

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError) or self.fake._stopping.is_set():
            return
        log.exception("FakeGemini handler failed for %s", client_address)
        if exc is not None:
            self.fake.server_errors.append(exc)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        log.debug("%s - %s", self.address_string(), format % args)

    def do_POST(self) -> None:
        self._dispatch()

    do_GET = do_PUT = do_PATCH = do_DELETE = do_POST

    # -- plumbing -------------------------------------------------------------------------

    def _dispatch(self) -> None:
        self._record: RecordedRequest | None = None
        try:
            self._handle()
        except (_Abort, ConnectionError, TimeoutError):
            self.close_connection = True
        except OSError:
            if not self.server.fake._stopping.is_set():
                raise
            self.close_connection = True

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline(65537).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _set_status(self, status: int) -> None:
        if self._record is not None:
            self._record.status = status

    def _send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self._set_status(status)  # before the client can read the answer and look
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_error(
        self, code: int, status: str, message: str, details: Iterable[dict[str, Any]] = ()
    ) -> None:
        self._send_json(code, Reply.error(code, status, message, details=details).error_body())

    def _start_sse(self) -> None:
        self._set_status(200)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _send_event(self, payload: Any) -> None:
        data = b"data: " + json.dumps(payload, ensure_ascii=False).encode("utf-8") + b"\r\n\r\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    def _sleep(self, seconds: float) -> None:
        if seconds > 0 and self.server.fake._stopping.wait(seconds):
            raise _Abort

    def _wait_gate(self, reply: Reply) -> None:
        if reply.gate is None:
            return
        fake = self.server.fake
        deadline = time.monotonic() + reply.gate_timeout_s
        while not reply.gate.is_set():
            if fake._stopping.is_set():
                raise _Abort
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                with fake._lock:
                    fake.gate_timeouts += 1
                log.warning("FakeGemini: gate not set within %.1f s", reply.gate_timeout_s)
                return
            reply.gate.wait(min(0.02, remaining))

    # -- the API ----------------------------------------------------------------------------

    def _handle(self) -> None:
        fake = self.server.fake
        split = urlsplit(self.path)
        try:
            raw = self._read_body()
        except ValueError:
            self.close_connection = True
            self._send_error(400, "INVALID_ARGUMENT", "Malformed request body framing.")
            return
        try:
            body: Any = json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, ValueError):
            body = None
        record = RecordedRequest(
            method=self.command,
            path=split.path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()},
            raw_body=raw,
            body=body,
            peer=tuple(self.client_address[:2]),
        )
        self._record = record
        route = _ROUTE.match(split.path)
        if route is not None:
            record.api_version = route["version"]
            record.model = unquote(route["model"])
            record.action = route["action"]
        fake._add_request(record)

        if route is None or self.command != "POST":
            self._send_error(404, "NOT_FOUND", f"Method not found: {self.command} {split.path}")
            return
        key = record.api_key
        if fake.api_key is not None and not key:
            self._send_error(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to call "
                "this API.",
            )
            return
        if fake.api_key is not None and key != fake.api_key:
            message = "API key not valid. Please pass a valid API key."
            self._send_error(
                400,
                "INVALID_ARGUMENT",
                message,
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                        "metadata": {"service": "generativelanguage.googleapis.com"},
                    },
                    {
                        "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                        "locale": "en-US",
                        "message": message,
                    },
                ],
            )
            return
        if not isinstance(body, dict):
            self._send_error(
                400,
                "INVALID_ARGUMENT",
                "Invalid JSON payload received. Expected a JSON object as the request body.",
            )
            return
        contents = body.get("contents")
        if not contents:
            self._send_error(
                400,
                "INVALID_ARGUMENT",
                "* GenerateContentRequest.contents: contents is not specified\n",
            )
            return
        if not isinstance(contents, list) or not all(isinstance(c, dict) for c in contents):
            self._send_error(
                400,
                "INVALID_ARGUMENT",
                "Invalid JSON payload received. 'contents' must be a list of Content objects.",
            )
            return
        if fake.models is not None and record.model not in fake.models:
            self._send_error(
                404,
                "NOT_FOUND",
                f"models/{record.model} is not found for API version {record.api_version}, "
                f"or is not supported for {record.action}. Call ListModels to see the list of "
                "available models and their supported methods.",
            )
            return

        refusal = fake._over_limit()
        if refusal is not None:
            record.status = 429
            self._send_error(
                429,
                "RESOURCE_EXHAUSTED",
                refusal[0],
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                        "violations": [{"quotaMetric": refusal[1], "quotaId": refusal[1]}],
                    },
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": refusal[2]},
                ],
            )
            return

        reply = fake._next_reply()
        record.reply = reply
        prompt_tokens = sum(len(_text_of(c)) for c in contents) + len(record.system_text)
        answer = _Answer(
            model=record.model or "",
            response_id=f"fake-response-{next(fake._ids)}",
            prompt_tokens=prompt_tokens,
        )
        sse = record.stream and record.query.get("alt") == "sse"

        if reply.kind == "hang":
            # Say nothing; close once the hang is over (or the fake stops).
            fake._stopping.wait(reply.seconds)
            raise _Abort
        if reply.kind == "error" or (reply.kind == "stream_then_error" and not sse):
            self._send_json(reply.code, reply.error_body())
            return
        if reply.kind in ("blocked", "prompt_blocked"):
            payload = answer.blocked(reply)
            if sse:
                self._start_sse()
                self._send_event(payload)
                self._end_chunked()
            else:
                self._send_json(200, [payload] if record.stream else payload)
            return

        # "content" or (streamed) "stream_then_error".
        if not sse:
            self._wait_gate(reply)
            self._sleep(reply.total_s)
            if record.stream:
                events = answer.events(reply.chunks, reply.finish_reason)
                self._send_json(200, events)
            else:
                self._send_json(200, answer.whole("".join(reply.chunks), reply.finish_reason))
            return

        self._start_sse()
        finish = reply.finish_reason if reply.kind == "content" else None
        chunks = (reply.chunks or ("",)) if reply.kind == "content" else reply.chunks
        for i, event in enumerate(answer.events(chunks, finish)):
            if reply.kind == "content" and i == reply.gate_after:
                self._wait_gate(reply)
            self._sleep(reply.delay_s if i > 0 else reply.first_delay_s)
            self._send_event(event)
        if reply.kind == "content" and reply.gate_after >= len(chunks):
            self._wait_gate(reply)  # a gate after the last chunk holds the end of the stream
        if reply.kind == "stream_then_error":
            if reply.disconnect:
                raise _Abort
            self._send_event(reply.error_body())
        self._end_chunked()


@dataclasses.dataclass
class _Answer:
    """Builds GenerateContentResponse payloads for one request."""

    model: str
    response_id: str
    prompt_tokens: int

    def _payload(self, **fields: Any) -> dict[str, Any]:
        return {**fields, "modelVersion": self.model, "responseId": self.response_id}

    def whole(self, text: str, finish_reason: str | None) -> dict[str, Any]:
        return self.events([text], finish_reason)[0]

    def events(self, chunks: Iterable[str], finish_reason: str | None) -> list[dict[str, Any]]:
        chunks = list(chunks)
        events = []
        sent = 0
        for i, text in enumerate(chunks):
            sent += len(text)
            candidate: dict[str, Any] = {
                "content": {"parts": [{"text": text}], "role": "model"},
                "index": 0,
            }
            if finish_reason is not None and i == len(chunks) - 1:
                candidate["finishReason"] = finish_reason
            events.append(
                self._payload(candidates=[candidate], usageMetadata=_usage(self.prompt_tokens, sent))
            )
        return events

    def blocked(self, reply: Reply) -> dict[str, Any]:
        usage = _usage(self.prompt_tokens, 0)
        del usage["candidatesTokenCount"]
        if reply.kind == "prompt_blocked":
            feedback = {"blockReason": reply.finish_reason, "safetyRatings": _SAFETY_RATINGS}
            return self._payload(promptFeedback=feedback, usageMetadata=usage)
        candidate: dict[str, Any] = {"finishReason": reply.finish_reason, "index": 0}
        if reply.finish_reason == "SAFETY":
            candidate["safetyRatings"] = _SAFETY_RATINGS
        return self._payload(candidates=[candidate], usageMetadata=usage)


class FakeGemini:
    """A local Gemini REST server on 127.0.0.1 (ephemeral port), served from a daemon thread.

    Use as a context manager (or start()/stop()). Replies queued with push() are consumed one
    per accepted request, in arrival order; when the queue is empty, `default` answers
    (a short Korean text unless given). With concurrent requests, arrival order decides.
    """

    def __init__(
        self,
        *,
        default: Reply | None = None,
        api_key: str | None = "test-key",
        models: Iterable[str] | None = None,
        requests_per_minute: int | None = None,
        requests_per_day: int | None = None,
    ) -> None:
        self.default = default if default is not None else Reply.text(DEFAULT_TEXT)
        self.api_key = api_key
        self.models = frozenset(models) if models is not None else None
        self.requests: list[RecordedRequest] = []
        # Google's own limits, enforced like the real service: over them, 429 with RetryInfo.
        self.requests_per_minute = requests_per_minute
        self.requests_per_day = requests_per_day
        self.accepted_at: list[float] = []  # monotonic times of requests within the limits
        self.rate_limited = 0  # requests answered 429 for going over a limit
        self.server_errors: list[BaseException] = []  # unexpected handler exceptions
        self.gate_timeouts = 0  # gates that were never set within their timeout
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._ids = itertools.count(1)
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._clients: list[genai.Client] = []
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        host, port = self._server.server_address[:2]
        self.base_url = f"http://{host}:{port}"

    def _over_limit(self) -> tuple[str, str, str] | None:
        """(message, quota metric, retry delay) when this request breaks a limit, else None."""
        now = time.monotonic()
        with self._lock:
            if self.requests_per_day is not None and len(self.accepted_at) >= self.requests_per_day:
                self.rate_limited += 1
                return (
                    "You exceeded your current quota (requests per day).",
                    "generate_content_free_tier_requests_per_day",
                    "3600s",
                )
            if self.requests_per_minute is not None:
                window = [t for t in self.accepted_at if now - t < 60.0]
                if len(window) >= self.requests_per_minute:
                    self.rate_limited += 1
                    retry = max(1, int(60.0 - (now - window[0])) + 1)
                    return (
                        "You exceeded your current quota (requests per minute).",
                        "generate_content_free_tier_requests_per_minute",
                        f"{retry}s",
                    )
            self.accepted_at.append(now)
        return None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> FakeGemini:
        if self._stopped:
            raise RuntimeError("a stopped FakeGemini cannot be restarted")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"FakeGemini{self.base_url[6:]}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; hangs, gates and open connections are released. Never blocks long."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        if self._thread is not None:
            stopper = threading.Thread(target=self._server.shutdown, daemon=True)
            stopper.start()
            stopper.join(STOP_JOIN_S)
            self._thread.join(STOP_JOIN_S)
        self._server.server_close()
        with self._lock:
            connections = list(self._connections.items())
        for sock, _ in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + STOP_JOIN_S
        for _, thread in connections:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        for client in self._clients:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                log.debug("closing a genai client failed", exc_info=True)

    def __enter__(self) -> FakeGemini:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- scripting and inspection ------------------------------------------------------------

    def push(self, *replies: Reply) -> None:
        """Queue replies, consumed one per accepted request, in order."""
        for reply in replies:
            if not isinstance(reply, Reply):
                raise TypeError(f"expected Reply, got {type(reply).__name__}")
        with self._lock:
            self._queue.extend(replies)

    @property
    def pending(self) -> int:
        """How many pushed replies have not been used yet."""
        with self._lock:
            return len(self._queue)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until at least `count` requests arrived; TimeoutError otherwise."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.requests) >= count, timeout):
                raise TimeoutError(f"{len(self.requests)} of {count} requests after {timeout} s")
            return list(self.requests)

    def open_connections(self) -> int:
        """How many client connections are open now (a kept-alive one counts between requests)."""
        with self._lock:
            return len(self._connections)

    def wait_for_connections(self, count: int, timeout: float = 5.0) -> None:
        """Block until exactly `count` client connections are open; TimeoutError otherwise."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._connections) == count, timeout):
                raise TimeoutError(
                    f"{len(self._connections)} connections open, not {count}, after {timeout} s"
                )

    def client(self, *, api_key: str | None = None, **http_options: Any) -> genai.Client:
        """A real google-genai Client pointed at this fake (api_version v1beta).

        Keyword arguments are HttpOptions fields, e.g. timeout=500 (milliseconds) or
        retry_options=types.HttpRetryOptions(...). The sync client is closed on stop().
        """
        import httpx2
        from google import genai
        from google.genai import types

        # The SDK switches its async path to aiohttp whenever aiohttp is importable; an explicit
        # httpx2 transport keeps these tests on one client, as the product's backend does.
        pinned = {"async_client_args": {"transport": httpx2.AsyncHTTPTransport()}}
        options = {"base_url": self.base_url, "api_version": "v1beta", **pinned, **http_options}
        client = genai.Client(
            api_key=api_key or self.api_key or "test-key",
            http_options=types.HttpOptions(**options),
        )
        self._clients.append(client)
        return client

    # -- used by the handler ------------------------------------------------------------------

    def _track(self, sock: socket.socket, *, add: bool) -> None:
        with self._changed:
            if add:
                self._connections[sock] = threading.current_thread()
            else:
                self._connections.pop(sock, None)
            self._changed.notify_all()

    def _add_request(self, record: RecordedRequest) -> None:
        with self._changed:
            self.requests.append(record)
            self._changed.notify_all()

    def _next_reply(self) -> Reply:
        with self._lock:
            return self._queue.popleft() if self._queue else self.default
