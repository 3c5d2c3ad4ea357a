"""The HTTP API: POST /v1/chat streams 차차's reply sentence by sentence; GET /v1/health."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import AsyncIterator
from typing import Literal

from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from inference_server import __version__
from inference_server.chat import ChatService
from inference_server.settings import MAX_TEXT_CHARS, ConversationId

_LOGGER = logging.getLogger(__name__)

NDJSON = "application/x-ndjson"


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conversation: ConversationId = "jinju"
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS, description="what she said")
    channel: Literal["doll", "telegram", "cli"] = "doll"

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("text is empty")
        return value


class BearerAuth:
    """Pure ASGI middleware: every /v1 request needs `Authorization: Bearer <token>`.

    It runs before routing and body parsing, so a caller without the token learns
    nothing, not even whether its JSON was valid.
    """

    def __init__(self, app, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1"):
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self._expected):
                response = JSONResponse(
                    {"detail": "missing or wrong bearer token"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(chat: ChatService, *, token: str) -> FastAPI:
    if not token:
        raise ValueError("the API token must not be empty")
    app = FastAPI(title="Chachaping inference server", version=__version__)

    @app.get("/v1/health")
    async def health() -> dict:
        return {
            "status": "ok",
            "version": __version__,
            "backend": chat.preferred_backend(),
            "backends": chat.backend_status(),
        }

    @app.post("/v1/chat")
    async def chat_turn(request: ChatRequest) -> StreamingResponse:
        async def events() -> AsyncIterator[bytes]:
            async for event in chat.reply(request.conversation, request.text, request.channel):
                yield json.dumps(event.as_json(), ensure_ascii=False).encode() + b"\n"

        return StreamingResponse(events(), media_type=NDJSON)

    app.add_middleware(BearerAuth, token=token)
    return app
