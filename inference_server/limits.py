"""Limits where input enters the server: the size of a request's body and headers, the time its
headers and its body may take, the number of open connections, and how much of a bad request an
error answer may repeat (none of it).

`BodyLimit` is ASGI middleware and runs after the token check; `GuardedH11Protocol` is uvicorn's
h11 connection with deadlines for a request's headers and body and a cap on open connections,
which uvicorn itself does not have.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import h11
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from h11._connection import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE  # as uvicorn itself imports it
from uvicorn.protocols.http.h11_impl import H11Protocol

_LOGGER = logging.getLogger(__name__)

MAX_ERRORS_SHOWN = 10
"""A 422 answer lists at most this many of the request's problems, and counts the rest."""

_MAX_LOC_CHARS = 64
_MAX_MSG_CHARS = 200
_END_OF_HEAD = re.compile(rb"\n\r?\n")  # the blank line after the headers, as h11 finds it


class _BodyTooLarge(Exception):
    """Raised into the app when a chunked body passes the limit; the 413 has been sent already."""


class BodyLimit:
    """Pure ASGI middleware: a request body over `max_bytes` is answered 413 and never read whole.

    A Content-Length over the limit is refused before a byte of the body is read (a client that
    waits with `Expect: 100-continue` sends none). A body without one (chunked) is counted as it
    arrives, and refused as soon as the count passes the limit. Either way the connection closes,
    so the rest of the body is not read either.
    """

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.max_bytes:
            await self._refuse(send)
            return

        received = 0
        started = False
        refused = False

        async def counting_receive():
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes and not refused:
                    refused = True
                    if not started:
                        await self._refuse(send)
                    raise _BodyTooLarge
            return message

        async def guarded_send(message) -> None:
            nonlocal started
            if refused:
                return  # the 413 went out; whatever the app answers to the error is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _BodyTooLarge:
            pass
        except Exception:
            if not refused:
                raise

    async def _refuse(self, send) -> None:
        detail = (
            f"the request body is over this server's limit of {self.max_bytes:,} bytes: "
            "send less, or raise server.max_body_bytes in the server's chacha.yaml"
        )
        body = json.dumps({"detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # h11 refuses a malformed Content-Length before we get here
    return None


# --- 422 answers ---------------------------------------------------------------------------


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _where(part: Any) -> str | int:
    return part if isinstance(part, int) else _short(str(part), _MAX_LOC_CHARS)


async def validation_failed(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with each problem's location, type and message, and never the input itself.

    FastAPI's own answer repeats every bad value (`input`, and `ctx` values made from it), so a
    megabyte of bad input came back as a megabyte of error. This answer is a few KB at most:
    the first MAX_ERRORS_SHOWN problems, each field name and message cut short.
    """
    errors = exc.errors()
    shown = [
        {
            "loc": [_where(part) for part in error.get("loc", ())][:8],
            "type": _short(str(error.get("type", "")), _MAX_LOC_CHARS),
            "msg": _short(str(error.get("msg", "")), _MAX_MSG_CHARS),
        }
        for error in errors[:MAX_ERRORS_SHOWN]
    ]
    answer: dict[str, Any] = {"detail": shown}
    if len(errors) > MAX_ERRORS_SHOWN:
        answer["more_errors"] = len(errors) - MAX_ERRORS_SHOWN
    return JSONResponse(answer, status_code=422)


# --- the connection: a deadline for the headers ----------------------------------------------


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 connection, with deadlines for each request's headers and body, and a cap on
    the number of open connections.

    uvicorn times out only an idle kept-alive connection, so a client that opens a connection
    and sends nothing, or a request's headers a byte at a time (slowloris), held it forever.
    Here the headers must be complete within `header_timeout_s`: from the connection's start,
    or from the first byte of a later request on it. A connection that sent part of a request
    is answered 408, one that sent nothing is just closed. A request line and headers over
    uvicorn's `h11_max_incomplete_event_size` are answered 431, whether they come in pieces
    (which h11 itself refuses, as a bare 400) or in one read (which h11 lets through).

    Once the headers are in, the body must be complete within `body_timeout_s`, or the request
    is answered 408 (if the app has not begun its answer) and the connection closed: a body sent
    a byte at a time held the connection and the app's task forever.

    A connection opened while `max_connections` are already open is answered 503 at once and
    closed, before any of its request is read. (uvicorn's `limit_concurrency` answers 503 too,
    but only once the headers are in, so a crowd of silent connections still held their sockets
    until the header deadline.)

    Make one with `guarded_h11(...)`, which sets these.
    """

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_connections: int = 64

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._head_deadline: asyncio.TimerHandle | None = None
        self._body_deadline: asyncio.TimerHandle | None = None
        self._refusing = False
        size = self.config.h11_max_incomplete_event_size
        self._max_head_bytes = size if size is not None else DEFAULT_MAX_INCOMPLETE_EVENT_SIZE

    def connection_made(self, transport) -> None:  # type: ignore[override]
        transport = LingeringTransport(transport, self.loop, self._client_may_be_sending)
        super().connection_made(transport)  # counts this connection among server_state's
        if len(self.connections) > self.max_connections:
            _LOGGER.warning("refused a connection: %d are open already", self.max_connections)
            self._refuse(
                503,
                "Service Unavailable",
                f"this server has {self.max_connections} connections open already (server.max_connections)",
            )
            return
        self._start_head_deadline()

    def _client_may_be_sending(self) -> bool:
        """Whether the client may still be sending a request we answered without reading it all
        (a refusal, or a 413 from the app): then the connection lingers before it closes."""
        return self._refusing or self.conn.their_state is h11.SEND_BODY

    def data_received(self, data: bytes) -> None:
        if self.transport.lingering:
            return  # the answer is out; the rest of the request is dropped unread
        if self.conn.their_state is h11.IDLE and self._head_too_large(data):
            self._unset_keepalive_if_required()
            self._refuse_large_head()
            return
        super().data_received(data)
        self._follow_head()

    def _head_too_large(self, data: bytes) -> bool:
        """Whether the request line and headers, with `data`, are over the limit. (h11 checks only
        a head that is still incomplete, so one that arrives whole in one read escaped it.)"""
        if self.transport.is_closing():
            return False
        waiting = self.conn.trailing_data[0]
        if len(waiting) + len(data) <= self._max_head_bytes:
            return False
        return _END_OF_HEAD.search(waiting + data, 0, self._max_head_bytes) is None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_deadline()
        self._stop_body_deadline()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        if len(self.conn.trailing_data[0]) > self._max_head_bytes:  # h11's own check of the size
            self._refuse_large_head()
            return
        super().send_400_response(msg)

    def _refuse_large_head(self) -> None:
        _LOGGER.debug("refused a request whose headers are over %d bytes", self._max_head_bytes)
        self._refuse(
            431,
            "Request Header Fields Too Large",
            f"the request line and headers are over {self._max_head_bytes:,} bytes",
        )

    def _follow_head(self) -> None:
        """Run the deadline while the connection waits for a request's head, unless it is idle
        between requests: then uvicorn's keep-alive timeout is the one that closes it."""
        if self.transport is None or self.transport.is_closing():
            return
        if self.conn.their_state is h11.IDLE and self.timeout_keep_alive_task is None:
            self._start_head_deadline()  # a no-op while it runs: more bytes do not move it
        else:
            self._stop_head_deadline()
        if self.conn.their_state is h11.SEND_BODY:
            self._start_body_deadline()  # from the end of the headers; more bytes do not move it
        else:
            self._stop_body_deadline()

    def _start_body_deadline(self) -> None:
        if self._body_deadline is None:
            self._body_deadline = self.loop.call_later(self.body_timeout_s, self._body_too_slow)

    def _stop_body_deadline(self) -> None:
        if self._body_deadline is not None:
            self._body_deadline.cancel()
            self._body_deadline = None

    def _body_too_slow(self) -> None:
        self._body_deadline = None
        if self.transport.is_closing() or self.conn.their_state is not h11.SEND_BODY:
            return
        _LOGGER.debug("closed a connection whose request body took over %s s", self.body_timeout_s)
        if self.cycle is not None and not self.cycle.response_started:
            text = f"the request's body did not arrive within {self.body_timeout_s} s"
            self._refuse(408, "Request Timeout", text)
        else:
            self.transport.close()  # the app receives a disconnect

    def _start_head_deadline(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(self.header_timeout_s, self._head_too_slow)

    def _stop_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.conn.trailing_data[0]:
            _LOGGER.debug("closed a connection whose headers took over %s s", self.header_timeout_s)
            text = f"the request's headers did not arrive within {self.header_timeout_s} s"
            self._refuse(408, "Request Timeout", text)
        else:
            self.transport.close()

    def _refuse(self, status: int, reason: str, text: str) -> None:
        """Answer with a status and one line of text, then close (h11 may not send it itself)."""
        body = text.encode()
        head = (
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        self._refusing = True
        self.transport.close()


class LingeringTransport:
    """A connection's transport whose `close()`, while the client may still be sending, lingers.

    A server that answers a request before reading all of it (413 for a body over the limit, 503
    over the connection cap, 408, 431) and then closes at once makes the client's kernel answer
    its next bytes with a reset, and a client that is still writing (most HTTP clients write the
    whole body before they read) then sees "connection reset" and never reads the answer. Here
    the answer goes out followed by a FIN (half-close), whatever the client still sends is read
    and dropped, and the connection closes when the client closes its side or after `LINGER_S`:
    the "lingering close" of HTTP servers. Everything else is the transport's own.
    """

    LINGER_S = 2.0

    def __init__(self, transport, loop: asyncio.AbstractEventLoop, client_may_be_sending) -> None:
        self._transport = transport
        self._loop = loop
        self._client_may_be_sending = client_may_be_sending
        self.lingering = False
        self._timer: asyncio.TimerHandle | None = None

    def __getattr__(self, name: str):
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self.lingering or self._transport.is_closing()

    def write(self, data: bytes) -> None:
        if not self.lingering:
            self._transport.write(data)

    def close(self) -> None:
        if self.lingering or self._transport.is_closing():
            return
        if not (self._client_may_be_sending() and self._transport.can_write_eof()):
            self._transport.close()
            return
        self.lingering = True
        self._transport.write_eof()  # after what is queued: she reads the answer, then the end
        self._transport.resume_reading()  # keep reading (and dropping) what she still sends
        self._timer = self._loop.call_later(self.LINGER_S, self._transport.close)

    def abort(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._transport.abort()


def guarded_h11(
    header_timeout_s: float, body_timeout_s: float = 30.0, max_connections: int = 64
) -> type[GuardedH11Protocol]:
    """The protocol class for uvicorn.Config(http=...), with these deadlines and this cap."""
    limits = {
        "header_timeout_s": header_timeout_s,
        "body_timeout_s": body_timeout_s,
        "max_connections": max_connections,
    }
    return type("GuardedH11Protocol", (GuardedH11Protocol,), limits)
