# SPDX-License-Identifier: GPL-3.0-or-later
"""Settings of the doll's GPIO parts (the ``hardware:`` section of the configuration).

Pins are BCM GPIO numbers (GPIO17 is header pin 11), never physical header pin numbers.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

FIRST_PIN = 2
LAST_PIN = 27
"""The BCM GPIO numbers on the 40-pin header that a part may use (0 and 1 are the HAT EEPROM's)."""


def _check_bcm_pin(value: int) -> int:
    if not FIRST_PIN <= value <= LAST_PIN:
        raise PydanticCustomError(
            "bcm_pin",
            "must be a BCM GPIO number {first}..{last}, not a header pin number "
            "(the button's default GPIO17 is header pin 11)",
            {"first": FIRST_PIN, "last": LAST_PIN},
        )
    return value


BcmPin = Annotated[int, AfterValidator(_check_bcm_pin)]
"""A BCM GPIO number, 2..27."""


def _no_pin_twice(pins: dict[str, int]) -> None:
    """Raise naming both keys when two parts share a pin; ``pins`` maps full key → pin."""
    seen: dict[int, str] = {}
    for key, pin in pins.items():
        if pin in seen:
            raise PydanticCustomError(
                "pin_clash",
                "{first} and {second} are both {pin}: give each part its own pin",
                {"first": seen[pin], "second": key, "pin": pin},
            )
        seen[pin] = key


class LedSettings(BaseModel):
    """The status light: one LED, an RGB LED, or none."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["single", "rgb", "none"] = Field(
        default="single",
        description="'single': one LED on `pin`; 'rgb': an RGB LED on red/green/blue pins; 'none': no light.",
    )
    pin: BcmPin = Field(
        default=18,
        description="BCM GPIO number of a single LED (a PWM-capable pin preferred: 12, 13, 18, 19).",
    )
    red_pin: BcmPin = Field(default=5, description="BCM GPIO number of the RGB LED's red leg.")
    green_pin: BcmPin = Field(default=6, description="BCM GPIO number of the RGB LED's green leg.")
    blue_pin: BcmPin = Field(default=13, description="BCM GPIO number of the RGB LED's blue leg.")
    active_high: bool = Field(
        default=True,
        description="true: a high pin lights the LED (common cathode); false for common-anode RGB LEDs.",
    )
    brightness: float = Field(
        default=1.0, ge=0.0, le=1.0, description="Brightest the light gets (fraction of full, 0..1)."
    )

    def used_pins(self) -> dict[str, int]:
        """The pins this light drives, by their full configuration key."""
        if self.kind == "single":
            return {"hardware.led.pin": self.pin}
        if self.kind == "rgb":
            return {
                "hardware.led.red_pin": self.red_pin,
                "hardware.led.green_pin": self.green_pin,
                "hardware.led.blue_pin": self.blue_pin,
            }
        return {}

    @model_validator(mode="after")
    def _distinct_pins(self) -> LedSettings:
        _no_pin_twice(self.used_pins())
        return self


class HardwareSettings(BaseModel):
    """The push-to-talk button, the status light, and how GPIO is reached."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    button_pin: BcmPin = Field(
        default=17,
        description="BCM GPIO number of the push-to-talk button, wired to ground (internal pull-up).",
    )
    bounce_ms: int = Field(
        default=30, ge=0, le=1000, description="Debounce: edges closer than this are one (milliseconds)."
    )
    hold_s: float = Field(
        default=1.5, gt=0, le=60, description="A press held this long is a long press (seconds)."
    )
    led: LedSettings = Field(default_factory=LedSettings, description="The status light.")
    pin_factory: Literal["auto", "lgpio", "rpigpio", "mock"] = Field(
        default="auto",
        description=(
            "How GPIO is reached: 'auto' lets gpiozero choose (lgpio on a current Pi OS); "
            "'mock' runs with no GPIO at all (a PC, a test)."
        ),
    )

    def used_pins(self) -> dict[str, int]:
        """Every pin in use, by its full configuration key."""
        return {**self.led.used_pins(), "hardware.button_pin": self.button_pin}

    @model_validator(mode="after")
    def _distinct_pins(self) -> HardwareSettings:
        _no_pin_twice(self.used_pins())
        return self
