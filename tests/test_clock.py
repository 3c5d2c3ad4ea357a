# SPDX-License-Identifier: GPL-3.0-or-later
"""The clocks: simulated time that moves only when told, and the real one.

No assertion here waits for real time to pass. A thread that must have acted by the time
``advance()`` returns is checked right after it returns; real-time bounds (``join``, ``wait``)
are a safety net against a hang only.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from hardware.clock import MONOTONIC, Clock, MonotonicClock, SimulatedClock, deadline

pytestmark = pytest.mark.timeout(30)

SAFETY_S = 5.0  # real-time bound on anything that should happen at once; a pass takes far less
START = 1000.0


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(start=START)


class Waiter:
    """A thread that waits on ``clock`` until ``due`` (simulated), records the time, and waits again.

    Like the button's and the light's threads: it acts on a timer and goes back to waiting.
    ``start()`` returns once it is really waiting on the clock.
    """

    def __init__(self, clock: SimulatedClock, due: float) -> None:
        self.clock = clock
        self.due = due
        self.cond = threading.Condition()
        self.acted: list[float] = []
        self.stopping = False
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Waiter:
        self.thread.start()
        assert self._ready.wait(SAFETY_S)
        with self.cond:  # held by the thread until it waits on the clock, then released
            pass
        return self

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        self.thread.join(SAFETY_S)
        assert not self.thread.is_alive()

    def _run(self) -> None:
        with self.cond:
            self._ready.set()
            while self.clock.now() < self.due:
                self.clock.wait_until(self.cond, self.due)
            self.acted.append(self.clock.now())
            while not self.stopping:
                self.clock.wait_until(self.cond, None)


# -- SimulatedClock ------------------------------------------------------------------------


def test_simulated_time_moves_only_when_advanced(clock: SimulatedClock) -> None:
    assert clock.now() == START
    assert clock.now() == START  # no real time counts
    assert clock.advance(1.5) == START + 1.5
    assert clock.now() == START + 1.5
    assert clock.advance_to(START + 10) == START + 10
    assert clock.advance(0) == START + 10
    assert SimulatedClock().now() == 1000.0 and SimulatedClock(start=0).now() == 0.0
    assert repr(clock) == "<SimulatedClock 1010.000>"


def test_a_clock_does_not_go_backwards(clock: SimulatedClock) -> None:
    clock.advance(2.0)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-0.5)
    assert clock.advance_to(START) == START + 2.0  # advance_to the past: time stays
    assert clock.now() == START + 2.0


def test_both_clocks_are_clocks() -> None:
    assert isinstance(SimulatedClock(), Clock)
    assert isinstance(MONOTONIC, Clock) and isinstance(MONOTONIC, MonotonicClock)


def test_wait_until_a_past_deadline_returns_at_once(clock: SimulatedClock) -> None:
    cond = threading.Condition()
    began = time.monotonic()
    with cond:
        clock.wait_until(cond, START - 1)
        clock.wait_until(cond, START)  # due now is due
    assert time.monotonic() - began < 1.0  # a real wait would be bounded at 2 s


def test_advance_wakes_a_waiter_and_returns_after_it_acted(clock: SimulatedClock) -> None:
    waiter = Waiter(clock, due=START + 1.0).start()
    try:
        clock.advance(0.5)
        assert waiter.acted == []  # not due yet
        clock.advance(0.4999)
        assert waiter.acted == []
        clock.advance_to(START + 1.0)
        assert waiter.acted == [START + 1.0]  # done by the time advance() returned
        clock.advance(5.0)
        assert waiter.acted == [START + 1.0]  # once
    finally:
        waiter.stop()


def test_advance_past_several_deadlines_wakes_each_waiter(clock: SimulatedClock) -> None:
    waiters = [Waiter(clock, due=START + due).start() for due in (0.3, 0.6, 0.9)]
    try:
        clock.advance(0.7)
        assert [w.acted for w in waiters] == [[START + 0.7], [START + 0.7], []]
        clock.advance(0.3)
        assert [w.acted for w in waiters] == [[START + 0.7], [START + 0.7], [START + 1.0]]
    finally:
        for waiter in waiters:
            waiter.stop()


def test_advance_waits_for_a_thread_that_was_busy_when_time_moved(clock: SimulatedClock) -> None:
    """A thread woken by something else (a button edge) is not waiting when time moves.

    Its timer falls due while it is busy; advance() still returns only after it has acted.
    """
    cond = threading.Condition()
    kicked = False
    awake = threading.Event()
    acted: list[float] = []
    ready = threading.Event()

    def run() -> None:
        with cond:
            ready.set()
            while not kicked:
                clock.wait_until(cond, None)
            awake.set()  # busy now, not waiting on the clock ...
            time.sleep(0.001)  # ... for a moment's work (a callback, say)
            while clock.now() < START + 1.0:
                clock.wait_until(cond, START + 1.0)
            acted.append(clock.now())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(SAFETY_S)
    with cond:
        kicked = True
        cond.notify_all()
    assert awake.wait(SAFETY_S)
    clock.advance(1.0)
    assert acted == [START + 1.0]
    thread.join(SAFETY_S)
    assert not thread.is_alive()


@pytest.mark.parametrize("simulated", [True, False], ids=["simulated", "monotonic"])
def test_a_notify_wakes_a_thread_waiting_on_either_clock(clock: SimulatedClock, simulated: bool) -> None:
    waiting_on = clock if simulated else MONOTONIC
    cond = threading.Condition()
    items: list[str] = []
    got: list[str] = []

    def run() -> None:
        with cond:
            while not items:
                waiting_on.wait_until(cond, None)
            got.append(items.pop())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    with cond:
        items.append("edge")
        cond.notify_all()
    thread.join(SAFETY_S)
    assert got == ["edge"]
    assert clock.now() == START  # no simulated time passed for it


def test_sleep_returns_only_after_time_is_advanced_past_it(clock: SimulatedClock) -> None:
    slept: list[tuple[float, float]] = []
    started = threading.Event()

    def run() -> None:
        began = clock.now()
        started.set()
        clock.sleep(2.0)
        slept.append((began, clock.now()))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(SAFETY_S)
    thread.join(0.05)
    assert thread.is_alive()  # time stands still: so does the sleeper
    clock.advance(1.75)
    assert thread.is_alive() and not slept  # it began at START or later: not at its end yet
    steps = 0
    while not slept and steps < 20:  # 0.25 s at a time, up to 5 s more
        clock.advance(0.25)
        steps += 1
    assert slept, "the sleeper never woke"
    (began, woke) = slept[0]
    assert woke == clock.now()  # it returned at the step that passed its end, before advance() did
    # it began sleeping at one of the times the clock took (START, START + 1.75, then every 0.25 s)
    # and woke exactly 2 s later: never early, never a step late
    assert woke - 2.0 >= began
    assert woke - 2.0 == START or ((woke - 2.0 - START - 1.75) * 4).is_integer()
    thread.join(SAFETY_S)
    assert not thread.is_alive()


def test_sleep_for_nothing_returns_at_once(clock: SimulatedClock) -> None:
    clock.sleep(0)
    clock.sleep(-1)
    assert clock.now() == START


def test_sleep_async_returns_only_after_time_is_advanced_past_it(clock: SimulatedClock) -> None:
    async def main() -> None:
        began = asyncio.Event()

        async def sleeper() -> float:
            began.set()
            await clock.sleep_async(1.0)
            return clock.now()

        task = asyncio.create_task(sleeper())
        await began.wait()
        clock.advance(0.5)
        done, _ = await asyncio.wait({task}, timeout=0.05)  # it would notice within 2 ms
        assert not done
        clock.advance(0.5)
        done, _ = await asyncio.wait({task}, timeout=SAFETY_S)
        assert task in done and task.result() == START + 1.0

    asyncio.run(main())


def test_deadline_raises_when_simulated_time_passes_and_not_before(clock: SimulatedClock) -> None:
    async def main() -> None:
        entered = asyncio.Event()

        async def body() -> None:
            async with deadline(clock, 1.0):
                entered.set()
                await asyncio.Event().wait()  # forever

        task = asyncio.create_task(body())
        await entered.wait()
        clock.advance(0.5)
        clock.advance(0.49)
        done, _ = await asyncio.wait({task}, timeout=0.05)  # a watcher looks every 2 ms
        assert not done
        clock.advance_to(START + 1.0)
        done, _ = await asyncio.wait({task}, timeout=SAFETY_S)
        assert task in done
        with pytest.raises(TimeoutError):
            task.result()

    asyncio.run(main())


def test_deadline_counts_from_where_it_is_entered(clock: SimulatedClock) -> None:
    """The time the watcher takes to start is not added: the seconds count from ``async with``."""

    async def main() -> None:
        with pytest.raises(TimeoutError):
            async with deadline(clock, 1.0):
                clock.advance(1.0)  # before the watcher has even run
                await asyncio.sleep(SAFETY_S)
                raise AssertionError("the deadline did not fire")

    asyncio.run(main())


def test_a_deadline_that_is_met_changes_nothing(clock: SimulatedClock) -> None:
    async def main() -> int:
        async with deadline(clock, 1.0):
            clock.advance(0.5)
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)  # no stray cancel arrives later
        return asyncio.current_task().cancelling()

    assert asyncio.run(main()) == 0


def test_a_deadline_that_fired_leaves_the_task_uncancelled(clock: SimulatedClock) -> None:
    """An enclosing ``asyncio.timeout`` or TaskGroup must not mistake it for its own cancel."""

    async def main() -> tuple[bool, int]:
        timed_out = False
        try:
            async with deadline(clock, 1.0):
                clock.advance(1.0)
                await asyncio.sleep(SAFETY_S)
                raise AssertionError("the deadline did not fire")
        except TimeoutError:
            timed_out = True
        await asyncio.sleep(0.01)  # the task goes on undisturbed
        return timed_out, asyncio.current_task().cancelling()

    assert asyncio.run(main()) == (True, 0)


def test_a_cancel_from_elsewhere_is_not_a_timeout(clock: SimulatedClock) -> None:
    async def main() -> None:
        entered = asyncio.Event()

        async def body() -> None:
            async with deadline(clock, 1.0):
                entered.set()
                await asyncio.Event().wait()

        task = asyncio.create_task(body())
        await entered.wait()
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=SAFETY_S)
        assert task in done and task.cancelled()

    asyncio.run(main())


# -- MonotonicClock ------------------------------------------------------------------------


def test_monotonic_clock_is_time_monotonic() -> None:
    first = MONOTONIC.now()
    assert time.monotonic() >= first
    assert MONOTONIC.now() >= first
    assert repr(MONOTONIC) == "<MonotonicClock>"


def test_monotonic_wait_until_a_past_deadline_returns_at_once() -> None:
    cond = threading.Condition()
    began = time.monotonic()
    with cond:
        MONOTONIC.wait_until(cond, began - 10)
    assert time.monotonic() - began < 5.0  # a wait would have been 10 s
    MONOTONIC.sleep(0)
    MONOTONIC.sleep(-1)


@pytest.mark.realtime
def test_monotonic_waits_last_their_time() -> None:
    cond = threading.Condition()
    began = time.monotonic()
    with cond:
        while time.monotonic() < began + 0.1:
            MONOTONIC.wait_until(cond, began + 0.1)
    MONOTONIC.sleep(0.1)
    asyncio.run(MONOTONIC.sleep_async(0.1))
    assert 0.3 <= time.monotonic() - began < 3.0

    async def late() -> None:
        async with deadline(MONOTONIC, 0.1):
            await asyncio.sleep(10)

    began = time.monotonic()
    with pytest.raises(TimeoutError):
        asyncio.run(late())
    assert 0.1 <= time.monotonic() - began < 5.0
