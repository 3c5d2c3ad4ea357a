"""The server–client contract, defined once: what the server writes and what its clients read.

The server builds these models and writes them; the clients (the doll, the CLI, the Telegram
bot) parse the server's answers into them and read attributes, never string keys. Readers
ignore keys they do not know, so a newer server can add some; a renamed or missing key is a
validation error that names it.

POST /v1/chat answers NDJSON: one `SentenceEvent` line per sentence as soon as it is complete,
then one `FinalEvent`. `encode_event` writes a line, `decode_event` reads one.
PATCH /v1/conversations/{conversation}/turns/{turn_id} takes a `TurnText` and answers the
corrected `StoredTurn`.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    field_validator,
    model_serializer,
    model_validator,
)

from inference_server.settings import MAX_TEXT_CHARS, ConversationId
from inference_server.shared.text import mend_any, mend_text

NDJSON = "application/x-ndjson"


def _non_blank(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("text is empty")
    return value


class _Answer(BaseModel):
    """What the server answers: immutable, and unknown keys are ignored when read."""

    model_config = ConfigDict(frozen=True, extra="ignore")


# --- requests ----------------------------------------------------------------------------------


class _Request(BaseModel):
    """What a client sends: unknown keys are refused, and broken Unicode is mended first.

    JSON may carry a lone UTF-16 surrogate (``"\\ud800"``) that no UTF-8 file, SQLite row or
    JSON answer can hold. Every string of a request (keys included) is mended before it is
    validated: a lone surrogate becomes U+FFFD (�), an escaped pair becomes its character.
    Mending, not a 422, because such text comes from her, not from a broken client: a message
    cut inside an emoji (UTF-16 clients, Telegram's splits) should still be answered, and the
    one character lost is the one that was already broken. What is left is then checked as
    usual, so a mended conversation id is still refused with 422 by its pattern.
    """

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _mend_unicode(cls, data: Any) -> Any:
        return mend_any(data)


MAX_ID = 2**63 - 1
"""The largest id the server stores: SQLite's INTEGER is a signed 64-bit number."""

StoredId = Annotated[int, Field(ge=1, le=MAX_ID)]
"""The id of a stored turn or memory wherever a request names one (path, query or body): a whole
number from 1 to MAX_ID. Anything else (0, negative, 2^63 and above, a string of 5,000 digits)
is a 422 naming the parameter before SQLite sees it; SQLite cannot hold a larger number, and
the OverflowError it raised was a 500."""


MAX_AUDIO_BYTES = 1_500_000
"""Largest utterance audio accepted (about 90 s of 16 kHz Opus, or 45 s of FLAC)."""


class AudioPayload(_Request):
    mime_type: Literal["audio/ogg", "audio/flac", "audio/wav"] = Field(description="the encoding")
    data: str = Field(
        description="the recording, base64", min_length=4, max_length=MAX_AUDIO_BYTES * 4 // 3 + 4
    )

    @field_validator("data")
    @classmethod
    def _base64(cls, value: str) -> str:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("data is not base64") from None
        return value

    def decoded(self) -> bytes:
        return base64.b64decode(self.data)


class PersonaText(_Request):
    text: str = Field(min_length=1, max_length=100_000, description="the whole persona YAML")


class ChatRequest(_Request):
    conversation: ConversationId = "jinju"
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS, description="what she said")
    channel: Literal["doll", "telegram", "cli"] = "doll"
    audio: AudioPayload | None = Field(None, description="her utterance as sound (audio mode)")
    tentative: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]{8,64}$",
        description="the doll's id for a reply asked for before she has surely finished: nothing "
        "is stored until POST /v1/tentative/{id} keeps it; closing the stream drops it",
    )

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        return _non_blank(value)


MAX_CORRECTION_CHARS = 4000
"""Longest corrected text of her turn accepted (characters)."""


