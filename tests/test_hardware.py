# SPDX-License-Identifier: GPL-3.0-or-later
"""The GPIO parts on gpiozero's mock pins: button events, debouncing, light patterns, settings.

The button and the light keep time on a ``SimulatedClock`` here: time moves only when a test
advances it, and ``advance()`` returns once the part's thread has done what fell due, so a
1.5-second hold is 1.5 simulated seconds however loaded the machine is. Only the tests marked
``realtime`` run on the real clock, with margins that hold at a 4x slowdown.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPWMPin
from pydantic import ValidationError

from device.doll.states import DollState
from hardware import (
    HardwareError,
    HardwareSettings,
    LedSettings,
    PushToTalkButton,
    StatusLight,
    make_pin_factory,
)
from hardware.clock import MONOTONIC, Clock, SimulatedClock

pytestmark = pytest.mark.timeout(30)

WAIT_S = 5.0  # real-time bound on waiting for an event that should come; a pass takes far less
START = 1000.0  # the simulated clock's time when a test begins


@pytest.fixture
def factory() -> MockFactory:
    """A private mock GPIO with PWM pins; gpiozero's global factory stays untouched."""
    mock = MockFactory(pin_class=MockPWMPin)
    yield mock
    mock.close()


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(start=START)


def sample(read, seconds: float, every_s: float = 0.01) -> list:
    """Read a value every ``every_s`` real seconds for ``seconds`` (the real-clock tests only)."""
    values = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        values.append(read())
        time.sleep(every_s)
    return values


def run_for(clock: SimulatedClock, seconds: float, read: Callable[[], object], step_s: float = 0.01) -> list:
    """Advance ``clock`` by ``step_s`` at a time for ``seconds``, reading ``read()`` after each step.

    The readings are taken half a step past each step's start (at 0.005, 0.015, ... seconds with
    10 ms steps), never on a pattern's edge, where the last bit of a float would decide.
    """
    start = clock.now()
    values = []
    for i in range(round(seconds / step_s)):
        clock.advance_to(start + (i + 0.5) * step_s)
        values.append(read())
    return values


def times(seconds: float, step_s: float = 0.01) -> list[float]:
    """The moments (since the start) at which ``run_for`` reads."""
    return [(i + 0.5) * step_s for i in range(round(seconds / step_s))]


def rises(values: list) -> int:
    """How many times ``values`` go from off to on."""
    return sum(1 for a, b in zip(values, values[1:], strict=False) if not a and b)


class Recorder:
    """Button callbacks that record what fired, with an Event per kind to wait on."""

    def __init__(self, button: PushToTalkButton) -> None:
        self.events: list[tuple[str, float | None]] = []
        self.pressed = threading.Event()
        self.released = threading.Event()
        self.long_pressed = threading.Event()
        self.threads: set[str] = set()
        button.on_press = self._press
        button.on_release = self._release
        button.on_long_press = self._long

    def _press(self) -> None:
        self.threads.add(threading.current_thread().name)
        self.events.append(("press", None))
        self.pressed.set()

    def _release(self, held_s: float) -> None:
        self.events.append(("release", held_s))
        self.released.set()

    def _long(self) -> None:
        self.events.append(("long", None))
        self.long_pressed.set()

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]

    @property
    def held_s(self) -> float | None:
        """What the last release reported."""
        return self.events[-1][1]


# -- settings ------------------------------------------------------------------------------


def test_default_settings_are_valid_and_frozen() -> None:
    settings = HardwareSettings()
    assert (settings.button_pin, settings.led.pin, settings.pin_factory) == (17, 18, "auto")
    with pytest.raises(ValidationError):
        settings.button_pin = 4  # type: ignore[misc]
    with pytest.raises(ValidationError, match="Extra inputs"):
        HardwareSettings.model_validate({"buton_pin": 4})
    for name, field in [*HardwareSettings.model_fields.items(), *LedSettings.model_fields.items()]:
        assert field.description, f"{name} has no description"


