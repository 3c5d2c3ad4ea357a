# SPDX-License-Identifier: GPL-3.0-or-later
"""Barge-in by voice: whether she has begun talking over 차차, decided on the microphone's blocks
after the echo canceller (:mod:`device.doll.echo`) has taken his voice out.

A block counts as speech when the VAD's probability reaches ``loop.barge_in.threshold``; she has
begun once ``loop.barge_in.min_speech_ms`` of speech has been heard with no gap longer than
:data:`MAX_GAP_S` inside it, so a cough, a click or what the canceller left of a word of his does
not stop him. Everything is counted in audio time (the blocks' own length), never the clock.
"""

from __future__ import annotations

import collections

import numpy as np

from device.doll.settings import BargeInSettings
from device.doll.vad import VoiceActivity

MAX_GAP_S = 0.1
"""Silence inside her first syllables shorter than this does not start the count again."""
LEAD_S = 0.3
"""Audio kept from before her speech began, so her next turn is heard from its first sound."""


class VoiceBargeIn:
    """Fed the cleaned microphone block by block while he speaks; :meth:`push` says when she has
    begun talking. :attr:`kept` is her speech so far (with :data:`LEAD_S` before it), for her turn."""

    def __init__(self, vad: VoiceActivity, rate: int, settings: BargeInSettings) -> None:
        self._vad = vad
        self._rate = rate
        self._threshold = settings.threshold
        self._needed_s = settings.min_speech_ms / 1000
        self._kept: collections.deque[np.ndarray] = collections.deque()
        self.reset()

    def reset(self) -> None:
        self._vad.reset()
        self._kept.clear()
        self._kept_s = 0.0
        self._speech_s = 0.0  # in the current run
        self._gap_s = 0.0  # since the run's last speech block
        self._run_s = 0.0  # the run's length, gaps included
        self.elapsed_s = 0.0
        """Audio heard so far."""
        self.began_s: float | None = None
        """Where (in :attr:`elapsed_s`) the run that stopped him began; None until it did."""

    @property
    def kept(self) -> list[np.ndarray]:
        return list(self._kept)

    def push(self, blocks: list[np.ndarray]) -> bool:
        """Hear ``blocks``; True once she has spoken long enough to stop him (and after)."""
        for block in blocks:
            if self.began_s is not None:  # she goes on: all of it is her turn's
                self._keep(block, float("inf"))
                continue
            duration = len(block) / self._rate
            self.elapsed_s += duration
            if self._vad(block) >= self._threshold:
                self._speech_s += duration
                self._run_s += self._gap_s + duration
                self._gap_s = 0.0
            elif self._speech_s:
                self._gap_s += duration
                if self._gap_s > MAX_GAP_S:
                    self._speech_s = self._run_s = self._gap_s = 0.0
            self._keep(block, self._run_s + self._gap_s + LEAD_S)
            if self._speech_s >= self._needed_s:
                self.began_s = self.elapsed_s - self._run_s - self._gap_s
        return self.began_s is not None

    def _keep(self, block: np.ndarray, limit_s: float) -> None:
        self._kept.append(block)
        self._kept_s += len(block) / self._rate
        while len(self._kept) > 1 and self._kept_s - len(self._kept[0]) / self._rate >= limit_s:
            self._kept_s -= len(self._kept.popleft()) / self._rate
