"""Every LLM backend the server knows, registered once with what it can do.

A backend is one module (its class and a ``build(context)`` function) plus one line in
``_BUILT_IN`` below, or one :func:`register` call made before the config is read (a test's toy
backend). ``llm.backends`` is validated against the registry, the runtime builds the chain from
it, and the chain, the CLI and the doll read a backend's abilities and names from it; nothing
else lists backends by name.

This module imports no backend: a built-in one is imported when it is built, so reading the
config does not load the Gemini or OpenAI SDKs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from inference_server.shared.registry import Registry, resolve
from inference_server.shared.registry import RegistryError as RegistryError  # raised here, caught by callers

if TYPE_CHECKING:
    from inference_server.backends.base import LLMBackend
    from inference_server.quota import QuotaLedger
    from inference_server.settings import LLMSettings, ServerSettings
    from inference_server.shared.clock import WallClock
    from inference_server.shared.secrets import Secrets


@dataclass(frozen=True)
class BuildContext:
    """What a backend's ``build`` may use: the settings, the secrets, the server's clock, and the
    quota ledger (made once, for the backends that declare ``quota``; None for the others)."""

    server: ServerSettings
    llm: LLMSettings
    secrets: Secrets
    clock: WallClock
    ledger: QuotaLedger | None = None


@dataclass(frozen=True)
class BackendSpec:
    """One backend: its name in ``llm.backends``, how it is built, and what it can do."""

    name: str
    build: Callable[[BuildContext], LLMBackend] | str
    """Makes the backend; or "module:function", imported only when the backend is built."""
    label: str
    """In English, for the command line ("Answered by: …")."""
    spoken: str
    """In Korean, as the doll says it, with its subject particle ("제미나이가")."""
    hears_audio: bool = False
    """It may listen to her recording (audio mode); the backend's own ``hears_audio`` says
    whether it does now (Gemini: when ``send_audio`` is on)."""
    background: bool = True
    """It can write new text whole (``complete``): history summaries and memory reflection."""
    streaming: bool = True
    """It streams its reply (``stream``); one that does not is asked ``complete`` and its reply
    arrives as one piece."""
    quota: bool = False
    """It counts its requests in the quota ledger (``BuildContext.ledger``)."""

    def create(self, context: BuildContext) -> LLMBackend:
        return resolve(self.build)(context)


_BUILT_IN = (
    BackendSpec(
        "gemini",
        "inference_server.backends.gemini:build",
        label="Gemini",
        spoken="제미나이가",
        hears_audio=True,
        quota=True,
    ),
    BackendSpec(
        "openai",
        "inference_server.backends.openai_compat:build",
        label="the OpenAI-compatible server",
        spoken="다른 인공지능 서버가",
    ),
    BackendSpec(
        "phrasebook",
        "inference_server.backends.phrasebook:build",
        label="the offline phrasebook",
        spoken="오프라인 말 모음이",
        background=False,  # it only picks among the replies it has
    ),
)

_REGISTRY: Registry[BackendSpec] = Registry("LLM backend", article="an")
register = _REGISTRY.register
unregister = _REGISTRY.unregister
names = _REGISTRY.names
get = _REGISTRY.get
find = _REGISTRY.find


def label(name: str) -> str:
    """The backend's English name, for the command line; its bare name if unknown."""
    spec = find(name)
    return spec.label if spec is not None else name


def spoken_name(name: str) -> str:
    """The backend's Korean name as the doll says it, with its subject particle."""
    spec = find(name)
    return spec.spoken if spec is not None else f"{name}가"


for _spec in _BUILT_IN:
    register(_spec)
