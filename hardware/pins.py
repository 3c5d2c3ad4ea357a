# SPDX-License-Identifier: GPL-3.0-or-later
"""Choosing how gpiozero reaches the pins (its "pin factory"), with one-line errors.

The factory is passed to every device (``pin_factory=``); this package never sets
gpiozero's global ``Device.pin_factory``.
"""

from __future__ import annotations

import logging
import warnings

from gpiozero import Device
from gpiozero.pins import Factory
from gpiozero.pins.mock import MockFactory, MockPWMPin

from hardware.errors import HardwareError

_LOGGER = logging.getLogger(__name__)

NO_GPIO_HINT = "on a Pi install python3-lgpio / `pip install lgpio`; elsewhere set hardware.pin_factory: mock"


def _no_gpio(reason: str) -> HardwareError:
    return HardwareError(f"no GPIO found ({reason}): {NO_GPIO_HINT}")


def make_pin_factory(name: str) -> Factory | None:
    """The pin factory named in ``hardware.pin_factory``, to pass as ``pin_factory=``.

    - ``"mock"``: a fresh ``MockFactory`` with PWM-capable mock pins (no GPIO needed).
    - ``"auto"``: gpiozero's own choice (lgpio, then RPi.GPIO, pigpio, native), tried now so
      that a machine with no GPIO is reported here, in one line, instead of at the first
      device. Returns that factory, or ``None`` when gpiozero already has a global one (a
      program or test that set ``Device.pin_factory`` itself), which devices then use.
    - ``"lgpio"`` / ``"rpigpio"``: that library's factory.

    Raises ``HardwareError`` when the factory cannot be made.
    """
    match name:
        case "mock":
            return MockFactory(pin_class=MockPWMPin)
        case "auto":
            if Device.pin_factory is not None:
                return None
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    factory = Device._default_pin_factory()
                except Exception as exc:
                    reasons = [str(w.message).removeprefix("Falling back from ") for w in caught]
                    raise _no_gpio("; ".join(reasons) or str(exc)) from None
            _LOGGER.debug("gpiozero chose the %s pin factory", type(factory).__name__)
            for warning in caught:
                _LOGGER.debug("gpiozero: %s", warning.message)
            return factory
        case "lgpio":
            return _load("lgpio", "gpiozero.pins.lgpio", "LGPIOFactory")
        case "rpigpio":
            return _load("RPi.GPIO", "gpiozero.pins.rpigpio", "RPiGPIOFactory")
        case _:
            raise HardwareError(
                f"unknown pin factory {name!r}: set hardware.pin_factory to auto, lgpio, rpigpio or mock"
            )


def _load(library: str, module_name: str, class_name: str) -> Factory:
    try:
        module = __import__(module_name, fromlist=[class_name])
        return getattr(module, class_name)()
    except ImportError as exc:
        raise _no_gpio(f"{library} is not installed: {exc}") from None
    except Exception as exc:  # the libraries raise their own error types (lgpio.error, RuntimeError)
        raise _no_gpio(f"{library}: {exc}") from None


def device_error(what: str, exc: Exception) -> HardwareError:
    """A one-line error for a gpiozero device that could not be opened (``what``: "button on GPIO17")."""
    from gpiozero.exc import BadPinFactory, GPIOPinInUse

    if isinstance(exc, BadPinFactory):
        return _no_gpio(str(exc))
    if isinstance(exc, GPIOPinInUse):
        return HardwareError(f"{what}: the pin is already in use ({exc}): give each part its own pin")
    return HardwareError(f"{what}: {type(exc).__name__}: {exc}: check the wiring and hardware settings")
