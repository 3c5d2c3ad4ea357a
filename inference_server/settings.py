"""Settings of the inference server: where it listens, what it remembers, which brains it uses."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from inference_server.backends import registry
from inference_server.shared import paths


def _registered_backend(name: str) -> str:
    """A name in llm.backends must be a registered backend (inference_server.backends.registry)."""
    return registry.get(name).name


BackendName = Annotated[str, AfterValidator(_registered_backend)]
"""A backend's name, one of those registered; an unknown one is an error naming them."""

MAX_TEXT_CHARS = 2000
"""Longest utterance the server accepts (characters)."""

MAX_BODY_BYTES = 2 * 1024 * 1024
"""Default limit of a request body (server.max_body_bytes): the largest request the doll sends,
inference_server.api.models.MAX_AUDIO_BYTES of audio as base64 (2,000,004 bytes) with
MAX_TEXT_CHARS of text, fits with room to spare (tests/test_limits.py checks it)."""

UserPath = Annotated[Path, AfterValidator(lambda path: path.expanduser())]
"""A path from the config file; "~" means the home folder of the user running the doll."""

ConversationId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$"),
]
"""A conversation's id: the doll and Telegram use the same one, so 차차 remembers both."""


def default_data_dir() -> Path:
    """Where history lives unless configured: $XDG_DATA_HOME/chachaping (~/.local/share/chachaping).

    The one definition is inference_server.shared.paths.data_dir; this name stays for its callers.
    """
    return paths.data_dir()


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Settings):
    host: str = Field("127.0.0.1", description="address to bind; 127.0.0.1 keeps it on this machine")
    port: int = Field(8750, ge=1, le=65535, description="TCP port")
    data_dir: UserPath = Field(
        default_factory=default_data_dir, description="folder for the conversation database"
    )
    min_free_mb: float = Field(
        50.0,
        ge=0,
        le=1024 * 1024,
        description=(
            "below this much free space on the data folder's disk (MB) the server stores nothing new:"
            " 차차 says that his notebook is full, writing endpoints answer 507, and health says"
            " degraded; 0 leaves only the disk's own errors"
        ),
    )
    history_turns: int = Field(
        12, ge=0, le=200, description="at most this many earlier turns (hers and his) go to the model"
    )
    history_tokens: int = Field(
        1200,
        ge=0,
        le=100_000,
        description="and at most about this many tokens of them; older turns are summarised or dropped",
    )
    summarize_history: bool = Field(
        True, description="summarise turns that leave the window with the LLM when quota allows"
    )
    summary_quota_reserve: int = Field(
        4,
        ge=0,
        le=1000,
        description="summaries wait while fewer Gemini requests than this are left to Telegram today",
    )
    max_sentences: int = Field(
        3, ge=1, le=20, description="a reply is cut after this many sentences (it is spoken aloud)"
    )
    max_body_bytes: int = Field(
        MAX_BODY_BYTES,
        ge=64 * 1024,
        le=64 * 1024 * 1024,
        description=(
            "a request body over this is answered 413 before it is read (bytes); the doll's largest"
            " request, 1.5 MB of audio as base64 with 2,000 characters of text, needs 2 MiB"
        ),
    )
    max_header_bytes: int = Field(
        16 * 1024,
        ge=1024,
        le=1024 * 1024,
        description="a request line and headers over this are answered 431 (bytes)",
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        le=300,
        description="a request's line and headers must arrive within this, else 408 and close (seconds)",
    )
    body_timeout_s: float = Field(
        30.0,
        gt=0,
        le=600,
        description=(
            "once its headers are in, a request's body must arrive within this, else 408 and close"
            " (seconds); the doll's largest, 2 MiB, needs 30 s at 560 kbit/s"
        ),
    )
    max_connections: int = Field(
        64,
        ge=1,
        le=10_000,
        description=(
            "a connection opened while this many are open is answered 503 and closed at once; the"
            " doll, the CLI and the Telegram bot need a handful"
        ),
    )
    keep_alive_s: float = Field(
        5.0, gt=0, le=300, description="an idle connection between requests is closed after (seconds)"
    )
    api_docs: bool = Field(
        False, description="serve /docs, /redoc and /openapi.json (with the bearer token, like the API)"
    )


