"""What every LLM backend looks like to the chat service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from inference_server.store import Role


@dataclass(frozen=True)
class HistoryTurn:
    role: Role
    text: str


@dataclass(frozen=True)
class AudioClip:
    """Her utterance as sound, for a backend that can hear (Gemini's audio mode)."""

    mime_type: str  # audio/ogg, audio/flac or audio/wav
    data: bytes


@dataclass(frozen=True)
class LLMRequest:
    conversation: str
    text: str  # what she said; in audio mode what speech recognition made of it
    system_instruction: str
    history: tuple[HistoryTurn, ...] = field(default_factory=tuple)
    channel: str = "doll"
    audio: AudioClip | None = None
    summary: str | None = None  # what was said before the history window, summarised
    memories: str | None = None  # what he remembers of her life (a prompt section, headed)
    max_output_tokens: int | None = None  # None = the backend's default (`stream` takes it too)
    json: bool = False  # for `complete`: ask for a JSON answer
    tentative: bool = False  # the doll may drop the reply unheard: never spend its quota reserve

    def instruction(self) -> str:
        """The system instruction with the summary and the memories added (each under a heading)."""
        text = self.system_instruction
        if self.memories:
            text += f"\n\n{self.memories}"
        if self.summary:
            text += f"\n\n## Earlier today (summary)\n{self.summary}"
        return text


@dataclass(frozen=True)
class StreamEnd:
    """Sent last by a backend that knows more than the text: a reply cut at the token limit."""

    truncated: bool = False


HEARD_OPEN, HEARD_CLOSE = "⟦", "⟧"
"""In audio mode the model first writes what it heard between these marks."""


class BackendError(Exception):
    """A backend could not answer this turn; the chain moves on to the next one.

    `reason` is a short machine-readable word (rate_limited, server_error, timeout,
    blocked, auth, bad_request, network, empty) that is logged and reported to the client.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class LLMBackend(Protocol):
    name: str

    @property
    def unavailable_reason(self) -> str | None:
        """None when the backend can be asked; otherwise why not (shown in /v1/health)."""

    @property
    def hears_audio(self) -> bool:
        """True when it listens to a recording attached to the request (audio mode).

        A backend without this property hears no audio: it answers the text alone.
        """
        return False

    def stream(self, request: LLMRequest) -> AsyncIterator[str | StreamEnd]:
        """Yield the reply's text as it is produced (then maybe a StreamEnd); raise BackendError."""

    async def complete(self, request: LLMRequest) -> str:
        """The whole reply at once (used to summarise old history); raise BackendError."""
