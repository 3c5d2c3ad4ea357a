# SPDX-License-Identifier: GPL-3.0-or-later
"""What the doll is doing, as the status light shows it."""

from __future__ import annotations

from enum import StrEnum


class DollState(StrEnum):
    """The doll's state, one status-light pattern each (a ``str``: ``DollState.IDLE == "idle"``)."""

    IDLE = "idle"
    """Waiting for the button: slow, dim breathing."""
    WAITING = "waiting"
    """Resting, and listening on the doll for her wake phrase only (``loop.wake``): slow, brighter
    breathing (green on an RGB light)."""
    LISTENING = "listening"
    """The button is held and she is speaking: solid on."""
    THINKING = "thinking"
    """Recognising her words and waiting for 차차's answer: fast blinking."""
    SPEAKING = "speaking"
    """차차 is answering aloud: faster pulsing."""
    MUTED = "muted"
    """Resting, and listening only while the button is held (mute): a faint blink every 4 s."""
    ERROR = "error"
    """Something failed (no server, no microphone, ...): two quick blinks, then a pause."""
