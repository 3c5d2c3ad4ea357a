"""The doll's side of the server API: send what she said, receive 차차's sentences as they come."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

_LOGGER = logging.getLogger(__name__)


class ServerUnavailable(Exception):
    """The inference server cannot be reached or refused the request; the message says why."""


@dataclass(frozen=True)
class ReplySentence:
    index: int
    text: str


@dataclass(frozen=True)
class ReplyFinal:
    reply: str
    backend: str
    timings_ms: dict
    fallbacks: list[dict]
    heard: str | None = None  # audio mode: what the model heard her say


class InferenceClient:
    def __init__(self, base_url: str, token: str, *, timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._timeout = httpx.Timeout(timeout_s, connect=5.0)

    async def chat(
        self, text: str, *, conversation: str, channel: str = "doll", audio: tuple[str, bytes] | None = None
    ) -> AsyncIterator[ReplySentence | ReplyFinal]:
        """Yield each sentence as the server sends it, then the final summary.

        `audio` is (mime type, bytes) of her recording, for a server in audio mode.
        """
        body = {"conversation": conversation, "text": text, "channel": channel}
        if audio is not None:
            body["audio"] = {"mime_type": audio[0], "data": base64.b64encode(audio[1]).decode("ascii")}
        try:
            async with (
                httpx.AsyncClient(timeout=self._timeout) as http,
                http.stream("POST", f"{self.base_url}/v1/chat", json=body, headers=self._headers) as response,
            ):
                if response.status_code != 200:
                    await response.aread()
                    raise ServerUnavailable(self._refusal(response))
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "sentence":
                        yield ReplySentence(event["index"], event["text"])
                    elif event.get("type") == "final":
                        yield ReplyFinal(
                            event["reply"],
                            event["backend"],
                            event["timings_ms"],
                            event.get("fallbacks", []),
                            event.get("heard"),
                        )
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
        except (httpx.HTTPError, json.JSONDecodeError) as exc:
            raise ServerUnavailable(f"talking to {self.base_url} failed: {exc}") from None

    async def health(self) -> dict:
        return await self._request("GET", "/v1/health")

    async def _request(self, method: str, path: str, body: dict | None = None) -> dict:
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as http:
                response = await http.request(
                    method, f"{self.base_url}{path}", json=body, headers=self._headers
                )
        except httpx.HTTPError as exc:
            raise ServerUnavailable(
                f"the inference server at {self.base_url} is not reachable: {exc}"
            ) from None
        if response.status_code != 200:
            raise ServerUnavailable(self._refusal(response))
        return response.json()

    async def persona(self) -> dict:
        return await self._request("GET", "/v1/admin/persona")

    async def set_persona(self, text: str) -> dict:
        return await self._request("PUT", "/v1/admin/persona", {"text": text})

    async def reload_persona(self) -> dict:
        return await self._request("POST", "/v1/admin/persona/reload")

    def _refusal(self, response: httpx.Response) -> str:
        if response.status_code == 401:
            return (
                f"the server at {self.base_url} rejected the token: set CHACHA_API_TOKEN "
                "to the same value the server uses"
            )
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = response.text[:200]
        return f"the server at {self.base_url} answered {response.status_code}: {detail}"
