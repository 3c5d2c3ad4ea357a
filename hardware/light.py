# SPDX-License-Identifier: GPL-3.0-or-later
"""The status light: one LED or an RGB LED showing what the doll is doing.

Each state of the doll (``device.doll.states.DollState``, a ``str``) has a pattern, and on an
RGB LED a colour:

============  ==========================================  ===================
state         pattern                                     RGB colour
============  ==========================================  ===================
IDLE          slow dim breathing, 3 s period (3 %..35 %)  soft pink-white
WAITING       slow breathing, 5 s period (10 %..60 %)     soft green
LISTENING     solid on, full                              green
THINKING      blinking at 4 Hz (125 ms on, 125 ms off)    blue
SPEAKING      pulsing, 1 s period (20 %..100 %)           pink
MUTED         a faint blink (15 %, 0.1 s) every 4 s           soft blue
ERROR         two quick blinks, then a pause (1.2 s)      red
============  ==========================================  ===================

``settings.brightness`` scales every level. The patterns are played by this light's own
thread (``chacha-light``); ``show()`` sets the first level of the new pattern before it
returns, and the old pattern never writes again after that.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from functools import partial
from types import TracebackType

from gpiozero import LED, PWMLED, RGBLED
from gpiozero.exc import PinPWMUnsupported

from hardware.clock import MONOTONIC, Clock
from hardware.pins import device_error
from hardware.settings import LedSettings

_LOGGER = logging.getLogger(__name__)

FRAMES_PER_S = 30
"""How often a fading pattern updates the LED (frames per second)."""

ON_OFF_THRESHOLD = 0.25
"""On a light that cannot dim (no PWM), a level above this is on."""

Colour = tuple[float, float, float]


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of a pattern: the level goes from ``start`` to ``end`` over ``duration_s``."""

    duration_s: float
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Pattern:
    """A repeating sequence of segments, in one colour (used on RGB LEDs)."""

    segments: tuple[Segment, ...]
    colour: Colour

    @property
    def period_s(self) -> float:
        return sum(segment.duration_s for segment in self.segments)

    def at(self, elapsed_s: float) -> tuple[float, float]:
        """The level (0..1) ``elapsed_s`` after the start, and how long until it next changes."""
        period = self.period_s
        phase = elapsed_s % period if math.isfinite(period) else elapsed_s
        for segment in self.segments:
            if phase < segment.duration_s:
                remaining = segment.duration_s - phase
                if segment.start == segment.end:
                    return segment.start, remaining
                eased = (1 - math.cos(math.pi * phase / segment.duration_s)) / 2
                level = segment.start + (segment.end - segment.start) * eased
                return level, min(1 / FRAMES_PER_S, remaining)
            phase -= segment.duration_s
        last = self.segments[-1]  # floating-point edge: phase == period
        return last.end, 1 / FRAMES_PER_S


def _steady(level: float, colour: Colour) -> Pattern:
    return Pattern((Segment(math.inf, level, level),), colour)


def _breathe(low: float, high: float, period_s: float, colour: Colour) -> Pattern:
    half = period_s / 2
    return Pattern((Segment(half, low, high), Segment(half, high, low)), colour)


def _blinks(timings: tuple[float, ...], colour: Colour) -> Pattern:
    """On, off, on, off... for the given durations (seconds)."""
    return Pattern(
        tuple(Segment(duration, float(i % 2 == 0), float(i % 2 == 0)) for i, duration in enumerate(timings)),
        colour,
    )


PATTERNS: dict[str, Pattern] = {
    "idle": _breathe(0.03, 0.35, 3.0, (1.0, 0.55, 0.65)),
    "waiting": _breathe(0.1, 0.6, 5.0, (0.4, 1.0, 0.5)),
    "listening": _steady(1.0, (0.0, 1.0, 0.0)),
    "thinking": _blinks((0.125, 0.125), (0.0, 0.35, 1.0)),
    "speaking": _breathe(0.2, 1.0, 1.0, (1.0, 0.2, 0.6)),
    "muted": Pattern((Segment(0.1, 0.15, 0.15), Segment(3.9, 0.0, 0.0)), (0.3, 0.3, 1.0)),
    "error": _blinks((0.12, 0.12, 0.12, 0.84), (1.0, 0.0, 0.0)),
}
"""The pattern of each state; every state has one."""


