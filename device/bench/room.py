# SPDX-License-Identifier: GPL-3.0-or-later
"""The doll's speaker and microphone in a simulated room, offline: what the microphone hears
while he speaks (his echo through :class:`~device.bench.simulated_audio.EchoPath`, her voice,
the room's noise), block by block, in the order a sound card delivers them; and what the doll's
echo canceller makes of it. ``chacha bench echo`` and the tests use it; the live doll meets the
same room on the simulated sound card (``SimulatedSoundCard(echo=...)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from device.bench.simulated_audio import EchoPath, PlayedBlock, RoomEcho
from device.doll.audio_io import Played
from tts.audio import to_int16

SPEAKER_RATE = 48000


@dataclass
class RoomTake:
    """One take: the blocks the speaker played and those the microphone heard, in step."""

    block_ms: int
    rate: int
    played: list[Played] = field(default_factory=list)
    heard: list[np.ndarray] = field(default_factory=list)  # int16 at ``rate``: echo + her + noise
    echo: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # his echo alone
    hers: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # her voice alone

    @property
    def duration_s(self) -> float:
        return len(self.echo) / self.rate


def in_room(
    his: np.ndarray,
    his_rate: int,
    path: EchoPath,
    *,
    hers: np.ndarray | None = None,
    her_at_s: float = 0.0,
    noise_dbfs: float | None = None,
    block_ms: int = 30,
    rate: int = 16000,
    seed: int = 0,
) -> RoomTake:
    """His voice (int16 at ``his_rate``) played at 48 kHz into the room; her voice (int16 at
    ``rate``) starting ``her_at_s`` into the take; white noise at ``noise_dbfs`` (RMS)."""
    import soxr

    played = (
        soxr.resample(np.asarray(his, np.int16), his_rate, SPEAKER_RATE) if his_rate != SPEAKER_RATE else his
    )
    played = np.asarray(played, np.int16)
    out_block = SPEAKER_RATE * block_ms // 1000
    in_block = rate * block_ms // 1000
    blocks = -(-len(played) // out_block)
    take = RoomTake(block_ms, rate)
    near = np.zeros(blocks * in_block, np.float32)
    if hers is not None:
        start = round(her_at_s * rate)
        piece = np.asarray(hers, np.float32)[: max(0, len(near) - start)] / 32768.0
        near[start : start + len(piece)] = piece
    if noise_dbfs is not None:
        near += np.random.default_rng(seed).standard_normal(len(near)).astype(np.float32) * 10 ** (
            noise_dbfs / 20
        )
    echo = RoomEcho(path)
    echo.heard(0, rate, 0.0)  # the microphone listens from the start
    echoes = []
    step = block_ms / 1000
    for k in range(blocks):
        samples = np.zeros(out_block, np.int16)
        chunk = played[k * out_block : (k + 1) * out_block]
        samples[: len(chunk)] = chunk
        take.played.append(Played(k * out_block, samples, SPEAKER_RATE))
        echo.played(PlayedBlock(k * step, samples, SPEAKER_RATE))
        echoes.append(echo.heard(in_block, rate, (k + 1) * step))
    take.echo = np.concatenate(echoes)
    take.hers = near if hers is not None else np.zeros_like(near)
    mixed = take.echo + near
    take.heard = [to_int16(mixed[k * in_block : (k + 1) * in_block]) for k in range(blocks)]
    return take


class ScriptedSpeaker:
    """Stands in for the doll's speaker towards an echo canceller: ``reference()`` gives what
    :meth:`played` was handed, as ``Speaker.reference()`` gives what the card took."""

    def __init__(self) -> None:
        self._queue: list[Played] = []

    def reference(self) -> ScriptedSpeaker:
        return self

    def played(self, block: Played) -> None:
        self._queue.append(block)

    def read_pending(self) -> list[Played]:
        queue, self._queue = self._queue, []
        return queue

    def close(self) -> None:
        self._queue.clear()


def cancel(take: RoomTake, make_canceller) -> np.ndarray:
    """The microphone's blocks of ``take`` through the canceller ``make_canceller(speaker, rate)``
    builds, in the card's order (each speaker block, then the microphone block of that time);
    int16, as long as the take."""
    speaker = ScriptedSpeaker()
    canceller = make_canceller(speaker, take.rate)
    out = []
    for played, heard in zip(take.played, take.heard, strict=True):
        speaker.played(played)
        out.append(canceller.clean(heard))
    cleaned = np.concatenate(out)
    return np.pad(cleaned, (0, len(take.echo) - len(cleaned)))


def erle_db(take: RoomTake, cleaned: np.ndarray, *, after_s: float = 1.0) -> float:
    """Echo return loss enhancement: the echo's power at the microphone over what is left of it
    after the canceller, from ``after_s`` on (she silent, noise aside)."""
    start = round(after_s * take.rate)
    echo = np.sum(take.echo[start:].astype(np.float64) ** 2)
    left = np.sum((cleaned[start:].astype(np.float64) / 32768.0) ** 2)
    return float(10 * np.log10(max(echo, 1e-12) / max(left, 1e-12)))
