# SPDX-License-Identifier: GPL-3.0-or-later
"""Clocks: the one time source of the doll's timers (button hold, light patterns, audio pacing).

Everything in the doll that waits for time to pass asks a :class:`Clock`. On the Pi it is
:data:`MONOTONIC` (``time.monotonic()`` and ordinary waits). In the tests and in replays it is
a :class:`SimulatedClock`: time moves only when :meth:`SimulatedClock.advance` moves it (the
simulated sound card does, one audio block at a time), so a 2-second press is 2 seconds of
simulated time however loaded the machine is.

A clock has four operations:

- ``now()``: seconds, monotonic;
- ``wait_until(cond, deadline)``: ``cond.wait()`` until ``deadline`` on this clock (``cond``
  held by the caller; ``None``: no deadline). Like ``Condition.wait`` it may return early:
  callers loop and look again at what they are waiting for;
- ``sleep(seconds)``: block this thread;
- ``await sleep_async(seconds)``: the same for a coroutine.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    def now(self) -> float: ...

    def wait_until(self, cond: threading.Condition, deadline: float | None) -> None: ...

    def sleep(self, seconds: float) -> None: ...

    async def sleep_async(self, seconds: float) -> None: ...


class MonotonicClock:
    """Real time: ``time.monotonic()``."""

    def now(self) -> float:
        return time.monotonic()

    def wait_until(self, cond: threading.Condition, deadline: float | None) -> None:
        if deadline is None:
            cond.wait()
            return
        remaining = deadline - time.monotonic()
        if remaining > 0:
            cond.wait(remaining)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    async def sleep_async(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "<MonotonicClock>"


MONOTONIC = MonotonicClock()
"""The real clock, shared: it has no state."""


_POLL_S = 0.002  # how often a coroutine on a simulated clock looks at the time (real seconds)
_BOUND_S = 2.0  # the longest a waiter sleeps, or advance() waits for waiters, in real seconds
_GONE_S = 0.02  # a waiter that has not waited again this long after it stopped has finished


class SimulatedClock:
    """Time that moves only when :meth:`advance` (or :meth:`advance_to`) moves it.

    Threads waiting on it (``wait_until``/``sleep``) are woken at every advance and look at
    the time again. ``advance`` then waits, briefly and in real time, until each woken thread
    is waiting again (or has clearly finished), so whatever fell due has happened before
    ``advance`` returns: a timer never lags the time that triggered it, however busy the
    machine is.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self._now = float(start)
        self._lock = threading.Condition()
        self._waiting: dict[int, threading.Condition] = {}  # registration → what it waits on
        self._next_key = 0
        # every thread that has waited on this clock → the real time it last stopped waiting
        # (None while it waits): a thread that stopped moments ago is still reacting to something
        self._away: dict[threading.Thread, float | None] = {}

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds``; returns the new time."""
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        with self._lock:
            target = self._now + seconds
        return self.advance_to(target)

    def advance_to(self, when: float) -> float:
        """Move time forward to ``when`` (never back); returns the time now."""
        with self._lock:
            if when <= self._now:
                return self._now
            self._now = when
            woken = dict(self._waiting)
        for cond in woken.values():
            with cond:  # the waiter holds it until it is really waiting: no wake-up is lost
                cond.notify_all()
        self._settle(set(woken))
        return when

    def _settle(self, woken: set[int]) -> None:
        """Wait until every woken thread, and every thread busy when time moved, waits again.

        A thread counts as finished when it has ended, or has not come back to wait on this
        clock for ``_GONE_S`` (it waits on something else now, or went on to other work).
        """
        me = threading.current_thread()
        give_up = time.monotonic() + _BOUND_S
        with self._lock:
            while time.monotonic() < give_up:
                if not woken & self._waiting.keys():  # every woken thread has woken
                    real = time.monotonic()
                    busy = False
                    for thread, left in list(self._away.items()):
                        if not thread.is_alive():
                            del self._away[thread]
                        elif left is not None and thread is not me and real - left < _GONE_S:
                            busy = True
                    if not busy:
                        return  # ... and each waits again or has finished
                self._lock.wait(_POLL_S)

    def wait_until(self, cond: threading.Condition, deadline: float | None) -> None:
        """Wait on ``cond`` (held) until it is notified, this clock advances, or ``deadline`` is past."""
        me = threading.current_thread()
        with self._lock:
            if deadline is not None and self._now >= deadline:
                self._away[me] = time.monotonic()  # busy with what fell due: advance() waits for it
                return
            key = self._next_key
            self._next_key += 1
            self._waiting[key] = cond
            self._away[me] = None
            self._lock.notify_all()
        try:
            cond.wait(_BOUND_S)  # a real-time bound too: nothing hangs on a clock that stopped
        finally:
            with self._lock:
                self._waiting.pop(key, None)
                self._away[me] = time.monotonic()
                self._lock.notify_all()

    def sleep(self, seconds: float) -> None:
        deadline = self.now() + seconds
        cond = threading.Condition()
        with cond:
            while self.now() < deadline:
                self.wait_until(cond, deadline)

    async def sleep_async(self, seconds: float) -> None:
        deadline = self.now() + seconds
        while self.now() < deadline:
            await asyncio.sleep(_POLL_S)

    def __repr__(self) -> str:
        return f"<SimulatedClock {self.now():.3f}>"


@contextlib.asynccontextmanager
async def deadline(clock: Clock, seconds: float) -> AsyncIterator[None]:
    """Like ``asyncio.timeout(seconds)``, with the seconds counted on ``clock``."""
    if isinstance(clock, MonotonicClock):
        async with asyncio.timeout(seconds):
            yield
        return
    task = asyncio.current_task()
    cancelling = task.cancelling() if task is not None else 0
    until = clock.now() + seconds  # counted from here, not from when the watcher first runs
    fired = False

    async def watch() -> None:
        nonlocal fired
        while clock.now() < until:
            await clock.sleep_async(until - clock.now())
        fired = True
        if task is not None:
            task.cancel()

    watcher = asyncio.create_task(watch())
    try:
        yield
    except asyncio.CancelledError:
        # take back our own cancel (as asyncio.timeout does), so an enclosing timeout or
        # TaskGroup still tells its own cancel apart; a cancel from elsewhere stays one
        if fired and task is not None and task.uncancel() <= cancelling:
            raise TimeoutError from None
        raise
    finally:
        watcher.cancel()
