# SPDX-License-Identifier: GPL-3.0-or-later
"""The push-to-talk button: press, release (with how long it was held) and long press.

The button is wired between a GPIO pin and ground and read with the Pi's internal pull-up,
so the pin reads low while it is pressed.

Callbacks run on this button's own thread (``chacha-button``), never on your event loop.
From asyncio, hand them over::

    button.on_press = lambda: loop.call_soon_threadsafe(queue.put_nowait, Pressed())

They are called one at a time and in order (press, long press, release), so keep them
short; an exception in one is logged and the button carries on.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from gpiozero import Button

from hardware.clock import MONOTONIC, Clock
from hardware.pins import device_error
from hardware.settings import HardwareSettings

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Edge:
    pressed: bool
    at: float  # the button's clock when gpiozero reported it (seconds)


_STOP = object()


class PushToTalkButton:
    """One gpiozero ``Button`` with debouncing and long-press timing done in one place.

    Debouncing: an edge within ``bounce_ms`` of the last accepted one is not reported;
    when that window ends the pin is read again and a real change is reported then. (The
    pin's own debounce, where the pin library has one, is set as well.) Long press: fired
    once per press when it has been held ``hold_s``, before the release.

    Every time it uses (the edges' times, the bounce window, the hold) is read from ``clock``:
    the real one on the Pi, a ``SimulatedClock`` in tests.
    """

    def __init__(self, settings: HardwareSettings, *, pin_factory=None, clock: Clock = MONOTONIC) -> None:
        self.on_press: Callable[[], None] | None = None
        self.on_release: Callable[[float], None] | None = None
        self.on_long_press: Callable[[], None] | None = None
        self._bounce_s = settings.bounce_ms / 1000
        self._hold_s = settings.hold_s
        self._pin = settings.button_pin
        self._clock = clock
        try:
            self._button = Button(
                settings.button_pin,
                pull_up=True,
                bounce_time=self._bounce_s or None,
                hold_time=settings.hold_s,
                pin_factory=pin_factory,
            )
        except Exception as exc:
            raise device_error(f"button on GPIO{settings.button_pin}", exc) from None
        self._cond = threading.Condition()  # guards _edges; notified when one is put
        self._edges: deque[_Edge | object] = deque()
        self._pressed = False  # the debounced state, as reported to the callbacks
        self._closed = False
        self._button.when_pressed = lambda: self._put(_Edge(True, clock.now()))
        self._button.when_released = lambda: self._put(_Edge(False, clock.now()))
        self._thread = threading.Thread(target=self._run, name="chacha-button", daemon=True)
        self._thread.start()
        if self._button.is_pressed:  # held down while the doll starts: treat as a press now
            self._put(_Edge(True, clock.now()))

    @property
    def is_pressed(self) -> bool:
        """Whether the button is held, debounced: agrees with the callbacks already made."""
        return self._pressed

    @property
    def pin(self) -> int:
        """The BCM GPIO number the button is on."""
        return self._pin

    def close(self) -> None:
        """Stop reporting and release the pin. Safe to call twice, and from a callback."""
        if self._closed:
            return
        self._closed = True
        self._button.when_pressed = None
        self._button.when_released = None
        self._put(_STOP)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=2)
        self._button.close()

    def __enter__(self) -> PushToTalkButton:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("pressed" if self._pressed else "released")
        return f"<PushToTalkButton GPIO{self._pin} {state}>"

    # -- the button's thread -------------------------------------------------------------

    def _put(self, item: _Edge | object) -> None:
        with self._cond:
            self._edges.append(item)
            self._cond.notify_all()

    def _next(self, deadline: float | None) -> _Edge | object | None:
        """The next edge (or _STOP); None once ``deadline`` (on the clock) has passed without one."""
        with self._cond:
            while not self._edges:
                if deadline is not None and self._clock.now() >= deadline:
                    return None
                self._clock.wait_until(self._cond, deadline)
            return self._edges.popleft()

    def _run(self) -> None:
        clock = self._clock
        last_accepted = -math.inf  # when the last reported change happened (clock seconds)
        pressed_at = 0.0
        recheck_at: float | None = None  # end of a bounce window in which an edge was dropped
        long_pressed = False
        while True:
            deadlines = [recheck_at] if recheck_at is not None else []
            if self._pressed and not long_pressed:
                deadlines.append(pressed_at + self._hold_s)
            item = self._next(min(deadlines) if deadlines else None)  # the lock is not held past here
            if item is _STOP:
                return
            change: _Edge | None = None
            if isinstance(item, _Edge):
                if item.at - last_accepted < self._bounce_s:
                    recheck_at = last_accepted + self._bounce_s
                elif item.pressed != self._pressed:
                    change = item
            now = clock.now()
            if change is None and recheck_at is not None and now >= recheck_at:
                recheck_at = None
                level = self._read_pressed()
                if level is not None and level != self._pressed:
                    change = _Edge(level, now)
            if change is not None:
                last_accepted = change.at
                self._pressed = change.pressed
                if change.pressed:
                    pressed_at, long_pressed = change.at, False
                    self._call(self.on_press)
                else:
                    self._call(self.on_release, max(0.0, change.at - pressed_at))
            if self._pressed and not long_pressed and clock.now() >= pressed_at + self._hold_s:
                long_pressed = True
                self._call(self.on_long_press)

    def _read_pressed(self) -> bool | None:
        try:
            return bool(self._button.is_pressed)
        except Exception:  # closed under us
            return None

    def _call(self, callback: Callable[..., None] | None, *args: float) -> None:
        if callback is None or self._closed:
            return
        try:
            callback(*args)
        except Exception:
            _LOGGER.exception("button callback %r failed", callback)