def test_a_pin_used_twice_names_both_keys() -> None:
    with pytest.raises(ValidationError) as caught:
        HardwareSettings.model_validate({"led": {"pin": 17}})
    assert "hardware.led.pin and hardware.button_pin are both 17" in str(caught.value)

    with pytest.raises(ValidationError) as caught:
        HardwareSettings.model_validate({"led": {"kind": "rgb", "green_pin": 5}})
    assert "hardware.led.red_pin and hardware.led.green_pin are both 5" in str(caught.value)

    with pytest.raises(ValidationError) as caught:
        HardwareSettings.model_validate({"button_pin": 13, "led": {"kind": "rgb"}})
    assert "hardware.led.blue_pin and hardware.button_pin are both 13" in str(caught.value)

    # Pins of a light that is not fitted are not in use.
    HardwareSettings.model_validate({"led": {"kind": "none", "pin": 17}})
    HardwareSettings.model_validate({"button_pin": 5, "led": {"kind": "single"}})


@pytest.mark.parametrize("bad", [40, 1, 28, -3])
def test_a_pin_outside_bcm_2_to_27_is_rejected(bad: int) -> None:
    with pytest.raises(ValidationError) as caught:
        HardwareSettings.model_validate({"button_pin": bad})
    error = caught.value.errors()[0]
    assert error["loc"] == ("button_pin",)
    assert "BCM GPIO number 2..27" in error["msg"]


def test_other_values_are_checked() -> None:
    for bad in ({"bounce_ms": -1}, {"hold_s": 0}, {"led": {"brightness": 1.5}}, {"pin_factory": "pigpio"}):
        with pytest.raises(ValidationError):
            HardwareSettings.model_validate(bad)


# -- pin factories -------------------------------------------------------------------------


def test_mock_pin_factory_has_pwm_pins() -> None:
    mock = make_pin_factory("mock")
    assert isinstance(mock, MockFactory)
    assert mock.pin_class is MockPWMPin
    mock.close()


def _has_gpio() -> bool:
    model = Path("/proc/device-tree/model")
    return model.is_file() and "Raspberry Pi" in model.read_text(errors="replace")


@pytest.mark.skipif(_has_gpio(), reason="this machine is a Raspberry Pi: it has GPIO")
def test_auto_pin_factory_without_gpio_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(Device, "pin_factory", None)
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    with warnings.catch_warnings(record=True) as leaked:
        warnings.simplefilter("always")
        with pytest.raises(HardwareError) as caught:
            make_pin_factory("auto")
    message = str(caught.value)
    assert message.startswith("no GPIO found (")
    assert "install python3-lgpio" in message and "hardware.pin_factory: mock" in message
    assert "\n" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert leaked == []  # gpiozero's fallback warnings are folded into the message
    assert capsys.readouterr() == ("", "")
    assert Device.pin_factory is None  # never set globally


def test_auto_pin_factory_defers_to_a_global_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Device, "pin_factory", MockFactory())
    assert make_pin_factory("auto") is None


def test_unknown_pin_factory_name() -> None:
    with pytest.raises(HardwareError, match="unknown pin factory 'gpio'"):
        make_pin_factory("gpio")


# -- the button ----------------------------------------------------------------------------


def make_button(factory: MockFactory, clock: Clock, **settings) -> PushToTalkButton:
    base = {"bounce_ms": 30, "hold_s": 0.3, "led": {"kind": "none"}}
    return PushToTalkButton(
        HardwareSettings.model_validate(base | settings), pin_factory=factory, clock=clock
    )


def test_press_release_and_long_press(factory: MockFactory, clock: SimulatedClock) -> None:
    with make_button(factory, clock, hold_s=1.5) as button:
        events = Recorder(button)
        pin = factory.pin(17)
        assert pin.pull == "up" and not button.is_pressed

        pin.drive_low()
        assert events.pressed.wait(WAIT_S)
        assert button.is_pressed
        assert events.threads and threading.main_thread().name not in events.threads
        clock.advance(1.0)
        assert events.kinds() == ["press"]  # held 1.0 s of 1.5: not a long press yet
        clock.advance(0.6)
        assert events.kinds() == ["press", "long"]
        clock.advance(5.0)
        assert events.kinds() == ["press", "long"]  # once per press
        pin.drive_high()
        assert events.released.wait(WAIT_S)
        assert not button.is_pressed
        assert events.kinds() == ["press", "long", "release"]
        assert events.held_s == pytest.approx(6.6, abs=1e-6)


