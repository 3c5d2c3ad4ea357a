"""차차's long-term memory: observations of her life, found again by importance, similarity and
recency, reflected on once a session ends (see docs/memory.md)."""

from inference_server.memory.service import Context, Forgotten, Found, MemoryService, ReflectionOutcome
from inference_server.memory.store import Memory
from inference_server.memory.text import ForgetRequest, forget_request

__all__ = [
    "Context",
    "ForgetRequest",
    "Forgotten",
    "Found",
    "Memory",
    "MemoryService",
    "ReflectionOutcome",
    "forget_request",
]
