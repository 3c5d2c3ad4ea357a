"""The HTTP API: POST /v1/chat streams 차차's reply sentence by sentence; GET /v1/health;
POST /v1/tentative/{request_id} keeps a tentative reply she is about to hear;
PATCH /v1/conversations/{conversation}/turns/{turn_id} corrects what she said;
POST /v1/conversations/{conversation}/turns/{reply_id}/heard keeps only what she heard of his reply;
DELETE /v1/conversations/{conversation} deletes a history; /v1/memory lists, searches, adds,
forgets and reflects on his long-term memory; GET /v1/forgets lists what was forgotten (digests)
for the Telegram collector."""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging
import sqlite3
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import FastAPI, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse

from inference_server import __version__
from inference_server.api.models import (
    MAX_ID,
    NDJSON,
    ChatRequest,
    ForgetEntry,
    ForgetLog,
    Health,
    HeardSentences,
    HistoryDeleted,
    MemoriesForgotten,
    MemoryHit,
    MemoryItem,
    MemoryList,
    MemoryScore,
    MemorySearch,
    MemoryStatus,
    NewMemory,
    PersonaText,
    Reflect,
    ReflectionReport,
    SessionReflection,
    StoredId,
    StoredTurn,
    TurnText,
    encode_event,
)
from inference_server.backends.base import AudioClip
from inference_server.chat import ChatService
from inference_server.disk import DiskGuard, is_disk_full
from inference_server.errors import InferenceError
from inference_server.limits import BodyLimit, validation_failed
from inference_server.memory import Memory, MemoryService
from inference_server.settings import ConversationId, ServerSettings
from inference_server.store import NotHerTurn, NotHisTurn, UnknownTurn

_LOGGER = logging.getLogger(__name__)


