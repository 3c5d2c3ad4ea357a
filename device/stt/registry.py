"""Every speech recogniser the doll knows, registered once with what it can do.

An engine is one module (its recogniser and a ``build(context)`` function) plus one line in
``_BUILT_IN`` below, or one :func:`register` call made before the config is read (a test's toy
engine). ``stt.engine`` and ``telegram.stt_engine`` are validated against the registry,
``create_transcriber`` builds from it, the text is cleaned as the engine's registration says,
and the command line offers its names; nothing else lists engines by name.

"auto" is no engine of its own: it picks hybrid or vosk for this machine (``device.stt.auto``).

This module imports no recogniser: a built-in one is imported when it is built, so reading the
config does not load Vosk or Whisper.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from inference_server.shared.registry import Registry, resolve
from inference_server.shared.registry import RegistryError as RegistryError  # raised here, caught by callers

if TYPE_CHECKING:
    from device.stt.settings import STTSettings
    from device.stt.transcript import Transcriber

AUTO = "auto"
"""stt.engine's choice of hybrid or vosk by this machine's speed and memory."""


@dataclass
class BuildContext:
    """What an engine's ``build`` may use: the settings, the debug flag, and :meth:`engine`, the
    other engines it is made of, each loaded once per context (hybrid shares Vosk and Whisper)."""

    settings: STTSettings
    debug: bool = False
    loaded: dict[str, Transcriber] = field(default_factory=dict)

    def engine(self, name: str) -> Transcriber:
        """The engine ``name``, loaded now or given by an earlier call (or by auto's choice)."""
        if name not in self.loaded:
            self.loaded[name] = get(name).create(self)
        return self.loaded[name]


@dataclass(frozen=True)
class EngineSpec:
    """One recogniser: its name in ``stt.engine``, how it is built, and what it can do."""

    name: str
    build: Callable[[BuildContext], Transcriber] | str
    """Makes the recogniser; or "module:function", imported only when it is built."""
    label: str
    """In English, for the command line's help."""
    streams: bool = False
    """It hears while she speaks (``stream()``: partial text, an endpoint); one that does not is
    given the whole utterance when she stops."""
    cleanup: str | Callable[[str], str] = "plain"
    """How its text is made fit for the LLM (``device.stt.cleanup``): "vosk" (re-spacing of the
    particles Vosk splits off), "whisper" (punctuation and repeated loops), "plain" (whitespace
    only), or a function of the text."""

    def create(self, context: BuildContext) -> Transcriber:
        return resolve(self.build)(context)


_BUILT_IN = (
    EngineSpec(
        "hybrid",
        "device.stt.hybrid:build",
        label="Vosk while she speaks, Whisper for the final text",
        streams=True,
        cleanup="whisper",
    ),
    EngineSpec(
        "whisper",
        "device.stt.whisper.transcriber:build",
        label="Whisper after she stops",
        cleanup="whisper",
    ),
    EngineSpec("vosk", "device.stt.vosk:build", label="Vosk, streamed", streams=True, cleanup="vosk"),
)

_REGISTRY: Registry[EngineSpec] = Registry("speech recogniser", reserved=(AUTO,))
register = _REGISTRY.register
"""Add an engine; its name must be new (and not "auto")."""
unregister = _REGISTRY.unregister
names = _REGISTRY.names
get = _REGISTRY.get
find = _REGISTRY.find


def choices() -> list[str]:
    """What stt.engine and the command line's --engine take: "auto", then every engine."""
    return [AUTO, *names()]


def check_choice(name: str, *, extra: tuple[str, ...] = ()) -> str:
    """``name`` when it is "auto", a registered engine or one of ``extra``; else an error naming
    every choice."""
    allowed = [AUTO, *names(), *extra]
    if name not in allowed:
        raise RegistryError(f"unknown speech recogniser {name!r}: choose from {', '.join(allowed)}")
    return name


for _spec in _BUILT_IN:
    register(_spec)