def test_the_long_press_comes_when_hold_s_is_reached(factory: MockFactory, clock: SimulatedClock) -> None:
    with make_button(factory, clock, hold_s=1.5) as button:
        events = Recorder(button)
        factory.pin(17).drive_low()
        assert events.pressed.wait(WAIT_S)
        clock.advance_to(START + 1.499)
        assert events.kinds() == ["press"]
        clock.advance_to(START + 1.5)
        assert events.kinds() == ["press", "long"]


def test_short_press_is_not_a_long_press(factory: MockFactory, clock: SimulatedClock) -> None:
    with make_button(factory, clock, hold_s=0.4) as button:
        events = Recorder(button)
        pin = factory.pin(17)
        pin.drive_low()
        assert events.pressed.wait(WAIT_S)
        clock.advance(0.1)
        pin.drive_high()
        assert events.released.wait(WAIT_S)
        assert events.held_s == pytest.approx(0.1, abs=1e-6)
        clock.advance(1.0)  # well past when the long press would have come
        assert events.kinds() == ["press", "release"]


def test_each_press_gets_its_own_long_press(factory: MockFactory, clock: SimulatedClock) -> None:
    with make_button(factory, clock, hold_s=0.5) as button:
        events = Recorder(button)
        pin = factory.pin(17)
        for _ in range(2):
            events.pressed.clear()
            events.released.clear()
            pin.drive_low()
            assert events.pressed.wait(WAIT_S)
            clock.advance(0.5)
            pin.drive_high()
            assert events.released.wait(WAIT_S)
            assert events.held_s == pytest.approx(0.5, abs=1e-6)
            clock.advance(1.0)
        assert events.kinds() == ["press", "long", "release"] * 2


def test_bounces_within_bounce_time_are_one_press(factory: MockFactory, clock: SimulatedClock) -> None:
    with make_button(factory, clock, bounce_ms=60, hold_s=5) as button:
        events = Recorder(button)
        pin = factory.pin(17)
        pin.drive_low()
        pin.drive_high()
        pin.drive_low()
        pin.drive_high()
        pin.drive_low()
        assert events.pressed.wait(WAIT_S)
        clock.advance(0.2)  # past the bounce window: the pin is read again, and is still low
        assert events.kinds() == ["press"]
        assert button.is_pressed

        pin.drive_high()  # 0.2 s after the press: a release
        pin.drive_low()  # bounces of the release, dropped
        pin.drive_high()
        assert events.released.wait(WAIT_S)
        clock.advance(0.2)
        assert events.kinds() == ["press", "release"]
        assert events.held_s == pytest.approx(0.2, abs=1e-6)
        assert not button.is_pressed


def test_an_edge_in_the_bounce_window_is_read_again_when_it_ends(
    factory: MockFactory, clock: SimulatedClock
) -> None:
    with make_button(factory, clock, bounce_ms=60) as button:
        events = Recorder(button)
        pin = factory.pin(17)
        pin.drive_low()
        pin.drive_high()  # a tap shorter than the bounce window: this edge is dropped...
        assert events.pressed.wait(WAIT_S)
        clock.advance_to(START + 0.059)
        assert events.kinds() == ["press"] and button.is_pressed
        clock.advance_to(START + 0.060)  # ... and the pin is read again when the window ends
        assert events.kinds() == ["press", "release"]
        assert events.held_s == pytest.approx(0.06, abs=1e-6)
        assert not button.is_pressed


def test_an_edge_after_the_bounce_window_is_reported_at_once(
    factory: MockFactory, clock: SimulatedClock
) -> None:
    with make_button(factory, clock, bounce_ms=60) as button:
        events = Recorder(button)
        pin = factory.pin(17)
        pin.drive_low()
        assert events.pressed.wait(WAIT_S)
        clock.advance(0.07)
        pin.drive_high()
        assert events.released.wait(WAIT_S)  # no advance needed: it is not held back
        assert events.kinds() == ["press", "release"]
        assert events.held_s == pytest.approx(0.07, abs=1e-6)


