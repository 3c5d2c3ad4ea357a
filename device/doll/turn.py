# SPDX-License-Identifier: GPL-3.0-or-later
"""One turn of the doll (:class:`Turn`, the loop's own), what it reports when it is over
(:class:`TurnReport`, a value) and the doll's options (:class:`DollOptions`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from device.doll.hearing import Hearing
from device.doll.protocols import Listener
from device.doll.settings import LoopSettings
from device.doll.vad import VoiceActivity
from device.stt.transcript import Transcript
from hardware.clock import MONOTONIC, Clock


@dataclass(frozen=True)
class DollOptions:
    """How the doll behaves, from the configuration: ``settings`` is ``loop``; ``conversation``,
    ``send_audio`` (send her recording with the text), ``tts_volume``, ``sentence_gap_ms`` and
    ``stt_chunk_ms`` come from ``client.conversation``, ``client.send_audio``, ``tts.volume``,
    ``tts.sentence_gap_ms`` and ``stt.chunk_ms``; ``vad`` defaults to the one ``loop.vad`` names;
    ``clock`` is every time the doll notes or waits for (the button and light's clock, and the
    sound card's; a simulated one in tests); a part that fails to start is tried again after
    ``retry_initial_s``, doubling up to ``retry_max_s``; ``mute_file`` keeps the mute across
    restarts (``server.data_dir``/doll.json; None: in memory only)."""

    settings: LoopSettings = field(default_factory=LoopSettings)
    conversation: str = "jinju"
    send_audio: Literal["auto", "on", "off"] = "off"
    tts_volume: float = 1.0
    sentence_gap_ms: int = 120
    stt_chunk_ms: int = 100
    vad: VoiceActivity | None = None
    clock: Clock = MONOTONIC
    retry_initial_s: float = 1.0
    retry_max_s: float = 60.0
    mute_file: Path | None = None


@dataclass(frozen=True)
class TurnReport:
    """What happened in one turn, published when it is over (``Doll.reports``).

    ``marks``: stage → the doll's clock (pressed, stopped, drafted, transcribed, asked,
    first_sentence, first_audio_ready, first_audio_queued), for benchmarks. ``listen_end``: why
    listening ended (release, silence, max_length or timeout; quiet: a follow-up window in which
    she said nothing; None for a long press).
    ``draft``/``transcript``: the quick and the final text (in audio mode the final one may come
    after the reply began; the report waits for it). ``audio_mode``: the request carried her
    recording, ``recording_s`` long. ``pauses``/``resumptions``: pauses long enough to read ahead
    at, and how many she went on after. ``retractions``: replies asked for at a tentative end and
    dropped unheard because she went on.
    """

    number: int
    pressed_at: float
    marks: dict[str, float] = field(default_factory=dict)
    listen_end: str | None = None
    draft: Transcript | None = None
    transcript: Transcript | None = None
    reply: str = ""
    backend: str | None = None
    audio_mode: bool = False
    recording_s: float = 0.0
    pauses: int = 0
    resumptions: int = 0
    retractions: int = 0


@dataclass(eq=False)
class Turn:
    """One press of the button and everything that follows from it (the loop's own)."""

    number: int
    pressed_at: float  # the doll's clock at the press
    released: bool = False
    released_at: float | None = None
    stopped_at: float | None = None  # when listening ended (release or end of speech)
    hearing: Hearing | None = None
    ears: Listener | None = None  # the microphone's blocks for its hearing, while it listens
    health: asyncio.Future | None = None  # the server's health, asked at the press (send_audio auto)
    turn_id: asyncio.Future | None = None  # audio mode: the id the server stored her turn under
    marks: dict[str, float] = field(default_factory=dict)  # stage → the doll's clock
    report: TurnReport | None = None  # so far (without marks)
    final: asyncio.Task | None = None  # audio mode: keeping the final text, after the reply began
    ask_early: bool = True  # at a tentative end (loop.tentative_end); False once the server refused

    def note(self, **changes: Any) -> None:
        """Add ``changes`` to the turn's report."""
        report = self.report or TurnReport(self.number, self.pressed_at)
        self.report = replace(report, **changes)

    def snapshot(self) -> TurnReport:
        """The report as it stands, with a copy of the marks."""
        return replace(self.report or TurnReport(self.number, self.pressed_at), marks=dict(self.marks))


class TurnSlot:
    """The doll's one turn at a time: the current one (None between turns), the task doing its
    work, and how many have begun."""

    def __init__(self) -> None:
        self.current: Turn | None = None
        self.task: asyncio.Task | None = None
        self.count = 0

    @property
    def busy(self) -> bool:
        """Whether a turn's work is still running."""
        return self.task is not None and not self.task.done()

    def begin(self, at: float, work: Callable[[Turn], Coroutine[Any, Any, None]]) -> Turn:
        """A new turn pressed at ``at``, current now, with ``work`` started on it as a task."""
        self.count += 1
        turn = self.current = Turn(self.count, at)
        self.task = asyncio.create_task(work(turn), name=f"chacha-turn-{turn.number}")
        return turn

    def drop(self) -> Turn | None:
        """No turn is current any more; the one that was has its work cancelled."""
        turn, self.current = self.current, None
        if self.task is not None:
            self.task.cancel()
        return turn

    def end(self, turn: Turn) -> bool:
        """``turn`` is over: whether it was still the current one (and is not now)."""
        if turn is not self.current:
            return False
        self.current = None
        return True
