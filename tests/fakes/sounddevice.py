"""The tests' sound card: the product's simulated one (device/bench/simulated_audio.py), on simulated time.

``FakeSoundDevice(...)`` is a ``SimulatedSoundCard`` with a fresh ``SimulatedClock`` unless a
``clock`` is given (``clock=MONOTONIC`` for the few tests that need real time): its blocks
carry that clock's time, and tests assert on it, never on how fast the machine ran.
"""

from device.bench.simulated_audio import PlayedBlock, PortAudioError, SimulatedSoundCard
from hardware.clock import SimulatedClock


def FakeSoundDevice(**kwargs) -> SimulatedSoundCard:  # noqa: N802 (it stands for a class)
    kwargs.setdefault("clock", SimulatedClock())
    return SimulatedSoundCard(**kwargs)


__all__ = ["FakeSoundDevice", "PlayedBlock", "PortAudioError", "SimulatedSoundCard"]