def test_a_failing_callback_does_not_stop_the_button(
    factory: MockFactory, clock: SimulatedClock, caplog: pytest.LogCaptureFixture
) -> None:
    with make_button(factory, clock) as button:
        released = threading.Event()

        def broken() -> None:
            raise RuntimeError("boom")

        button.on_press = broken
        button.on_release = lambda held_s: released.set()
        pin = factory.pin(17)
        with caplog.at_level(logging.ERROR, logger="hardware.button"):
            pin.drive_low()
            clock.advance(0.05)
            pin.drive_high()
            assert released.wait(WAIT_S)
        assert "button callback" in caplog.text


def test_a_callback_may_close_the_button(factory: MockFactory, clock: SimulatedClock) -> None:
    button = make_button(factory, clock)
    closed = threading.Event()

    def close_it() -> None:
        button.close()
        closed.set()

    button.on_long_press = close_it
    factory.pin(17).drive_low()
    clock.advance(0.3)
    assert closed.wait(WAIT_S)
    assert repr(button) == "<PushToTalkButton GPIO17 closed>"


def test_close_stops_events_and_frees_the_pin(factory: MockFactory) -> None:
    button = make_button(factory, SimulatedClock())
    events = Recorder(button)
    button.close()
    button.close()  # twice is fine
    assert not any(t.name == "chacha-button" and t.is_alive() for t in threading.enumerate())
    PushToTalkButton(HardwareSettings(led=LedSettings(kind="none")), pin_factory=factory).close()
    assert events.events == []


def test_a_pin_in_use_is_a_hardware_error(factory: MockFactory, clock: SimulatedClock) -> None:
    with make_button(factory, clock), pytest.raises(HardwareError, match="GPIO17"):
        make_button(factory, clock)


@pytest.mark.realtime
def test_long_press_on_the_real_clock(factory: MockFactory) -> None:
    with make_button(factory, MONOTONIC, hold_s=0.2) as button:
        events = Recorder(button)
        pin = factory.pin(17)
        pressed_at = time.monotonic()
        pin.drive_low()
        assert events.long_pressed.wait(WAIT_S)
        waited_s = time.monotonic() - pressed_at
        assert 0.2 <= waited_s < 1.5
        pin.drive_high()
        assert events.released.wait(WAIT_S)
        held_for_s = time.monotonic() - pressed_at
        assert events.kinds() == ["press", "long", "release"]
        assert 0.2 <= events.held_s <= held_for_s


# -- the status light ----------------------------------------------------------------------

THINKING_BLINKS = (0.125, 0.125)  # on, off (seconds): 4 Hz
ERROR_BLINKS = (0.12, 0.12, 0.12, 0.84)  # on, off, on, then the pause: 1.2 s


def blink(timings: tuple[float, ...], t: float) -> float:
    """The level a blink pattern with these on/off ``timings`` has ``t`` seconds after its start."""
    phase = t % sum(timings)
    for i, duration in enumerate(timings):
        if phase < duration:
            return 1.0 if i % 2 == 0 else 0.0
        phase -= duration
    raise AssertionError("unreachable")


def breathe(low: float, high: float, period_s: float, t: float) -> float:
    """The level of a breathing pattern (eased up for half the period, then down) at ``t``."""
    half = period_s / 2
    phase = t % period_s
    start, end = (low, high) if phase < half else (high, low)
    eased = (1 - math.cos(math.pi * (phase % half) / half)) / 2
    return start + (end - start) * eased


def make_light(factory: MockFactory, clock: Clock, **settings) -> StatusLight:
    return StatusLight(LedSettings.model_validate(settings), pin_factory=factory, clock=clock)


def test_listening_is_steady_full(factory: MockFactory, clock: SimulatedClock) -> None:
    with make_light(factory, clock) as light:
        pin = factory.pin(18)
        light.show(DollState.LISTENING)
        assert light.state is DollState.LISTENING
        pin.clear_states()
        assert set(run_for(clock, 1.0, lambda: pin.state)) == {1.0}
        assert [s.state for s in pin.states] == [1.0]  # never flickered


