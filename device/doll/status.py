# SPDX-License-Identifier: GPL-3.0-or-later
"""The doll's light part: its state, shown on the status light and logged, with a short history."""

from __future__ import annotations

import collections
import logging

from device.doll.protocols import Light
from device.doll.states import DollState
from hardware.clock import Clock

_LOGGER = logging.getLogger(__name__)


class StatusShow:
    """What the doll is doing: one INFO line per change, the light showing it (a light that fails
    is logged, never the doll's failure), and the last 200 changes with their times."""

    def __init__(self, light: Light, clock: Clock) -> None:
        self._light = light
        self._clock = clock
        self.state = DollState.IDLE
        self.history: collections.deque[tuple[float, DollState]] = collections.deque(maxlen=200)

    def show(self, state: DollState, message: str | None = None) -> None:
        if state is self.state and message is None:
            return
        self.state = state
        self.history.append((self._clock.now(), state))
        _LOGGER.info("%s", message or state.value)
        try:
            self._light.show(state)
        except Exception:
            _LOGGER.exception("the status light failed")

    def off(self) -> None:
        try:
            self._light.off()
        except Exception:
            _LOGGER.exception("turning the status light off failed")
