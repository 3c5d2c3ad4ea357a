"""The HTTP API: POST /v1/chat streams 차차's reply sentence by sentence; GET /v1/health;
PATCH /v1/conversations/{conversation}/turns/{turn_id} corrects what she said."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse

from inference_server import __version__
from inference_server.api.models import (
    NDJSON,
    ChatRequest,
    Health,
    PersonaText,
    StoredTurn,
    TurnText,
    encode_event,
)
from inference_server.backends.base import AudioClip
from inference_server.chat import ChatService
from inference_server.errors import InferenceError
from inference_server.settings import ConversationId
from inference_server.store import NotHerTurn, UnknownTurn

_LOGGER = logging.getLogger(__name__)


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
    async def health() -> JSONResponse:
        answer = Health(
            status="ok",
            version=__version__,
            backend=chat.preferred_backend(),
            backends=chat.backend_status(),
            hears_audio=chat.hears_audio(),
        )
        return JSONResponse(answer.model_dump(mode="json"))

    @app.post("/v1/chat")
    async def chat_turn(request: ChatRequest) -> StreamingResponse:
        audio = AudioClip(request.audio.mime_type, request.audio.decoded()) if request.audio else None

        async def events() -> AsyncIterator[bytes]:
            async for event in chat.reply(request.conversation, request.text, request.channel, audio=audio):
                yield encode_event(event)

        return StreamingResponse(events(), media_type=NDJSON)

    @app.patch("/v1/conversations/{conversation}/turns/{turn_id}")
    async def correct_turn(conversation: ConversationId, turn_id: int, body: TurnText) -> JSONResponse:
        """Replace the text of one of her stored turns (the doll's better transcript of it)."""
        try:
            turn = await asyncio.to_thread(chat.store.correct, turn_id, conversation, body.text)
        except UnknownTurn as exc:
            return JSONResponse({"detail": str(exc)}, status_code=404)
        except NotHerTurn as exc:
            return JSONResponse({"detail": str(exc)}, status_code=409)
        _LOGGER.info("turn %d of %s corrected (%d characters)", turn_id, conversation, len(body.text))
        answer = StoredTurn(
            id=turn.id,
            conversation=turn.conversation,
            role=turn.role,
            text=turn.text,
            heard=turn.heard,
            source=turn.source,
            channel=turn.channel,
        )
        return JSONResponse(answer.model_dump(mode="json"))

    @app.get("/v1/admin/persona")
    async def get_persona() -> dict:
        book = chat.persona
        return {"path": str(book.path), "name": book.current.name, "text": book.text()}

    @app.put("/v1/admin/persona")
    async def put_persona(body: PersonaText) -> JSONResponse:
        try:
            persona = await asyncio.to_thread(chat.persona.save, body.text)
        except InferenceError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=422)
        _LOGGER.info("persona replaced through the admin API (%s)", chat.persona.path)
        return JSONResponse({"path": str(chat.persona.path), "name": persona.name})

    @app.post("/v1/admin/persona/reload")
    async def reload_persona() -> JSONResponse:
        try:
            persona = await asyncio.to_thread(chat.persona.reload)
        except InferenceError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=422)
        _LOGGER.info("persona reloaded from %s", chat.persona.path)
        return JSONResponse({"path": str(chat.persona.path), "name": persona.name})

    app.add_middleware(BearerAuth, token=token)
    return app
