"""A backend double for memory tests: it answers every reflection with the memories and insights
it was given, in the JSON shape reflection asks the model for."""

from __future__ import annotations

import json
from collections.abc import Sequence

from inference_server.backends.base import BackendError, LLMRequest


class Reflecting:
    """Answers every reflection as :meth:`answer_with` says (nothing remembered until then). Its
    ``requests`` are what it was asked."""

    name = "reflecting"
    unavailable_reason = None

    def __init__(self) -> None:
        self.answer = json.dumps({"memories": [], "insights": []})
        self.requests: list[LLMRequest] = []

    def answer_with(
        self, facts: Sequence[tuple[str, Sequence[int]]], insights: Sequence[tuple[str, Sequence[int]]] = ()
    ) -> None:
        """``facts``: (text, her turn ids); ``insights``: (text, the indexes of the facts they
        rest on, from 0)."""
        self.answer = json.dumps(
            {
                "memories": [{"text": t, "importance": 0.8, "turns": list(ids)} for t, ids in facts],
                "insights": [{"text": t, "importance": 0.6, "reasons": list(on)} for t, on in insights],
            },
            ensure_ascii=False,
        )

    async def complete(self, request: LLMRequest) -> str:
        self.requests.append(request)
        return self.answer

    async def stream(self, request: LLMRequest):
        raise BackendError("unavailable", "this double only reflects")
        yield ""  # an async generator, as every backend's stream
