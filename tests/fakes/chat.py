"""POST /v1/chat as the tests do it: one turn, read through the contract's own models.

``chat`` posts a turn and answers its events, each read by ``decode_event`` (the models the
doll, the CLI and the bot read), so a test reads what a client reads: ``SentenceEvent``s, then
one ``FinalEvent``. ``chat_final`` answers the final event alone. ``stream_chat`` yields each
event as the server streams it. ``send_chat`` is the bare request, for a
test that checks the status or the headers itself, and ``read_events`` reads its answer.

``server`` is a started server (anything with ``url``, as ``start_server`` gives) or a base URL.
Tests that check the wire format on purpose (exact bytes, key order) read the bytes themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import httpx

from inference_server.api.models import NDJSON, FinalEvent, SentenceEvent, decode_event

ChatEvent = SentenceEvent | FinalEvent


class _Server(Protocol):
    url: str


def _url(server: _Server | str) -> str:
    base = server if isinstance(server, str) else server.url
    return f"{base}/v1/chat"


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token is not None else {}


def send_chat(
    server: _Server | str,
    token: str | None,
    body: Any = None,
    *,
    raw: bytes | None = None,
    timeout: float = 30,
) -> httpx.Response:
    """POST ``body`` as JSON (or ``raw`` bytes as they are) to /v1/chat; the response, unchecked."""
    headers = _headers(token)
    if raw is not None:
        headers["Content-Type"] = "application/json"
        return httpx.post(_url(server), content=raw, headers=headers, timeout=timeout)
    return httpx.post(_url(server), json=body, headers=headers, timeout=timeout)


def read_events(response: httpx.Response) -> list[ChatEvent]:
    """The events of a 200 NDJSON answer, each read as a client reads it."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(NDJSON)
    return [decode_event(line) for line in response.text.splitlines() if line.strip()]


def chat(
    server: _Server | str, token: str, text: str, *, timeout: float = 30, **fields: Any
) -> list[ChatEvent]:
    """One turn (``fields``: conversation, channel, audio…): its sentences, then its final event."""
    events = read_events(send_chat(server, token, {"text": text, **fields}, timeout=timeout))
    assert events and isinstance(events[-1], FinalEvent), events
    return events


def chat_final(
    server: _Server | str, token: str, text: str, *, timeout: float = 30, **fields: Any
) -> FinalEvent:
    """One turn; its final event."""
    final = chat(server, token, text, timeout=timeout, **fields)[-1]
    assert isinstance(final, FinalEvent)
    return final


def stream_chat(
    server: _Server | str, token: str, text: str, *, timeout: float = 30, **fields: Any
) -> Iterator[ChatEvent]:
    """One turn as it streams, an event per line as it arrives."""
    with httpx.stream(
        "POST", _url(server), json={"text": text, **fields}, headers=_headers(token), timeout=timeout
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.strip():
                yield decode_event(line)
