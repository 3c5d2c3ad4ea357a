"""The tests' sound card: the product's simulated one (device/simulated_audio.py)."""

from device.simulated_audio import PlayedBlock, PortAudioError, SimulatedSoundCard

FakeSoundDevice = SimulatedSoundCard

__all__ = ["FakeSoundDevice", "PlayedBlock", "PortAudioError", "SimulatedSoundCard"]