class BearerAuth:
    """Pure ASGI middleware: every request needs `Authorization: Bearer <token>`.

    It runs before routing, the body limit and body parsing, so a caller without the token
    learns nothing: not whether a path exists, nor whether its body was too large or its JSON
    valid. The API docs, where `server.api_docs` turns them on, are behind it too.
    """

    def __init__(self, app, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self._expected):
                response = JSONResponse(
                    {"detail": "missing or wrong bearer token"},
                    status_code=401,
                    # closing the connection stops the server reading a stranger's body at all
                    headers={"WWW-Authenticate": "Bearer", "Connection": "close"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class DiskFullAnswer:
    """Pure ASGI middleware: a request whose write finds the data folder's disk full
    (`is_disk_full`) is answered 507 with what to do, not a bare 500 with a traceback, and the
    guard is told (it logs the state once). Any other error, and one after the answer has begun,
    goes on as before."""

    def __init__(self, app, guard: DiskGuard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except (sqlite3.Error, OSError) as exc:
            if started or not is_disk_full(exc):
                raise
            status = await asyncio.to_thread(self.guard.failed, exc)
            refusal = JSONResponse({"detail": self.guard.refusal(status)}, status_code=507)
            await refusal(scope, receive, send)


def _item(memory: Memory) -> MemoryItem:
    return MemoryItem.model_validate(dataclasses.asdict(memory))


def _memory_status(memory: MemoryService) -> MemoryStatus:
    counts = memory.store.status()
    return MemoryStatus(memories=counts[0], waiting_sessions=counts[1], last_outcome=counts[2])


def _answer(model) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"))


def _memory_off() -> JSONResponse:
    return JSONResponse(
        {"detail": "long-term memory is off on this server (memory.enabled: false in its config)"},
        status_code=409,
    )


def create_app(chat: ChatService, *, token: str, settings: ServerSettings | None = None) -> FastAPI:
    """The API for `chat`, behind the bearer `token`, with the limits of `settings` (default:
    ServerSettings()): the body limit, and the API docs only where they are turned on."""
    if not token:
        raise ValueError("the API token must not be empty")
    settings = ServerSettings() if settings is None else settings
    docs = settings.api_docs
    app = FastAPI(
        title="Chachaping inference server",
        version=__version__,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
        # A path with a trailing slash is no route (404), not a 307 to another URL: the clients
        # know the paths, and a redirect is one more answer for every client to handle.
        redirect_slashes=False,
    )
    app.add_exception_handler(RequestValidationError, validation_failed)

    def disk_is_full(status) -> JSONResponse:
        return JSONResponse({"detail": chat.disk.refusal(status)}, status_code=507)

    async def no_room() -> JSONResponse | None:
        """507 before a write that adds something, while the data folder's disk is full."""
        status = await asyncio.to_thread(chat.disk.check)
        return disk_is_full(status) if status.full else None

    @app.get("/v1/health")
    async def health() -> JSONResponse:
        disk = await asyncio.to_thread(chat.disk.check)
        answer = Health(
            status="degraded" if disk.full else "ok",
            version=__version__,
            backend=chat.preferred_backend(),
            backends=chat.backend_status(),
            hears_audio=chat.hears_audio(),
            memory=None if chat.memory is None else await asyncio.to_thread(_memory_status, chat.memory),
            reason=f"the data folder's disk is full: {disk.reason}" if disk.full else None,
            disk=disk,
            clock=chat.clock_status(),
        )
        return JSONResponse(answer.model_dump(mode="json"))

    @app.post("/v1/chat", response_model=None)
    async def chat_turn(request: ChatRequest) -> StreamingResponse | JSONResponse:
        audio = AudioClip(request.audio.mime_type, request.audio.decoded()) if request.audio else None
        if request.tentative is not None and (reason := chat.tentative_refusal()) is not None:
            return JSONResponse({"detail": f"no tentative reply now: {reason}"}, status_code=409)

        async def events() -> AsyncIterator[bytes]:
            async for event in chat.reply(
                request.conversation, request.text, request.channel, audio=audio, tentative=request.tentative
            ):
                yield encode_event(event)

        return StreamingResponse(events(), media_type=NDJSON)

    @app.post("/v1/tentative/{request_id}")
    async def keep_tentative(request_id: str) -> JSONResponse:
        """She is hearing the tentative reply ``request_id`` begin: store it as any other."""
        if not chat.keep(request_id):
            return JSONResponse(
                {"detail": f"no tentative reply {request_id} is being answered: it ended or was dropped"},
                status_code=404,
            )
        return JSONResponse({"kept": request_id})

    @app.patch("/v1/conversations/{conversation}/turns/{turn_id}")
    async def correct_turn(conversation: ConversationId, turn_id: StoredId, body: TurnText) -> JSONResponse:
        """Replace the text of one of her stored turns (the doll's better transcript of it)."""
        if (full := await no_room()) is not None:
            return full
        try:
            turn = await asyncio.to_thread(chat.store.correct, turn_id, conversation, body.text)
        except UnknownTurn as exc:
            return JSONResponse({"detail": str(exc)}, status_code=404)
        except NotHerTurn as exc:
            return JSONResponse({"detail": str(exc)}, status_code=409)
        _LOGGER.info("turn %d of %s corrected (%d characters)", turn_id, conversation, len(body.text))
        if chat.memory is not None and turn.source != "forget":
            await asyncio.to_thread(chat.memory.turn_corrected, conversation, turn_id, turn.text)
        return _answer(StoredTurn.model_validate(dataclasses.asdict(turn)))

    @app.post("/v1/conversations/{conversation}/turns/{turn_id}/heard")
    async def interrupted_reply(
        conversation: ConversationId, turn_id: StoredId, body: HeardSentences
    ) -> JSONResponse:
        """She stopped his reply (a barge-in): keep only the sentences she heard of it."""
        try:
            turn = await asyncio.to_thread(chat.store.interrupt_reply, turn_id, conversation, body.sentences)
        except UnknownTurn as exc:
            return JSONResponse({"detail": str(exc)}, status_code=404)
        except NotHisTurn as exc:
            return JSONResponse({"detail": str(exc)}, status_code=409)
        heard = len(body.sentences)
        _LOGGER.info("reply %d of %s interrupted after %d sentence(s)", turn_id, conversation, heard)
        return _answer(StoredTurn.model_validate(dataclasses.asdict(turn)))

    @app.delete("/v1/conversations/{conversation}")
    async def delete_history(conversation: ConversationId) -> JSONResponse:
        """Delete a conversation's whole history (its turns and summaries); memories stay."""
        turns, summaries = await asyncio.to_thread(chat.store.delete_conversation, conversation)
        _LOGGER.info("history of %s deleted: %d turns, %d summaries", conversation, turns, summaries)
        return _answer(HistoryDeleted(conversation=conversation, turns=turns, summaries=summaries))

    @app.get("/v1/forgets")
    async def forget_log(after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0) -> JSONResponse:
        """What was forgotten since forgetting `after`, as digests, for the Telegram collector."""
        records = await asyncio.to_thread(chat.store.forgets, after)
        return _answer(
            ForgetLog(forgets=tuple(ForgetEntry.model_validate(dataclasses.asdict(r)) for r in records))
        )

    def memory() -> MemoryService | None:
        return chat.memory

    @app.get("/v1/memory")
    async def list_memories(conversation: ConversationId = "jinju") -> JSONResponse:
        if (service := memory()) is None:
            return _memory_off()
        memories = await asyncio.to_thread(service.list, conversation)
        return _answer(MemoryList(conversation=conversation, memories=tuple(_item(m) for m in memories)))

    @app.get("/v1/memory/search")
    async def search_memories(
        q: str = Query(min_length=1, max_length=2000, description="what to search for"),
        limit: int = Query(10, ge=1, le=200),
        conversation: ConversationId = "jinju",
    ) -> JSONResponse:
        if (service := memory()) is None:
            return _memory_off()
        found = await asyncio.to_thread(service.search, conversation, q, limit=limit, now=chat.now())
        results = tuple(
            MemoryHit(
                memory=_item(f.memory),
                score=MemoryScore(
                    priority=f.score.priority,
                    importance=f.score.importance,
                    similarity=f.score.similarity,
                    recency=f.score.recency,
                    dense=f.score.dense,
                    lexical=f.score.lexical,
                ),
            )
            for f in found
        )
        return _answer(MemorySearch(conversation=conversation, query=q, results=results))

    @app.post("/v1/memory")
    async def add_memory(body: NewMemory) -> JSONResponse:
        if (service := memory()) is None:
            return _memory_off()
        if (full := await no_room()) is not None:
            return full
        added = await asyncio.to_thread(
            service.add,
            body.conversation,
            body.text,
            importance=body.importance,
            now=chat.now(),
            cues=body.cues,
        )
        _LOGGER.info("memory %d added to %s by hand", added.id, body.conversation)
        return _answer(_item(added))

    @app.delete("/v1/memory/{memory_id}")
    async def forget_memory(memory_id: StoredId, conversation: ConversationId = "jinju") -> JSONResponse:
        if (service := memory()) is None:
            return _memory_off()
        forgotten = await asyncio.to_thread(service.forget_ids, conversation, [memory_id])
        if not forgotten.memories:
            detail = f"conversation {conversation!r} has no memory {memory_id}: see `chacha memory list`"
            return JSONResponse(
                {"detail": detail},
                status_code=404,
            )
        _LOGGER.info(
            "memory %d of %s forgotten (%d in all)", memory_id, conversation, len(forgotten.memories)
        )
        return _answer(
            MemoriesForgotten(
                conversation=conversation,
                deleted=len(forgotten.memories),
                ids=tuple(m.id for m in forgotten.memories),
                turns_erased=len(forgotten.turns),
            )
        )

    @app.delete("/v1/memory")
    async def forget_all(conversation: ConversationId = "jinju", all: bool = False) -> JSONResponse:  # noqa: A002
        if (service := memory()) is None:
            return _memory_off()
        if not all:
            return JSONResponse(
                {"detail": "to delete every memory of the conversation, ask with all=true"}, status_code=422
            )
        deleted = await asyncio.to_thread(service.forget_all, conversation)
        _LOGGER.info("all %d memories of %s forgotten", deleted, conversation)
        return _answer(MemoriesForgotten(conversation=conversation, deleted=deleted))

    @app.post("/v1/memory/reflect")
    async def reflect_now(body: Reflect) -> JSONResponse:
        """End the conversation's session now and reflect on every ended session that waits."""
        if (service := memory()) is None:
            return _memory_off()
        if (full := await no_room()) is not None:
            return full
        now = chat.now()
        await asyncio.to_thread(service.end_session, body.conversation, now)
        outcomes = await service.reflect_due(now, force=True, conversation=body.conversation)
        sessions = tuple(
            SessionReflection(
                session_id=o.session_id,
                status=o.status,
                detail=o.detail,
                memories=o.facts,
                insights=o.insights,
            )
            for o in outcomes
        )
        return _answer(ReflectionReport(conversation=body.conversation, sessions=sessions))

    @app.get("/v1/admin/persona")
    async def get_persona() -> dict:
        book = chat.persona
        return {"path": str(book.path), "name": book.current.name, "text": book.text()}

    @app.put("/v1/admin/persona")
    async def put_persona(body: PersonaText) -> JSONResponse:
        if (full := await no_room()) is not None:
            return full
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

    # The last added runs first: the token is checked before the body's size.
    app.add_middleware(DiskFullAnswer, guard=chat.disk)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(BearerAuth, token=token)
    return app
