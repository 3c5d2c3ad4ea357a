# SPDX-License-Identifier: GPL-3.0-or-later
"""The doll's audio: read a recording, convert and measure PCM, cut it up; the sound card.

The recogniser wants 16-bit mono PCM at one fixed rate; people hand the doll
whatever their phone or microphone made. :func:`load_audio` bridges the two.
PCM conversion and levels are the project's one set (:mod:`tts.audio`: int16 full scale is
32768). :func:`load_portaudio` is the one place the sound card's library is loaded, and
:func:`play` the one way to play a whole sound and wait (the live doll streams through
``device.audio_io`` instead).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from device.errors import AudioDeviceError, AudioError
from tts.audio import SILENCE_DBFS, peak_dbfs, rms_dbfs, to_float, to_int16

__all__ = [
    "SILENCE_DBFS",
    "as_pcm",
    "check_audio_file",
    "chunks",
    "load_audio",
    "load_portaudio",
    "play",
    "peak_dbfs",
    "rms_dbfs",
    "to_float",
    "to_int16",
]

_HINT = "give a recording made by a microphone, e.g. 16 kHz mono WAV"


def check_audio_file(path: Path | str, *, max_s: float | None = None) -> float:
    """Look at an audio file without decoding it: its length in seconds, from its header.

    Cheap (no samples are read), so a command can refuse a bad file before it loads any model.
    Raises :class:`~device.errors.AudioError` with a one-line message for a missing file, a
    folder, an empty file, a file that is not audio, a recording with no samples in it, or one
    longer than ``max_s`` seconds.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"audio file not found: {path} — check the path, and {_HINT}")
    if path.is_dir():
        raise AudioError(f"{path} is a folder, not an audio file — {_HINT}")
    if path.stat().st_size == 0:
        raise AudioError(f"audio file {path} is empty (0 bytes) — record again, and {_HINT}")
    try:
        info = sf.info(str(path))
    except sf.LibsndfileError as e:
        reason = (e.error_string or "unknown error").strip().rstrip(".")
        raise AudioError(
            f"cannot read audio file {path}: not a WAV/FLAC/OGG file ({reason}) — {_HINT}"
        ) from None
    except (RuntimeError, OSError) as e:  # damaged header, permission denied
        raise AudioError(f"cannot read audio file {path}: {e} — {_HINT}") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError(f"audio file {path} holds no sound (0 samples) — {_HINT}")
    duration = info.frames / info.samplerate
    if max_s is not None and duration > max_s:
        raise AudioError(
            f"audio file {path} is {duration:.1f} s long, more than stt.max_audio_s ({max_s:g} s): "
            "cut it shorter, or raise stt.max_audio_s in chacha.yaml"
        )
    return duration


def load_audio(path: Path | str, *, sample_rate: int = 16000, max_s: float | None = None) -> np.ndarray:
    """Read an audio file as 16-bit mono PCM at ``sample_rate`` Hz.

    Reads anything libsndfile reads (WAV, FLAC, OGG/Vorbis, ...): any sample
    rate, any number of channels, integer or float samples. Channels are mixed
    down to mono (their mean), the rate is converted with soxr ("HQ"), and the
    result is returned as a 1-D ``int16`` array (float input is clipped to full
    scale).

    Raises :class:`~device.errors.AudioError` (an ``STTError``) with a one-line
    message for a missing file, a folder, an empty file, a file that is not
    audio, a recording with no samples in it, or (before anything is decoded)
    one longer than ``max_s`` seconds.
    """
    if not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive number of Hz, not {sample_rate!r}")
    path = Path(path)
    check_audio_file(path, max_s=max_s)

    try:
        with sf.SoundFile(path) as f:
            rate = f.samplerate
            data = f.read(dtype="float32", always_2d=True)
    except sf.LibsndfileError as e:
        reason = (e.error_string or "unknown error").strip().rstrip(".")
        raise AudioError(
            f"cannot read audio file {path}: not a WAV/FLAC/OGG file ({reason}) — {_HINT}"
        ) from e
    except (RuntimeError, OSError) as e:  # truncated/damaged data, permission denied
        raise AudioError(f"cannot read audio file {path}: {e} — {_HINT}") from e

    if data.shape[0] == 0:
        raise AudioError(f"audio file {path} holds no sound (0 samples) — {_HINT}")

    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ")
    if mono.shape[0] == 0:
        raise AudioError(f"audio file {path} is too short ({data.shape[0]} samples at {rate} Hz) — {_HINT}")
    return to_int16(mono)


def chunks(samples: np.ndarray, sample_rate: int, chunk_s: float = 0.1) -> Iterator[np.ndarray]:
    """Yield consecutive pieces of ``chunk_s`` seconds (views, no copies).

    The last piece holds what is left and may be shorter; no samples are
    yielded for an empty array.
    """
    if sample_rate <= 0 or not chunk_s > 0:
        raise ValueError(f"sample_rate and chunk_s must be positive, not {sample_rate!r} and {chunk_s!r}")
    size = max(1, round(sample_rate * chunk_s))
    for start in range(0, len(samples), size):
        yield samples[start : start + size]


def as_pcm(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Check that samples are what the recognisers take: 1-D int16 (an (n, 1) column is fine)."""
    pcm = np.asarray(samples)
    if pcm.ndim == 2 and pcm.shape[1] == 1:
        pcm = pcm[:, 0]
    if pcm.ndim != 1 or pcm.dtype != np.int16:
        raise ValueError(
            f"need int16 mono samples at {sample_rate} Hz, got {pcm.dtype} of shape {pcm.shape}"
            " (use device.audio.load_audio)"
        )
    return pcm


def load_portaudio():
    """The ``sounddevice`` module (PortAudio); its absence is an AudioDeviceError saying what to do."""
    try:
        import sounddevice
    except ImportError:
        raise AudioDeviceError(
            "sounddevice is not installed: install the device extra (`make install`)"
        ) from None
    except OSError as exc:  # the PortAudio library is missing
        raise AudioDeviceError(
            f"cannot load PortAudio ({exc}): run `sudo apt-get install libportaudio2`"
        ) from None
    return sounddevice


def play(samples: np.ndarray, sample_rate: int, *, device: str | int | None = None) -> None:
    """Play int16 mono samples on the speaker and wait until they are done."""
    sd = load_portaudio()
    try:
        sd.play(samples, sample_rate, device=device, blocking=True)
    except (sd.PortAudioError, ValueError) as exc:
        raise AudioDeviceError(
            f"no usable audio output device ({exc}): plug in a speaker, check `aplay -l`, "
            "or write a file instead with --output reply.wav"
        ) from None