def test_thinking_blinks_at_4_hz(factory: MockFactory, clock: SimulatedClock) -> None:
    with make_light(factory, clock) as light:
        pin = factory.pin(18)
        before = pin.state
        light.show(DollState.THINKING)
        assert pin.state == 1.0  # on at once
        values = run_for(clock, 1.0, lambda: pin.state)
        assert values == [blink(THINKING_BLINKS, t) for t in times(1.0)]
        assert rises([before, 1.0, *values]) == 4  # at 0, 0.25, 0.5 and 0.75 s


def test_error_on_a_single_led_is_two_blinks_then_a_pause(
    factory: MockFactory, clock: SimulatedClock
) -> None:
    with make_light(factory, clock) as light:
        pin = factory.pin(18)
        before = pin.state
        light.show(DollState.ERROR)
        assert pin.state == 1.0  # on at once
        values = run_for(clock, 2.4, lambda: pin.state)
        assert values == [blink(ERROR_BLINKS, t) for t in times(2.4)]
        assert rises([before, 1.0, *values]) == 4  # two blinks per 1.2 s: at 0, 0.24, 1.2 and 1.44 s
        on_s = sum(values) * 0.01
        assert on_s == pytest.approx(4 * 0.12, abs=1e-9)


def test_error_on_rgb_is_red_only(factory: MockFactory, clock: SimulatedClock) -> None:
    with make_light(factory, clock, kind="rgb") as light:
        red, green, blue = (factory.pin(n) for n in (5, 6, 13))
        light.show(DollState.ERROR)
        values = run_for(clock, 1.2, lambda: (red.state, green.state, blue.state))
        assert [v[0] for v in values] == [blink(ERROR_BLINKS, t) for t in times(1.2)]
        assert {v[1] for v in values} == {0.0} and {v[2] for v in values} == {0.0}


def test_idle_breathes_slowly_and_dimly(factory: MockFactory, clock: SimulatedClock) -> None:
    with make_light(factory, clock) as light:
        pin = factory.pin(18)
        light.show(DollState.IDLE)
        # 3 s period, 3 %..35 %: dim at the start, brightest half-way, dim again a period on
        for t, level in ((0.0, 0.03), (0.75, 0.19), (1.5, 0.35), (2.25, 0.19), (3.0, 0.03), (3.75, 0.19)):
            clock.advance_to(START + t)
            assert pin.state == pytest.approx(level, abs=1e-9), t
        values = run_for(clock, 3.0, lambda: pin.state)
        assert values == pytest.approx([breathe(0.03, 0.35, 3.0, 3.75 + t) for t in times(3.0)], abs=1e-9)
        assert len(set(values)) > 100  # a fade, not a blink


def test_speaking_pulses_faster(factory: MockFactory, clock: SimulatedClock) -> None:
    with make_light(factory, clock) as light:
        pin = factory.pin(18)
        light.show(DollState.SPEAKING)
        # 1 s period, 20 %..100 %
        for t, level in ((0.0, 0.2), (0.25, 0.6), (0.5, 1.0), (0.75, 0.6), (1.0, 0.2), (1.5, 1.0)):
            clock.advance_to(START + t)
            assert pin.state == pytest.approx(level, abs=1e-9), t


def test_each_state_has_its_colour_on_rgb(factory: MockFactory, clock: SimulatedClock) -> None:
    with make_light(factory, clock, kind="rgb") as light:
        light.show(DollState.LISTENING)
        assert light.value == (0.0, 1.0, 0.0)
        light.show(DollState.THINKING)
        assert light.value[2] == 1.0 and light.value[0] == 0.0
        light.show(DollState.SPEAKING)
        red, green, blue = light.value
        assert red > blue > green  # pink


def test_common_anode_rgb_inverts_the_pins(factory: MockFactory, clock: SimulatedClock) -> None:
    with make_light(factory, clock, kind="rgb", active_high=False) as light:
        light.show(DollState.LISTENING)
        assert (factory.pin(5).state, factory.pin(6).state, factory.pin(13).state) == (1.0, 0.0, 1.0)


