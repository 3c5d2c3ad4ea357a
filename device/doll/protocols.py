# SPDX-License-Identifier: GPL-3.0-or-later
"""What the doll needs of its parts: each collaborator of :class:`device.doll.loop.Doll` as a Protocol.

The command line hands the doll real parts (``device.doll.audio_io``, ``hardware``,
``device.stt.auto``, ``tts.engines``, ``inference_server.api``); the tests hand it the same
parts on a simulated sound card and mock pins. The doll itself imports none of them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from typing import Any, Protocol

import numpy as np

from device.stt.transcript import Transcript, Utterance
from inference_server.api import Health


class Listener(Protocol):
    """One listener of the microphone (``device.doll.audio_io.Listener``): its own blocks."""

    async def read(self) -> np.ndarray | None: ...

    def read_pending(self) -> list[np.ndarray]: ...

    def wake(self) -> None: ...

    def close(self) -> None: ...


class Microphone(Protocol):
    """A stream of blocks with any number of listeners; nobody listening, nothing is kept."""

    sample_rate: int

    @property
    def active(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def restart(self) -> None: ...

    def listen(self) -> Listener: ...

    def clean_with(self, cleaner: EchoCanceller | None) -> None: ...


class EchoCanceller(Protocol):
    """Takes the speaker's sound out of the microphone's blocks (``device.doll.echo``)."""

    def clean(self, block: np.ndarray) -> np.ndarray: ...


class Speaker(Protocol):
    sample_rate: int

    @property
    def active(self) -> bool: ...

    @property
    def playing(self) -> bool: ...

    @property
    def queued(self) -> int: ...

    @property
    def handed(self) -> int: ...

    def start(self) -> None: ...

    def close(self) -> None: ...

    def restart(self) -> None: ...

    def convert(self, samples: np.ndarray, rate: int) -> np.ndarray: ...

    def play(self, samples: np.ndarray, rate: int | None = None) -> None: ...

    def stop(self) -> None: ...

    async def drain(self) -> None: ...


class LiveUtterance(Utterance, Protocol):
    """An utterance the doll hears live, which may read ahead at her pauses."""

    def pause(self, last_speech_s: float) -> None: ...

    def resume(self) -> None: ...

    def finish_later(self) -> tuple[Transcript, Future[Transcript] | None]:
        """The quick text now, and the final text as a future (None when the quick one is final)."""


class StreamingRecogniser(Protocol):
    """Hears an utterance live (``device.stt.auto.create_transcriber`` gives one)."""

    def stream(self) -> LiveUtterance: ...


class ChatClient(Protocol):
    """The inference server, as ``inference_server.api.InferenceClient`` reaches it."""

    def chat(
        self, text: str, *, conversation: str, channel: str = "doll", audio: tuple[str, bytes] | None = None
    ) -> AsyncIterator[Any]: ...

    async def health(self) -> Health: ...

    async def correct_turn(self, conversation: str, turn_id: int, text: str) -> Any:
        """Replace the stored text of her turn (the final transcript, once it is ready)."""

    async def interrupted(self, conversation: str, reply_id: int, heard: list[str]) -> Any:
        """Keep only the sentences of his reply she heard before she cut him off (optional:
        the doll skips it for a client without it)."""


class Light(Protocol):
    """Shows the doll's state by its name (``hardware.StatusLight``)."""

    def show(self, state: str) -> None: ...

    def off(self) -> None: ...


class Button(Protocol):
    """The push-to-talk button (``hardware.PushToTalkButton``): the doll sets its callbacks."""

    on_press: Callable[[], None] | None
    on_release: Callable[[float], None] | None
    on_long_press: Callable[[], None] | None
