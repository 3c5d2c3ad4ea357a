# SPDX-License-Identifier: GPL-3.0-or-later
"""The doll's GPIO parts: the push-to-talk button and the status light (gpiozero wrappers).

This package knows nothing of speech or the LLM, nor of the doll that uses it: the light shows
a state by its name ("idle", "listening", ...). Every device takes ``pin_factory=``, made
by ``make_pin_factory(settings.pin_factory)``; gpiozero's global factory is never set here.

The settings and the error import without gpiozero (a server-only install composes
``HardwareSettings`` into its configuration); the devices load gpiozero when first used.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from hardware.errors import HardwareError
from hardware.settings import HardwareSettings, LedSettings

if TYPE_CHECKING:
    from hardware.button import PushToTalkButton
    from hardware.light import PATTERNS, StatusLight
    from hardware.pins import make_pin_factory

_LAZY = {
    "PushToTalkButton": "hardware.button",
    "StatusLight": "hardware.light",
    "PATTERNS": "hardware.light",
    "make_pin_factory": "hardware.pins",
}

__all__ = [
    "PATTERNS",
    "HardwareError",
    "HardwareSettings",
    "LedSettings",
    "PushToTalkButton",
    "StatusLight",
    "make_pin_factory",
]


def __getattr__(name: str) -> object:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hardware' has no attribute {name!r}")