class QuotaSettings(_Settings):
    """A model's free-tier limits. Google's day resets at midnight Pacific time."""

    requests_per_minute: int = Field(10, ge=1, description="requests in any 60 s (count)")
    tokens_per_minute: int = Field(250_000, ge=1000, description="input + output tokens in any 60 s")
    requests_per_day: int = Field(20, ge=1, description="requests per Pacific-time day (count)")
    doll_reserve: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="share of the day's requests only the doll may use (Telegram cannot spend it)",
    )
    max_wait_s: float = Field(
        2.0,
        ge=0.0,
        le=30.0,
        description="wait this long for a per-minute slot; longer waits go to the next backend at once",
    )
    backoff_s: float = Field(
        30.0, gt=0, le=3600, description="cooldown after a 429 that gives no retry delay (seconds)"
    )
    backoff_max_s: float = Field(
        900.0, gt=0, le=86_400, description="longest cooldown after repeated 429s (seconds)"
    )


class GeminiSettings(_Settings):
    model: str = Field(
        "gemini-flash-latest",
        min_length=1,
        description="Gemini model id; the default alias follows Google's current Flash model",
    )
    temperature: float = Field(0.9, ge=0.0, le=2.0, description="sampling temperature")
    max_output_tokens: int = Field(256, ge=16, le=8192, description="longest reply (tokens)")
    first_token_timeout_s: float = Field(
        6.0, gt=0, le=120, description="give up on Gemini if no text arrives within this (seconds)"
    )
    total_timeout_s: float = Field(
        20.0, gt=0, le=300, description="give up on Gemini if the reply is not done by this (seconds)"
    )
    base_url: str | None = Field(
        None, description="API endpoint override (a proxy or a test server); None = Google's"
    )
    api_version: str = Field("v1beta", description="Gemini REST API version")
    thinking_budget: int | None = Field(
        0,
        ge=-1,
        le=32_768,
        description="thinking tokens for models with a budget (0 = off, fastest; None = model default)",
    )
    safety: Literal["default", "relaxed"] = Field(
        "default",
        description="'relaxed' blocks only high-probability harm (fewer refusals of ordinary talk)",
    )
    send_audio: bool = Field(
        True,
        description=(
            "Gemini hears her recording when the doll sends it, beside the draft transcript"
            " (~32 tokens a second of audio); false = Gemini reads the transcript alone"
        ),
    )
    quota: QuotaSettings = Field(default_factory=QuotaSettings)


class OpenAISettings(_Settings):
    """Any OpenAI-compatible endpoint: Ollama, llama.cpp's server, LM Studio, vLLM, OpenAI."""

    base_url: str = Field(
        "http://127.0.0.1:11434/v1", description="the endpoint, ending in /v1 (Ollama's default here)"
    )
    model: str = Field("gemma3", min_length=1, description="model name as the endpoint knows it")
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="environment variable with the key (local servers need none)"
    )
    temperature: float = Field(0.8, ge=0.0, le=2.0, description="sampling temperature")
    max_tokens: int = Field(200, ge=16, le=8192, description="longest reply (tokens)")
    first_token_timeout_s: float = Field(
        8.0, gt=0, le=300, description="give up if no text arrives within this (seconds)"
    )
    total_timeout_s: float = Field(30.0, gt=0, le=600, description="give up after this (seconds)")


class PhrasebookSettings(_Settings):
    file: UserPath | None = Field(
        None, description="phrasebook YAML (pairs of what she says → what he answers); None = sample"
    )
    min_similarity: float = Field(
        0.35,
        ge=0.0,
        le=1.0,
        description="below this cosine similarity he says he did not catch it (0..1)",
    )