class StatusLight:
    """Shows a state of the doll on a ``PWMLED`` (kind "single"), an ``RGBLED`` ("rgb") or nothing ("none").

    Use it as a context manager, or ``try: ... finally: light.close()``. The patterns keep
    time on ``clock``: the real one on the Pi, a ``SimulatedClock`` in tests.
    """

    def __init__(self, settings: LedSettings, *, pin_factory=None, clock: Clock = MONOTONIC) -> None:
        self._settings = settings
        self._clock = clock
        self._brightness = settings.brightness
        self._state: str | None = None
        self._pattern: Pattern | None = None
        self._since = 0.0
        self._closed = False
        self._dimmable = True
        self._write_failed = False
        self._cond = threading.Condition()
        self._device = self._open(settings, pin_factory)
        self._thread: threading.Thread | None = None
        if self._device is not None:
            self._thread = threading.Thread(target=self._run, name="chacha-light", daemon=True)
            self._thread.start()

    @property
    def state(self) -> str | None:
        """The state shown last; ``None`` before the first ``show()`` and after ``off()``."""
        return self._state

    @property
    def value(self) -> float | Colour:
        """What the LED shows now: a level 0..1, or (red, green, blue) on an RGB LED; 0 for "none"."""
        with self._cond:
            if self._device is None:
                return 0.0
            if isinstance(self._device, RGBLED):
                return tuple(float(c) for c in self._device.color)  # type: ignore[return-value]
            return float(self._device.value)

    def show(self, state: str) -> None:
        """Switch to ``state``'s pattern now (the previous pattern stops at once).

        Showing the state already shown lets its pattern run on undisturbed. After
        ``close()`` this does nothing (a state change racing the doll's shutdown is harmless).
        """
        if state not in PATTERNS:
            raise ValueError(f"{state!r} is not a state of the doll: one of {', '.join(PATTERNS)}")
        with self._cond:
            if self._closed:
                _LOGGER.debug("status light closed: not showing %s", state)
                return
            if state == self._state:
                return
            self._state = state
            self._pattern = PATTERNS[state]
            self._since = self._clock.now()
            self._write(self._pattern.at(0.0)[0])
            self._cond.notify_all()

    def off(self) -> None:
        """Stop the pattern and turn the light off."""
        with self._cond:
            self._state = None
            self._pattern = None
            if not self._closed:
                self._write(0.0)
            self._cond.notify_all()

    def close(self) -> None:
        """Turn the light off and release its pins. Safe to call twice."""
        self.off()
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None and threading.current_thread() is not self._thread:
            self._thread.join(timeout=2)
        if self._device is not None:
            self._device.close()

    def __enter__(self) -> StatusLight:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        shown = self._state.value if self._state else "off"
        return f"<StatusLight {self._settings.kind} {shown}{' closed' if self._closed else ''}>"

    # -- devices -----------------------------------------------------------------------

    def _open(self, settings: LedSettings, pin_factory) -> PWMLED | LED | RGBLED | None:
        if settings.kind == "none":
            return None
        common = {"active_high": settings.active_high, "pin_factory": pin_factory}
        if settings.kind == "single":
            what = f"status LED on GPIO{settings.pin}"
            dimmable = partial(PWMLED, settings.pin, initial_value=0, **common)
            on_off = partial(LED, settings.pin, initial_value=False, **common)
        else:
            pins = (settings.red_pin, settings.green_pin, settings.blue_pin)
            what = "RGB status LED on GPIO{}/{}/{}".format(*pins)
            dimmable = partial(RGBLED, *pins, pwm=True, **common)
            on_off = partial(RGBLED, *pins, pwm=False, **common)
        try:
            try:
                return dimmable()
            except PinPWMUnsupported:
                _LOGGER.warning("%s: these pins cannot dim (no PWM); the light will only blink", what)
                self._dimmable = False
                return on_off()
        except Exception as exc:
            raise device_error(what, exc) from None

    def _write(self, level: float) -> None:
        """Put ``level`` (0..1, before brightness) of the current pattern on the LED; lock held."""
        device = self._device
        if device is None:
            return
        if not self._dimmable:
            level = 1.0 if level > ON_OFF_THRESHOLD and self._brightness > 0 else 0.0
        else:
            level = min(1.0, max(0.0, level * self._brightness))
        try:
            if isinstance(device, RGBLED):
                colour = self._pattern.colour if self._pattern is not None else (0.0, 0.0, 0.0)
                new = tuple(channel * level for channel in colour)
                if not self._dimmable:
                    new = tuple(1.0 if channel >= 0.5 else 0.0 for channel in new)
                if tuple(device.color) != new:
                    device.color = new
            elif device.value != level:
                device.value = level
        except Exception:
            if not self._write_failed:  # once: a broken LED must not flood the journal
                self._write_failed = True
                _LOGGER.exception("the status light could not be set")

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                if self._pattern is None:
                    self._clock.wait_until(self._cond, None)
                    continue
                now = self._clock.now()
                level, wait_s = self._pattern.at(now - self._since)
                self._write(level)
                self._clock.wait_until(self._cond, None if math.isinf(wait_s) else now + max(wait_s, 0.001))