class TurnText(_Request):
    """The new text of one of her stored turns: what a better recogniser heard her say."""

    text: str = Field(min_length=1, max_length=MAX_CORRECTION_CHARS, description="what she said")

    @field_validator("text", mode="before")
    @classmethod
    def _not_blank(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if not value:
                raise ValueError("text is empty: send what she said")
        return value


class HeardSentences(_Request):
    """The sentences of his reply she heard before she stopped him, as the server sent them."""

    sentences: list[str] = Field(
        max_length=20, description="the first sentences of the reply, in order; [] if she heard none"
    )

    @field_validator("sentences")
    @classmethod
    def _short(cls, value: list[str]) -> list[str]:
        if any(len(sentence) > MAX_CORRECTION_CHARS for sentence in value):
            raise ValueError(f"a sentence is over {MAX_CORRECTION_CHARS} characters")
        return value


# --- POST /v1/chat: the NDJSON events ---------------------------------------------------------


class SentenceEvent(_Answer):
    """A whole sentence of the reply, sent as soon as it is complete."""

    type: Literal["sentence"] = "sentence"
    index: int
    text: str
    # The id his reply is stored under, so far: POST .../turns/{reply_id}/heard keeps only what
    # she heard when she stops him. None from servers before it.
    reply_id: int | None = None


class Timings(_Answer):
    first_sentence: float | None  # ms; None when no sentence was sent
    total: float  # ms


class FallbackInfo(_Answer):
    """A backend that did not answer this turn, and why (`unavailable`, `rate_limited`, …)."""

    backend: str
    reason: str
    detail: str


class FinalEvent(_Answer):
    """The end of a turn: the whole reply, which backend made it, and how long it took."""

    type: Literal["final"] = "final"
    conversation: str
    reply: str
    backend: str
    heard: str | None = None  # audio mode: what the model heard her say
    # The id her turn is stored under: PATCH /v1/conversations/{conversation}/turns/{turn_id}
    # replaces its text (with the doll's better transcript). None from servers before it.
    turn_id: int | None = None
    reply_id: int | None = None  # his reply's stored id (as in each sentence); None if he said nothing
    timings_ms: Timings
    fallbacks: tuple[FallbackInfo, ...] = ()
    # Her turn asked him to forget (backend "memory"): the forgetting's id in GET /v1/forgets, so
    # a client that keeps her words too (the Telegram collector) applies it now; the request and
    # the reply are never to be kept as words of hers and his. Absent otherwise.
    forget_id: int | None = None

    @model_serializer(mode="wrap")
    def _without_forget_id(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        if data.get("forget_id") is None:
            data.pop("forget_id", None)
        return data


ChatEvent = Annotated[SentenceEvent | FinalEvent, Field(discriminator="type")]
CHAT_EVENT: TypeAdapter[SentenceEvent | FinalEvent] = TypeAdapter(ChatEvent)


def encode_event(event: SentenceEvent | FinalEvent) -> bytes:
    """One NDJSON line: `json.dumps` spacing, UTF-8 text as it is, then a newline.

    A model's reply may hold a lone surrogate (an emoji split across two streamed pieces): it
    is mended (`mend_text`) rather than failing the turn half-way through its answer.
    """
    line = json.dumps(event.model_dump(mode="json"), ensure_ascii=False)
    return mend_text(line).encode() + b"\n"


def decode_event(line: str | bytes) -> SentenceEvent | FinalEvent:
    """Read one NDJSON line; a pydantic ValidationError names what is wrong with it."""
    return CHAT_EVENT.validate_json(line)


# --- PATCH /v1/conversations/{conversation}/turns/{turn_id} ------------------------------------


class StoredTurn(_Answer):
    """One turn as the server keeps it in the conversation's history."""

    id: int
    conversation: str
    role: str  # user (hers) or model (차차's)
    text: str  # as typed, or as speech recognition heard it
    heard: str | None  # audio mode: what the model itself heard her say (it goes to the model first)
    source: str  # hers: text (typed) | stt (speech recognition); his: text | cut | interrupted
    channel: str  # doll | telegram | cli


# --- GET /v1/health -----------------------------------------------------------------------------


class QuotaStatus(_Answer):
    """A Gemini model's use of its free-tier quota, as the server's ledger counts it."""

    model: str
    requests_today: int
    requests_per_day: int
    left_today: int
    left_today_for_telegram: int
    requests_last_minute: int
    requests_per_minute: int
    tokens_last_minute: int
    tokens_per_minute: int
    cooldown_s: float
    cooldown_reason: str | None
    resets_in_s: int


class BreakerStatus(_Answer):
    """A backend's circuit breaker: whether turns ask it now, or skip it after repeated failures."""

    # closed: asked every turn · open: skipped until `until` · half_open: its cooling period is
    # over and one trial (a small probe in the background) decides. Read as text: a newer server
    # may add a state.
    state: str
    failures: int  # timeouts, 5xx and network errors in a row (a success starts it again at 0)
    until: float | None = None  # open: epoch seconds (the server's clock) when it may be tried again
    retry_in_s: float = 0.0  # open: seconds from now until then
    last_failure: str | None = None  # "reason: detail" of the failure that counted last
    opened: int = 0  # times it opened in a row without closing: the cooling period doubles with each


class BackendStatus(_Answer):
    name: str
    available: bool
    reason: str | None  # why it is off; None when available
    hears_audio: bool = False  # it listens to a recording sent with the text (Gemini with send_audio)
    quota: QuotaStatus | None = None  # only backends with a quota ledger; the key is absent otherwise
    breaker: BreakerStatus | None = None  # None from servers before the breaker; the key is absent then

    @model_serializer(mode="wrap")
    def _without_missing_parts(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        for key in ("quota", "breaker"):
            if data.get(key) is None:
                data.pop(key, None)
        return data


class MemoryStatus(_Answer):
    """The long-term memory at a glance (all conversations)."""

    memories: int
    waiting_sessions: int  # ended sessions whose reflection has not run yet
    last_outcome: str | None = None  # what the newest reflection did or why it waits


class DiskStatus(_Answer):
    """The disk of the server's data folder: when it is full the server stores nothing new (차차
    says so instead of answering, writing endpoints answer 507) until space is freed."""

    path: str  # the data folder (server.data_dir)
    free_bytes: int  # free for the server's user on its disk (-1: could not be read)
    min_free_bytes: int  # server.min_free_mb: below it the disk counts as full
    full: bool
    reason: str | None = None  # why it counts as full: too little free space, or a write that failed


class ClockStatus(_Answer):
    """The server's clock (a Pi has no real-time clock; docs/reliability.md)."""

    synchronized: bool  # NTP has set the system clock (True where it cannot be told)
    behind_s: float = 0.0  # > 0: the system clock reads this far before the server's, which is used


class Health(_Answer):
    # "ok", or "degraded" with `reason` (the disk of the data folder is full). Read as text: a
    # newer server may add a status.
    status: str
    version: str
    backend: str  # the backend that would answer now ("none" if none can)
    backends: tuple[BackendStatus, ...]
    # Whether that backend hears her recording: if so the doll sends it with a quick draft
    # transcript; if not it waits for its best transcript. Older servers leave it out: False.
    hears_audio: bool = False
    memory: MemoryStatus | None = None  # None: memory is off (or a server from before it)
    reason: str | None = None  # why the status is not "ok"
    disk: DiskStatus | None = None  # None from servers before it
    clock: ClockStatus | None = None  # None from servers before it, or one given a plain clock


# --- /v1/memory: 차차's long-term memory ---------------------------------------------------------

MAX_MEMORY_CHARS = 300
"""Longest memory sentence accepted from the developer (characters)."""


class MemoryItem(_Answer):
    """One memory as the server keeps it."""

    id: int
    conversation: str
    kind: str  # turn (her words, before reflection) | observation | insight
    text: str
    importance: float  # 0–1
    channel: str  # doll | telegram | cli | reflection | developer
    state: str  # buffer (this session's) | long
    created_at: float  # epoch seconds
    turn_ids: tuple[int, ...] = ()
    reason_ids: tuple[int, ...] = ()  # an insight's memories
    cues: tuple[str, ...] = ()


class MemoryScore(_Answer):
    """Why a memory ranked where it did: priority = the weighted sum of the next three."""

    priority: float
    importance: float
    similarity: float
    recency: float
    dense: float  # the embeddings' cosine
    lexical: float  # shared words (BM25 over Korean stems), as a share of the best possible


class MemoryHit(_Answer):
    memory: MemoryItem
    score: MemoryScore


class MemoryList(_Answer):
    conversation: str
    memories: tuple[MemoryItem, ...]


class MemorySearch(_Answer):
    conversation: str
    query: str
    results: tuple[MemoryHit, ...]


class NewMemory(_Request):
    """A memory the developer adds by hand."""

    conversation: ConversationId = "jinju"
    text: Annotated[str, AfterValidator(_non_blank)] = Field(
        min_length=1, max_length=MAX_MEMORY_CHARS, description="the memory, one sentence"
    )
    importance: float | None = Field(None, ge=0.0, le=1.0, description="0–1; None = 0.7")
    cues: list[str] = Field(default_factory=list, max_length=24, description="words it should come up for")


class MemoriesForgotten(_Answer):
    conversation: str
    deleted: int  # memories deleted (insights resting on them included)
    ids: tuple[int, ...] = ()
    turns_erased: int = 0  # turns of the history whose words were erased with them


class ForgetEntry(_Answer):
    """One forgetting, for another store of her words to apply: digests, never the words.

    `said`: `said_digest` of each erased turn's text; a message with the same text is forgotten.
    `words`: (length, `word_digest`) of each word of a forgotten topic; a message said before
    `created_at` that holds at least half of them is forgotten (inference_server.shared.text).
    """

    id: int
    conversation: str
    created_at: float
    said: tuple[str, ...] = ()
    words: tuple[tuple[int, str], ...] = ()


class ForgetLog(_Answer):
    forgets: tuple[ForgetEntry, ...]


class Reflect(_Request):
    conversation: ConversationId = "jinju"


class SessionReflection(_Answer):
    session_id: int
    status: str  # reflected | postponed | raw | nothing
    detail: str
    memories: int = 0
    insights: int = 0


class ReflectionReport(_Answer):
    conversation: str
    sessions: tuple[SessionReflection, ...]


# --- DELETE /v1/conversations/{conversation} ---------------------------------------------------


class HistoryDeleted(_Answer):
    conversation: str
    turns: int
    summaries: int