class BreakerSettings(_Settings):
    """A backend that keeps failing (timeouts, 5xx, network) is skipped for a while, so a sick
    Gemini costs her a fast fallback reply instead of a timeout every turn."""

    failures: int = Field(
        2,
        ge=1,
        le=100,
        description="this many timeouts, 5xx or network errors in a row open the breaker (count)",
    )
    open_s: float = Field(
        30.0, gt=0, le=3600, description="first cooling period: the backend is skipped this long (seconds)"
    )
    open_max_s: float = Field(
        600.0,
        gt=0,
        le=86_400,
        description="each failed probe doubles the cooling period, up to this (seconds)",
    )


class LLMSettings(_Settings):
    backends: list[BackendName] = Field(
        default_factory=lambda: ["gemini", "phrasebook"],
        min_length=1,
        description="the chain, tried in order; phrasebook should stay last as the offline net",
    )
    gemini: GeminiSettings = Field(default_factory=GeminiSettings)
    openai: OpenAISettings = Field(default_factory=OpenAISettings)
    phrasebook: PhrasebookSettings = Field(default_factory=PhrasebookSettings)
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)

    @field_validator("backends")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each backend may appear once")
        return value


class PersonaSettings(_Settings):
    file: UserPath | None = Field(None, description="persona YAML; None = the shipped 차차 persona")
    timezone: str = Field("Asia/Seoul", description="time zone for the clock in the prompt")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use a name like Asia/Seoul)") from None
        return value


class MemoryWeights(_Settings):
    """How retrieval ranks a memory: priority = importance·w + similarity·w + recency·w (each 0–1)."""

    importance: float = Field(0.15, ge=0.0, le=10.0, description="weight of how much it matters (0–1)")
    similarity: float = Field(1.0, ge=0.0, le=10.0, description="weight of how close it is to what she said")
    recency: float = Field(0.1, ge=0.0, le=10.0, description="weight of how recent it is")


class MemorySettings(_Settings):
    """차차's long-term memory of her life: what goes in, how it is found again, what it may cost."""

    enabled: bool = Field(True, description="remember across days; false = history and summary only")
    session_idle_min: float = Field(
        30.0, gt=0, le=24 * 60, description="a conversation idle this long ends its session (minutes)"
    )
    night_hour: int | None = Field(
        4,
        ge=0,
        le=23,
        description="at this local hour every open session ends, however recent (None = idle only)",
    )
    top_n: int = Field(30, ge=1, le=200, description="at most this many memories go into a prompt")
    prompt_tokens: int = Field(
        600, ge=50, le=20_000, description="and at most about this many tokens of them (buffer included)"
    )
    buffer_tokens: int = Field(
        300, ge=0, le=20_000, description="of which this conversation's own memories may take so many"
    )
    weights: MemoryWeights = Field(default_factory=MemoryWeights)
    lexical_share: float = Field(
        0.65,
        ge=0.0,
        le=1.0,
        description="share of similarity from shared words (Korean stems); the rest from embeddings",
    )
    recency_half_life_days: float = Field(
        30.0, gt=0, le=3650, description="a memory's recency halves every this many days"
    )
    min_turn_chars: int = Field(
        5, ge=0, le=200, description="her turns shorter than this (letters) are not kept as raw memories"
    )
    quota_reserve: int = Field(
        4,
        ge=0,
        le=1000,
        description="reflection waits while fewer Gemini requests than this are left to Telegram today",
    )
    retry_min: float = Field(
        60.0, gt=0, le=24 * 60, description="a reflection that could not run is tried again after (minutes)"
    )
    forget_threshold: float = Field(
        0.55,
        ge=0.0,
        le=1.0,
        description="'잊어줘 …' deletes memories at least this similar to what she named (0–1)",
    )
