"""`chacha run` in a process of its own, on the simulated sound card and mock pins, steered
through its standard input: the fault suite kills it with SIGKILL as a doll's process dies.

Only what this machine lacks is stood in for: the sound card (the product's
``SimulatedSoundCard`` on real time, as ``chacha bench`` uses it, installed as the
``sounddevice`` module) and the GPIO pins (gpiozero's ``MockFactory`` as gpiozero's global
factory, which ``hardware.pin_factory: auto`` then uses). The rest is the real command: its
configuration, models, client, loop, light and systemd notification.

Usage: ``python doll_process.py BUTTON_PIN CHACHA_ARGS...`` (e.g. ``17 --config c.yaml run``).

Standard input, a command a line::

    press | release     the push-to-talk button
    say PATH            her voice: that 16 kHz recording on the microphone, with a second of
                        silence before it (the press reaching the loop) and after it

Standard output, an event a line::

    sound               his reply sounds: the first loud block on the speaker since ``say``
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import numpy as np

LOUD = 2000  # int16 peak of a block that is speech, not silence or dither


def _steer(card, pin) -> None:
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        match command:
            case "press":
                pin.drive_low()
            case "release":
                pin.drive_high()
            case "say":
                card.forget(input_log=False)  # only what sounds from now on counts
                card.say(np.zeros(16000, np.int16))
                card.say_file(Path(argument), then_silence_s=1.0)
                threading.Thread(target=_watch, args=(card,), daemon=True).start()
            case "":
                continue
            case other:
                print(f"unknown command {other!r}", file=sys.stderr, flush=True)


def _watch(card) -> None:
    """Report when his reply first sounds."""
    while True:
        if any(block.peak >= LOUD for block in card.forget(input_log=False)):
            print("sound", flush=True)
            return
        time.sleep(0.02)


def main(argv: list[str]) -> int:
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    from device.bench.simulated_audio import SimulatedSoundCard

    card = SimulatedSoundCard()
    sys.modules["sounddevice"] = card  # what device.audio.load_portaudio() imports
    Device.pin_factory = MockFactory(pin_class=MockPWMPin)
    pin = Device.pin_factory.pin(int(argv[0]))
    threading.Thread(target=_steer, args=(card, pin), daemon=True).start()

    from device.cli.main import main as chacha

    return chacha(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
