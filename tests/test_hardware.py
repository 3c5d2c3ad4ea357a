# SPDX-License-Identifier: GPL-3.0-or-later
"""The GPIO parts on gpiozero's mock pins: button events, debouncing, light patterns, settings."""

from __future__ import annotations

import logging
import threading
import time
import warnings
from pathlib import Path

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPWMPin
from pydantic import ValidationError

from hardware import (
    DollState,
    HardwareError,
    HardwareSettings,
    LedSettings,
    PushToTalkButton,
    StatusLight,
    make_pin_factory,
)

pytestmark = pytest.mark.timeout(30)

WAIT_S = 2.0  # longest wait for an event that should come (seconds); a pass takes far less


@pytest.fixture
def factory() -> MockFactory:
    """A private mock GPIO with PWM pins; gpiozero's global factory stays untouched."""
    mock = MockFactory(pin_class=MockPWMPin)
    yield mock
    mock.close()


def sample(read, seconds: float, every_s: float = 0.01) -> list:
    """Read a value every ``every_s`` for ``seconds``."""
    values = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        values.append(read())
        time.sleep(every_s)
    return values


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


def make_button(factory: MockFactory, **settings) -> PushToTalkButton:
    base = {"bounce_ms": 30, "hold_s": 0.3, "led": {"kind": "none"}}
    return PushToTalkButton(HardwareSettings.model_validate(base | settings), pin_factory=factory)


def test_press_release_and_long_press(factory: MockFactory) -> None:
    with make_button(factory) as button:
        events = Recorder(button)
        pin = factory.pin(17)
        assert pin.pull == "up" and not button.is_pressed

        pin.drive_low()
        assert events.pressed.wait(WAIT_S)
        assert button.is_pressed
        assert events.threads and threading.main_thread().name not in events.threads
        assert events.long_pressed.wait(WAIT_S)
        pin.drive_high()
        assert events.released.wait(WAIT_S)
        assert not button.is_pressed
        assert events.kinds() == ["press", "long", "release"]
        held_s = events.events[-1][1]
        assert 0.3 <= held_s < 0.3 + WAIT_S


def test_short_press_is_not_a_long_press(factory: MockFactory) -> None:
    with make_button(factory, hold_s=0.4) as button:
        events = Recorder(button)
        pin = factory.pin(17)
        pin.drive_low()
        assert events.pressed.wait(WAIT_S)
        time.sleep(0.1)
        pin.drive_high()
        assert events.released.wait(WAIT_S)
        assert not events.long_pressed.wait(0.5)
        assert events.kinds() == ["press", "release"]
        assert 0.05 <= events.events[-1][1] < 0.4


def test_bounces_within_bounce_time_are_one_press(factory: MockFactory) -> None:
    with make_button(factory, bounce_ms=60, hold_s=5) as button:
        events = Recorder(button)
        pin = factory.pin(17)
        pin.drive_low()
        pin.drive_high()
        pin.drive_low()
        pin.drive_high()
        pin.drive_low()
        assert events.pressed.wait(WAIT_S)
        time.sleep(0.2)  # well past the bounce window: a dropped edge would have been re-read
        assert events.kinds() == ["press"]
        assert button.is_pressed

        pin.drive_high()
        pin.drive_low()
        pin.drive_high()
        assert events.released.wait(WAIT_S)
        time.sleep(0.2)
        assert events.kinds() == ["press", "release"]


def test_a_tap_shorter_than_bounce_time_still_ends_in_a_release(factory: MockFactory) -> None:
    with make_button(factory, bounce_ms=60) as button:
        events = Recorder(button)
        pin = factory.pin(17)
        pin.drive_low()
        pin.drive_high()  # inside the bounce window: dropped, then the pin is read again
        assert events.released.wait(WAIT_S)
        assert events.kinds() == ["press", "release"]
        assert not button.is_pressed


