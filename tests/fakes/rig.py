"""The live doll on a simulated sound card and mock pins, on one simulated clock: the rig the
live-loop tests (tests/test_live_loop.py, test_doll_faults.py, ...) drive it with."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from gpiozero.pins.mock import MockFactory, MockPWMPin

from device.bench.simulated_audio import EchoPath
from device.doll.audio_io import Microphone, Speaker
from device.doll.echo import EchoCanceller
from device.doll.loop import Doll, DollOptions, TurnReport
from device.doll.settings import AudioSettings, LoopSettings
from device.doll.states import DollState
from fakes.sounddevice import FakeSoundDevice
from hardware import HardwareSettings, PushToTalkButton, StatusLight
from hardware.clock import Clock, SimulatedClock
from inference_server.api import InferenceClient

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "ko-read-sentence.wav"
BUTTON_PIN, LED_PIN = 17, 18


class Rig:
    """One doll on a simulated sound card and mock pins, on one simulated clock, its loop a task.

    The card is the clock: time moves one audio block at a time, at most ``speed`` times real
    time, and waits (lockstep) while the doll has not heard the last block. The button, the
    light and the doll note times on the same clock, so everything here is asserted in
    simulated seconds, whatever the machine's load.

    ``echo`` puts the card in a simulated room: the doll hears its own speaker.
    ``cancel_echo`` gives the doll the echo canceller (and, with ``loop.barge_in.by: voice``,
    the default, her voice stops him).
    ``wake``: her enrolled wake phrase (templates), listened for when ``loop.wake.enabled``.
    ``follow_up_s`` (``loop.follow_up_s``, default 0 here) is the listening window after each
    reply: the tests of push-to-talk see a doll that rests after its reply; those of the
    follow-up ask for one.
    """

    def __init__(
        self,
        url: str,
        token: str,
        transcriber,
        engine,
        *,
        settings: LoopSettings | None = None,
        hold_s: float = 1.5,
        speed: float = 4.0,
        clock: Clock | None = None,
        client: InferenceClient | None = None,
        send_audio: Literal["auto", "on", "off"] = "off",
        follow_up_s: float = 0.0,
        mute_file: Path | None = None,
        echo: EchoPath | None = None,
        cancel_echo: bool = False,
        wake: Sequence[np.ndarray] | None = None,
    ) -> None:
        settings = (settings or LoopSettings()).model_copy(update={"follow_up_s": follow_up_s})
        self.clock = clock if clock is not None else SimulatedClock()
        self.fake = FakeSoundDevice(input_speed=speed, clock=self.clock, echo=echo)
        self.factory = MockFactory(pin_class=MockPWMPin)
        hardware = HardwareSettings(button_pin=BUTTON_PIN, hold_s=hold_s, pin_factory="mock")
        self.button = PushToTalkButton(hardware, pin_factory=self.factory, clock=self.clock)
        self.light = StatusLight(hardware.led, pin_factory=self.factory, clock=self.clock)
        self.mic = Microphone(AudioSettings(), backend=self.fake)
        self.speaker = Speaker(AudioSettings(), backend=self.fake)
        self.doll = Doll(
            mic=self.mic,
            speaker=self.speaker,
            transcriber=transcriber,
            engine=engine,
            client=client or InferenceClient(url, token, timeout_s=10),
            light=self.light,
            button=self.button,
            options=DollOptions(
                settings=settings, send_audio=send_audio, clock=self.clock, mute_file=mute_file
            ),
            canceller=EchoCanceller(self.speaker, self.mic.sample_rate) if cancel_echo else None,
            wake=wake,
        )
        self.task: asyncio.Task | None = None
        self._stop_when: Callable[[], bool] | None = None
        self._bounce_s = hardware.bounce_ms / 1000
        self._last_edge = -1.0e9

    async def __aenter__(self) -> Rig:
        if self.fake.simulated:
            self.fake.lockstep(asyncio.get_running_loop(), self._caught_up)
        self.task = asyncio.create_task(self.doll.run_forever())
        await self.until(self.doll.ready.is_set, "the doll to start")
        return self

    async def __aexit__(self, *exc_info) -> None:
        self._stop_when = None
        self.doll.shutdown()
        try:
            await asyncio.wait_for(self.task, REAL_LIMIT_S)
        finally:
            self.button.close()
            self.light.close()

    def _caught_up(self) -> bool:
        if self._stop_when is not None and self._stop_when():
            return False  # time stands still until the test has acted
        return self.mic.caught_up

    async def _past_bounce(self) -> None:
        """A finger does not press and release within the button's debounce window: an edge that
        close to the last is dropped, and time is frozen while the doll takes this one, so the
        button would wait for the window's end for ever. Let that much simulated time pass first."""
        wait = self._last_edge + self._bounce_s - self.clock.now()
        if wait > 0:
            stop, self._stop_when = self._stop_when, None  # time must move for the window to pass
            try:
                await self.sleep(wait + 0.001)
            finally:
                self._stop_when = stop

    async def press(self) -> float:
        """Press the button at one instant; returns when the doll has taken it (simulated time)."""
        await self._past_bounce()
        with self.fake.frozen():
            at = self._last_edge = self.clock.now()
            before = self.doll.turns
            self.factory.pin(BUTTON_PIN).drive_low()
            await self.until(lambda: self.doll.turns > before, "the doll to take the press")
        return at

    async def release(self) -> float:
        await self._past_bounce()
        with self.fake.frozen():
            at = self._last_edge = self.clock.now()
            self.factory.pin(BUTTON_PIN).drive_high()

            def taken() -> bool:
                return not self.button.is_pressed and not self.doll.awaiting_release

            await self.until(taken, "the doll to take the release")
        return at

    @property
    def led(self) -> float:
        return float(self.factory.pin(LED_PIN).state)

    async def until(self, predicate: Callable[[], bool], what: str, within_s: float | None = None) -> float:
        """Wait until ``predicate()``; fail if ``within_s`` simulated seconds pass first.

        Returns the simulated time it held. A real-time limit guards against a hang only.
        """
        give_up = None if within_s is None else self.clock.now() + within_s
        real_limit = time.monotonic() + REAL_LIMIT_S
        while not predicate():
            if self.task is not None and self.task.done():
                self.task.result()  # raises what killed the loop
                raise AssertionError(f"the doll stopped while waiting for {what}")
            if give_up is not None and self.clock.now() > give_up:
                raise AssertionError(
                    f"{within_s} simulated seconds passed waiting for {what} (state {self.doll.state})"
                )
            if time.monotonic() > real_limit:
                raise AssertionError(
                    f"hung for {REAL_LIMIT_S} s waiting for {what} (state {self.doll.state})"
                )
            await asyncio.sleep(0.002)
        return self.clock.now()

    async def until_state(self, state: DollState, within_s: float | None = None) -> float:
        return await self.until(lambda: self.doll.state is state, f"state {state.value}", within_s)

    async def sleep(self, seconds: float) -> float:
        """Let ``seconds`` of simulated time pass."""
        end = self.clock.now() + seconds
        return await self.until(lambda: self.clock.now() >= end, f"{seconds} simulated seconds")

    async def listening_with_open_ears(self) -> float:
        """Wait until the doll listens with the microphone open (after the earcon); time stops
        there, at the first block she could be heard in, until :meth:`say`."""
        self.stop_time_when(lambda: self.mic.listeners > 0)
        await self.until_state(DollState.LISTENING, 2.0)
        return await self.until(lambda: self.mic.listeners > 0, "the microphone to open", 2.0)

    def say(self, samples: np.ndarray) -> float:
        """She speaks from now on (the simulated time it starts); time moves again."""
        self.fake.say(samples)
        return self.resume()

    async def spoken_turn(self, samples: np.ndarray, within_s: float = 15.0) -> float:
        """Press, say ``samples``, and once the doll thinks (within ``within_s`` simulated
        seconds) release; returns when his reply begins to sound (SPEAKING)."""
        await self.press()
        await self.listening_with_open_ears()
        self.say(samples)
        await self.until_state(DollState.THINKING, within_s)
        await self.release()
        return await self.until_state(DollState.SPEAKING)

    async def held_turn(self, samples: np.ndarray, within_s: float) -> float:
        """Press, say ``samples`` with the button held until the doll stops listening (within
        ``within_s`` simulated seconds), release, wait for idle; returns how long it listened."""
        await self.press()
        await self.listening_with_open_ears()
        fed = self.say(samples)
        await self.until_state(DollState.THINKING, within_s)
        assert self.button.is_pressed, "the doll, not a release, ended listening"
        await self.release()
        await self.until_state(DollState.IDLE)
        return self.doll.reports[-1].marks["stopped"] - fed

    def stop_time_when(self, condition: Callable[[], bool]) -> None:
        """From now on, simulated time stands still whenever ``condition()`` holds, until
        :meth:`resume`: the test acts at that very instant."""
        self._stop_when = condition

    def resume(self) -> float:
        """Let time move again after :meth:`stop_time_when` or :meth:`listening_with_open_ears`
        (she says nothing)."""
        self._stop_when = None
        return self.clock.now()

    def states(self) -> list[DollState]:
        return [state for _, state in self.doll.history]

    @property
    def report(self) -> TurnReport:
        """The last finished turn's report."""
        return self.doll.reports[-1]


REAL_LIMIT_S = 60.0  # real seconds before a wait is a hang, not a slow machine


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 5 * REAL_LIMIT_S))


def duration_s(blocks) -> float:
    return sum(len(b.samples) for b in blocks) / 48000
