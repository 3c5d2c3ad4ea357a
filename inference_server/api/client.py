"""The clients' side of the server API: send what she said, receive 차차's sentences as they come.

The doll, the CLI and the Telegram bot all talk to the server through `InferenceClient`; what it
returns is parsed into the models of `inference_server.api.models`.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from urllib.parse import quote, urlencode

import httpx
from pydantic import ValidationError

from inference_server.api.models import (
    FinalEvent,
    ForgetLog,
    Health,
    HistoryDeleted,
    MemoriesForgotten,
    MemoryItem,
    MemoryList,
    MemorySearch,
    ReflectionReport,
    SentenceEvent,
    StoredTurn,
    decode_event,
)

_LOGGER = logging.getLogger(__name__)


class ServerUnavailable(Exception):
    """The inference server cannot be reached or refused the request; the message says why."""


class TurnRejected(ServerUnavailable):
    """The server would not correct a turn: none by that id in that conversation (404), or it is
    차차's reply, not hers (409). `status_code` says which."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class TentativeRefused(ServerUnavailable):
    """The server will not answer a tentative request now (it would spend the doll's reserve of
    the day's requests): ask again once she has surely finished."""


class InferenceClient:
    def __init__(self, base_url: str, token: str, *, timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._timeout = httpx.Timeout(timeout_s, connect=5.0)

    async def chat(
        self,
        text: str,
        *,
        conversation: str,
        channel: str = "doll",
        audio: tuple[str, bytes] | None = None,
        tentative: str | None = None,
    ) -> AsyncIterator[SentenceEvent | FinalEvent]:
        """Yield each sentence as the server sends it, then the final summary.

        `audio` is (mime type, bytes) of her recording, for a server in audio mode. `tentative`:
        an id for a reply asked for before she has surely finished; nothing of it is stored until
        :meth:`keep` is called with it, and closing the stream first drops it. Raises
        TentativeRefused when the server will not answer one now.
        """
        body: dict = {"conversation": conversation, "text": text, "channel": channel}
        if audio is not None:
            body["audio"] = {"mime_type": audio[0], "data": base64.b64encode(audio[1]).decode("ascii")}
        if tentative is not None:
            body["tentative"] = tentative
        try:
            async with (
                httpx.AsyncClient(timeout=self._timeout) as http,
                http.stream("POST", f"{self.base_url}/v1/chat", json=body, headers=self._headers) as response,
            ):
                if response.status_code != 200:
                    await response.aread()
                    if tentative is not None and response.status_code == 409:
                        raise TentativeRefused(self.refusal(response))
                    raise ServerUnavailable(self.refusal(response))
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    event = self._event(line)
                    if event is not None:
                        yield event
        except httpx.ConnectError:
            raise ServerUnavailable(
                f"the inference server at {self.base_url} is not reachable: start it with "
                "`chacha serve` (or `systemctl start chachaping-server`), or fix client.url"
            ) from None
        except httpx.TimeoutException:
            raise ServerUnavailable(
                f"the inference server at {self.base_url} did not answer in time: "
                "check `chacha status` and the server's log"
            ) from None
        except httpx.HTTPError as exc:
            raise ServerUnavailable(f"talking to {self.base_url} failed: {exc}") from None

    def _event(self, line: str) -> SentenceEvent | FinalEvent | None:
        """One NDJSON line; None for an event type this client does not know (a newer server)."""
        try:
            return decode_event(line)
        except ValidationError as exc:
            if all(error["type"] == "union_tag_invalid" for error in exc.errors()):
                _LOGGER.debug("skipping an event this client does not know: %s", line[:200])
                return None
            raise ServerUnavailable(self._misunderstood("a reply line", exc)) from None

    async def health(self) -> Health:
        answer = await self._request("GET", "/v1/health")
        try:
            return Health.model_validate(answer)
        except ValidationError as exc:
            raise ServerUnavailable(self._misunderstood("its health", exc)) from None

    def _misunderstood(self, what: str, exc: ValidationError) -> str:
        return f"the server at {self.base_url} sent {what} this client does not understand: {exc}"

    async def _send(self, method: str, path: str, body: dict | None = None) -> httpx.Response:
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as http:
                return await http.request(method, f"{self.base_url}{path}", json=body, headers=self._headers)
        except httpx.HTTPError as exc:
            raise ServerUnavailable(
                f"the inference server at {self.base_url} is not reachable: {exc}"
            ) from None

    async def _request(self, method: str, path: str, body: dict | None = None) -> dict:
        response = await self._send(method, path, body)
        if response.status_code != 200:
            raise ServerUnavailable(self.refusal(response))
        return response.json()

    async def keep(self, tentative: str) -> bool:
        """She is about to hear the tentative reply ``tentative``: have the server store it.
        False when the server has no such reply (it was dropped, or long finished)."""
        response = await self._send("POST", f"/v1/tentative/{quote(tentative, safe='')}")
        if response.status_code == 404 and not self._unknown_path(response):
            return False
        if response.status_code != 200:
            raise ServerUnavailable(self.refusal(response))
        return True

    async def correct_turn(self, conversation: str, turn_id: int, text: str) -> StoredTurn:
        """Replace the stored text of her turn `turn_id` (the final event's) with a better transcript.

        Raises TurnRejected when the conversation has no such turn of hers, ServerUnavailable
        when the server cannot be reached or refuses otherwise.
        """
        path = f"/v1/conversations/{quote(conversation, safe='')}/turns/{turn_id}"
        return await self._turn_call("PATCH", path, {"text": text}, what="a corrected turn")

    async def interrupted(self, conversation: str, reply_id: int, heard: list[str]) -> StoredTurn:
        """Tell the server she stopped his reply `reply_id` (a sentence event's) after hearing the
        sentences `heard`: only they stay in the history.

        Raises TurnRejected when the conversation has no such reply, or it does not begin with
        `heard`; ServerUnavailable when the server cannot be reached or refuses otherwise.
        """
        path = f"/v1/conversations/{quote(conversation, safe='')}/turns/{reply_id}/heard"
        return await self._turn_call("POST", path, {"sentences": heard}, what="an interrupted reply")

    async def _turn_call(self, method: str, path: str, body: dict, *, what: str) -> StoredTurn:
        """A change to one stored turn: TurnRejected for 404/409 from this API, the turn otherwise."""
        response = await self._send(method, path, body)
        if response.status_code in (404, 409) and not self._unknown_path(response):
            raise TurnRejected(self.refusal(response), response.status_code)
        if response.status_code != 200:
            raise ServerUnavailable(self.refusal(response))
        try:
            return StoredTurn.model_validate_json(response.content)
        except ValidationError as exc:
            raise ServerUnavailable(self._misunderstood(what, exc)) from None

    def _unknown_path(self, response: httpx.Response) -> bool:
        """A 404 from a server that has no such endpoint at all (one older than this client)."""
        if response.status_code != 404:
            return False
        try:
            answer = response.json()
        except ValueError:
            return True
        return not isinstance(answer, dict) or answer.get("detail") == "Not Found"

    async def _typed(self, model, method: str, path: str, body: dict | None = None, *, what: str):
        answer = await self._request(method, path, body)
        try:
            return model.model_validate(answer)
        except ValidationError as exc:
            raise ServerUnavailable(self._misunderstood(what, exc)) from None

    async def delete_history(self, conversation: str) -> HistoryDeleted:
        """Delete the conversation's whole history on the server (its memories stay)."""
        path = f"/v1/conversations/{quote(conversation, safe='')}"
        return await self._typed(HistoryDeleted, "DELETE", path, what="the deleted history")

    async def memories(self, conversation: str) -> MemoryList:
        path = f"/v1/memory?{urlencode({'conversation': conversation})}"
        return await self._typed(MemoryList, "GET", path, what="its memories")

    async def search_memories(self, conversation: str, query: str, *, limit: int = 10) -> MemorySearch:
        path = f"/v1/memory/search?{urlencode({'conversation': conversation, 'q': query, 'limit': limit})}"
        return await self._typed(MemorySearch, "GET", path, what="a memory search")

    async def add_memory(
        self, conversation: str, text: str, *, importance: float | None = None, cues: list[str] | None = None
    ) -> MemoryItem:
        body = {"conversation": conversation, "text": text, "importance": importance, "cues": cues or []}
        return await self._typed(MemoryItem, "POST", "/v1/memory", body, what="the added memory")

    async def forget_memory(self, conversation: str, memory_id: int) -> MemoriesForgotten:
        path = f"/v1/memory/{memory_id}?{urlencode({'conversation': conversation})}"
        return await self._typed(MemoriesForgotten, "DELETE", path, what="the forgotten memory")

    async def forgets(self, after: int = 0) -> ForgetLog:
        """What was forgotten after forgetting `after` (digests; see ForgetEntry)."""
        return await self._typed(ForgetLog, "GET", f"/v1/forgets?after={after:d}", what="the forget log")

    async def forget_all_memories(self, conversation: str) -> MemoriesForgotten:
        path = f"/v1/memory?{urlencode({'conversation': conversation, 'all': 'true'})}"
        return await self._typed(MemoriesForgotten, "DELETE", path, what="the forgotten memories")

    async def reflect(self, conversation: str) -> ReflectionReport:
        """End the conversation's session now and reflect on what waits (one LLM call a session)."""
        body = {"conversation": conversation}
        return await self._typed(ReflectionReport, "POST", "/v1/memory/reflect", body, what="the reflection")

    async def persona(self) -> dict:
        return await self._request("GET", "/v1/admin/persona")

    async def set_persona(self, text: str) -> dict:
        return await self._request("PUT", "/v1/admin/persona", {"text": text})

    async def reload_persona(self) -> dict:
        return await self._request("POST", "/v1/admin/persona/reload")

    def refusal(self, response: httpx.Response) -> str:
        """The one line (at most MAX_REFUSAL_CHARS) a refused request becomes: what went wrong and
        what to do, whatever the server sent."""
        if response.status_code == 401:
            return (
                f"the server at {self.base_url} rejected the token: set CHACHA_API_TOKEN "
                "to the same value the server uses"
            )
        if self._unknown_path(response):
            return (
                f"the server at {self.base_url} does not know {response.request.method} "
                f"{response.request.url.path}: update it to this client's version"
            )
        answered = f"the server at {self.base_url} answered {response.status_code}"
        return _one_line(f"{answered}: {_detail(response)}")


MAX_REFUSAL_CHARS = 300
"""A refusal is printed as one line of at most this many characters, whatever the server sent."""


def _detail(response: httpx.Response) -> str:
    """What the server said was wrong; for a 422, each problem's field and message."""
    try:
        answer = response.json()
    except ValueError:
        return response.text[:MAX_REFUSAL_CHARS]
    detail = answer.get("detail", answer) if isinstance(answer, dict) else answer
    if not isinstance(detail, list):
        return str(detail)
    problems = []
    for error in detail:
        if not isinstance(error, dict):
            problems.append(str(error))
            continue
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        problems.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
    return "; ".join(problems)


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_REFUSAL_CHARS else text[: MAX_REFUSAL_CHARS - 1] + "…"