def test_a_failing_callback_does_not_stop_the_button(
    factory: MockFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with make_button(factory) as button:
        released = threading.Event()

        def broken() -> None:
            raise RuntimeError("boom")

        button.on_press = broken
        button.on_release = lambda held_s: released.set()
        pin = factory.pin(17)
        with caplog.at_level(logging.ERROR, logger="hardware.button"):
            pin.drive_low()
            time.sleep(0.05)
            pin.drive_high()
            assert released.wait(WAIT_S)
        assert "button callback" in caplog.text


def test_close_stops_events_and_frees_the_pin(factory: MockFactory) -> None:
    button = make_button(factory)
    events = Recorder(button)
    button.close()
    button.close()  # twice is fine
    assert not any(t.name == "chacha-button" and t.is_alive() for t in threading.enumerate())
    PushToTalkButton(HardwareSettings(led=LedSettings(kind="none")), pin_factory=factory).close()
    assert events.events == []


def test_a_pin_in_use_is_a_hardware_error(factory: MockFactory) -> None:
    with make_button(factory), pytest.raises(HardwareError, match="GPIO17"):
        make_button(factory)


# -- the status light ----------------------------------------------------------------------


def make_light(factory: MockFactory, **settings) -> StatusLight:
    return StatusLight(LedSettings.model_validate(settings), pin_factory=factory)


def test_listening_is_steady_full(factory: MockFactory) -> None:
    with make_light(factory) as light:
        light.show(DollState.LISTENING)
        assert light.state is DollState.LISTENING
        assert set(sample(lambda: factory.pin(18).state, 0.3)) == {1.0}


def test_thinking_blinks(factory: MockFactory) -> None:
    with make_light(factory) as light:
        light.show(DollState.THINKING)
        values = sample(lambda: factory.pin(18).state, 0.6)
        assert set(values) == {0.0, 1.0}
        flips = sum(a != b for a, b in zip(values, values[1:], strict=False))
        assert 3 <= flips <= 7  # ~4 Hz: about 4.8 changes in 0.6 s


def test_idle_breathes_slowly_and_dimly(factory: MockFactory) -> None:
    with make_light(factory) as light:
        light.show(DollState.IDLE)
        values = sample(lambda: factory.pin(18).state, 1.6, every_s=0.02)
        assert min(values) < 0.1 and max(values) > 0.25
        assert max(values) <= 0.4  # dim
        assert len(set(values)) > 10  # a fade, not a blink


def test_speaking_pulses_faster(factory: MockFactory) -> None:
    with make_light(factory) as light:
        light.show(DollState.SPEAKING)
        values = sample(lambda: factory.pin(18).state, 0.6)
        assert min(values) < 0.35 and max(values) > 0.9
        assert len(set(values)) > 5


def test_error_on_rgb_is_red_only(factory: MockFactory) -> None:
    with make_light(factory, kind="rgb") as light:
        light.show(DollState.ERROR)
        red, green, blue = (factory.pin(n) for n in (5, 6, 13))
        values = sample(lambda: (red.state, green.state, blue.state), 0.6)
        assert {v[0] for v in values} == {0.0, 1.0}
        assert {v[1] for v in values} == {0.0} and {v[2] for v in values} == {0.0}


def test_error_on_a_single_led_is_two_blinks_then_a_pause(factory: MockFactory) -> None:
    with make_light(factory) as light:
        pin = factory.pin(18)
        light.show(DollState.ERROR)
        pin.clear_states()
        time.sleep(1.0)
        # on (already), off, on, off, then the long pause: no more changes within 1 s
        assert [s.state for s in pin.states] == [1.0, 0.0, 1.0, 0.0]


def test_each_state_has_its_colour_on_rgb(factory: MockFactory) -> None:
    with make_light(factory, kind="rgb") as light:
        light.show(DollState.LISTENING)
        assert light.value == (0.0, 1.0, 0.0)
        light.show(DollState.THINKING)
        assert light.value[2] == 1.0 and light.value[0] == 0.0
        light.show(DollState.SPEAKING)
        red, green, blue = light.value
        assert red > blue > green  # pink


def test_common_anode_rgb_inverts_the_pins(factory: MockFactory) -> None:
    with make_light(factory, kind="rgb", active_high=False) as light:
        light.show(DollState.LISTENING)
        assert (factory.pin(5).state, factory.pin(6).state, factory.pin(13).state) == (1.0, 0.0, 1.0)


def test_switching_state_stops_the_previous_pattern_at_once(factory: MockFactory) -> None:
    with make_light(factory) as light:
        pin = factory.pin(18)
        light.show(DollState.THINKING)
        time.sleep(0.3)
        light.show(DollState.LISTENING)
        pin.clear_states()  # from here on, every change the pin goes through is recorded
        time.sleep(0.4)
        assert [s.state for s in pin.states] == [1.0]


def test_showing_the_same_state_again_does_not_restart_it(factory: MockFactory) -> None:
    with make_light(factory) as light:
        pin = factory.pin(18)
        light.show(DollState.SPEAKING)
        time.sleep(0.3)  # about 0.7 by now, on the way up
        light.show(DollState.SPEAKING)
        assert pin.state > 0.4  # a restart would have dropped it to the bottom of the pulse (0.2)


def test_brightness_scales_every_level(factory: MockFactory) -> None:
    with make_light(factory, brightness=0.5) as light:
        light.show(DollState.LISTENING)
        assert factory.pin(18).state == 0.5


def test_off_and_close_turn_it_off(factory: MockFactory) -> None:
    light = make_light(factory)
    pin = factory.pin(18)
    light.show(DollState.SPEAKING)
    light.off()
    assert light.state is None
    assert set(sample(lambda: pin.state, 0.2)) == {0.0}
    light.show(DollState.LISTENING)
    light.close()
    light.close()
    assert pin.state == 0.0
    assert pin.function == "input"  # released
    assert not any(t.name == "chacha-light" and t.is_alive() for t in threading.enumerate())
    light.show(DollState.IDLE)  # after close: nothing happens, nothing breaks
    assert pin.state == 0.0


def test_no_light_still_remembers_the_state(factory: MockFactory) -> None:
    with make_light(factory, kind="none") as light:
        light.show(DollState.THINKING)
        assert light.state is DollState.THINKING
        assert light.value == 0.0
    assert factory.pins == {}  # no pin was touched


def test_pins_without_pwm_fall_back_to_on_off(caplog: pytest.LogCaptureFixture) -> None:
    plain = MockFactory()  # MockPin: no PWM
    with caplog.at_level(logging.WARNING, logger="hardware.light"), make_light(plain) as light:
        light.show(DollState.THINKING)
        assert set(sample(lambda: plain.pin(18).state, 0.6)) == {False, True}
        light.show(DollState.LISTENING)
        assert plain.pin(18).state
    assert "cannot dim" in caplog.text
    plain.close()


def test_every_state_has_a_pattern(factory: MockFactory) -> None:
    with make_light(factory, kind="rgb") as light:
        for state in DollState:
            light.show(state)
            assert light.state is state
            light.show(state.value)  # the plain string works too
