"""Playing audio on the doll's speaker through sounddevice (PortAudio)."""

from __future__ import annotations

import numpy as np


class AudioDeviceError(Exception):
    """No sound card, no PortAudio, or a device that refuses the format; says what to do."""


def play(samples: np.ndarray, sample_rate: int, *, device: str | int | None = None) -> None:
    """Play int16 mono samples and wait until they are done."""
    try:
        import sounddevice as sd
    except OSError as exc:  # PortAudio library missing
        raise AudioDeviceError(
            f"cannot load PortAudio ({exc}): run `sudo apt-get install libportaudio2`"
        ) from None
    try:
        sd.play(samples, sample_rate, device=device, blocking=True)
    except (sd.PortAudioError, ValueError) as exc:
        raise AudioDeviceError(
            f"no usable audio output device ({exc}): plug in a speaker, check `aplay -l`, "
            "or write a file instead with --output reply.wav"
        ) from None
