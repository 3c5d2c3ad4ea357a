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
class LLMRequest:
    conversation: str
    text: str
    system_instruction: str
    history: tuple[HistoryTurn, ...] = field(default_factory=tuple)


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

    def stream(self, request: LLMRequest) -> AsyncIterator[str]:
        """Yield the reply's text as it is produced; raise BackendError when it fails."""