def test_switching_state_stops_the_previous_pattern_at_once(
    factory: MockFactory, clock: SimulatedClock
) -> None:
    with make_light(factory, clock) as light:
        pin = factory.pin(18)
        light.show(DollState.THINKING)
        clock.advance(0.2)
        assert pin.state == 0.0  # in the blink's off half
        light.show(DollState.LISTENING)
        assert pin.state == 1.0
        pin.clear_states()  # from here on, every change the pin goes through is recorded
        assert set(run_for(clock, 1.0, lambda: pin.state)) == {1.0}
        assert [s.state for s in pin.states] == [1.0]


def test_showing_the_same_state_again_does_not_restart_it(
    factory: MockFactory, clock: SimulatedClock
) -> None:
    with make_light(factory, clock) as light:
        pin = factory.pin(18)
        light.show(DollState.SPEAKING)
        clock.advance(0.3)  # on the way up
        on_the_way_up = breathe(0.2, 1.0, 1.0, 0.3)
        assert pin.state == pytest.approx(on_the_way_up, abs=1e-9)
        light.show(DollState.SPEAKING)
        assert pin.state == pytest.approx(on_the_way_up, abs=1e-9)  # a restart: back to 0.2
        clock.advance(0.1)
        assert pin.state == pytest.approx(breathe(0.2, 1.0, 1.0, 0.4), abs=1e-9)


def test_brightness_scales_every_level(factory: MockFactory, clock: SimulatedClock) -> None:
    with make_light(factory, clock, brightness=0.5) as light:
        pin = factory.pin(18)
        light.show(DollState.LISTENING)
        assert pin.state == 0.5
        light.show(DollState.SPEAKING)
        assert pin.state == pytest.approx(0.1, abs=1e-9)
        clock.advance(0.5)
        assert pin.state == pytest.approx(0.5, abs=1e-9)


def test_off_and_close_turn_it_off(factory: MockFactory, clock: SimulatedClock) -> None:
    light = make_light(factory, clock)
    pin = factory.pin(18)
    light.show(DollState.SPEAKING)
    clock.advance(0.3)
    light.off()
    assert light.state is None
    assert pin.state == 0.0
    assert set(run_for(clock, 1.0, lambda: pin.state)) == {0.0}
    light.show(DollState.LISTENING)
    light.close()
    light.close()
    assert pin.state == 0.0
    assert pin.function == "input"  # released
    assert not any(t.name == "chacha-light" and t.is_alive() for t in threading.enumerate())
    light.show(DollState.IDLE)  # after close: nothing happens, nothing breaks
    assert pin.state == 0.0


def test_no_light_still_remembers_the_state(factory: MockFactory, clock: SimulatedClock) -> None:
    with make_light(factory, clock, kind="none") as light:
        light.show(DollState.THINKING)
        assert light.state is DollState.THINKING
        assert light.value == 0.0
    assert factory.pins == {}  # no pin was touched


def test_pins_without_pwm_fall_back_to_on_off(
    clock: SimulatedClock, caplog: pytest.LogCaptureFixture
) -> None:
    plain = MockFactory()  # MockPin: no PWM
    with caplog.at_level(logging.WARNING, logger="hardware.light"), make_light(plain, clock) as light:
        pin = plain.pin(18)
        light.show(DollState.THINKING)
        values = run_for(clock, 1.0, lambda: pin.state)
        assert values == [bool(blink(THINKING_BLINKS, t)) for t in times(1.0)]
        light.show(DollState.LISTENING)
        assert pin.state
    assert "cannot dim" in caplog.text
    plain.close()


def test_every_state_has_a_pattern(factory: MockFactory, clock: SimulatedClock) -> None:
    with make_light(factory, clock, kind="rgb") as light:
        for state in DollState:
            light.show(state)
            assert light.state is state
            light.show(state.value)  # the plain string works too


@pytest.mark.realtime
def test_thinking_blinks_on_the_real_clock(factory: MockFactory) -> None:
    with make_light(factory, MONOTONIC) as light:
        light.show(DollState.THINKING)
        values = sample(lambda: factory.pin(18).state, 1.0)
        assert set(values) == {0.0, 1.0}
        flips = sum(a != b for a, b in zip(values, values[1:], strict=False))
        assert 2 <= flips <= 16  # 4 Hz: 8 changes a second, however few the samples
