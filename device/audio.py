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
    """Look at an audio file before any model loads: its length in seconds, from its header.

    The header is read first, so a file longer than ``max_s`` is refused before a sample is
    decoded. Then the file is decoded once, a block at a time, and nothing kept (a few
    milliseconds for a minute of sound): a file cut short (a copy or a transfer that stopped) or
    damaged is refused here, not after a speech model has loaded. A WAV whose data is shorter
    than its header says, and an Ogg file that does not end with its last page, are refused from
    their bytes, since libsndfile reads both as shorter recordings without complaint.

    Raises :class:`~device.errors.AudioError` with a one-line message for a missing file, a
    folder, an empty file, a file that is not audio, a recording with no samples in it, one
    longer than ``max_s`` seconds, or one truncated or damaged.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"audio file not found: {path} — check the path, and {_HINT}")
    if path.is_dir():
        raise AudioError(f"{path} is a folder, not an audio file — {_HINT}")
    if path.stat().st_size == 0:
        raise AudioError(f"audio file {path} is empty (0 bytes) — record again, and {_HINT}")
    _check_container(path)
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
    _check_decodes(path, info)
    return duration


_AGAIN = "copy it again whole, or record it again"
_DECODE_SLACK_S = 0.1
"""How much shorter than its header's count a file may decode: an MP3 without a length tag only
estimates its count. A cut FLAC fails to decode outright; a cut WAV or Ogg is found from its bytes."""


def _check_container(path: Path) -> None:
    """Refuse a WAV or Ogg file cut short, from its bytes (libsndfile reads it as a shorter one)."""
    size = path.stat().st_size
    try:
        with path.open("rb") as f:
            head = f.read(12)
            reason = (
                _wav_cut(f, size)
                if head[:4] == b"RIFF" and head[8:12] == b"WAVE"
                else _ogg_cut(f, size)
                if head[:4] == b"OggS"
                else None
            )
    except OSError as e:
        raise AudioError(f"cannot read audio file {path}: {e} — {_HINT}") from None
    if reason is not None:
        raise AudioError(f"audio file {path} is truncated: {reason} — {_AGAIN}")


def _check_decodes(path: Path, info) -> None:
    """Refuse a file that does not decode to its end: all of it is decoded, a block at a time."""
    decoded = 0
    block = max(1024, (1 << 19) // max(1, info.channels))  # at most 1 MiB of int16 at a time
    try:
        with sf.SoundFile(path) as f:
            while len(samples := f.read(block, dtype="int16", always_2d=True)):
                decoded += len(samples)
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        detail = (getattr(e, "error_string", None) or str(e)).strip().rstrip(".")
        announced = info.frames / info.samplerate
        raise AudioError(
            f"audio file {path} is truncated or damaged: it stops decoding after "
            f"{decoded / info.samplerate:.1f} s of the {announced:.1f} s its header announces "
            f"({detail}) — {_AGAIN}"
        ) from None
    if decoded < info.frames - _DECODE_SLACK_S * info.samplerate:
        raise AudioError(
            f"audio file {path} is truncated or damaged: only {decoded / info.samplerate:.1f} s of "
            f"the {info.frames / info.samplerate:.1f} s its header announces could be decoded — {_AGAIN}"
        )


def _wav_cut(f, size: int) -> str | None:
    """Why a RIFF/WAVE file is cut short (its data chunk announces more bytes than follow), or None."""
    offset = 12
    for _ in range(64):  # a WAV has a handful of chunks; more is not a recording
        f.seek(offset)
        chunk = f.read(8)
        if len(chunk) < 8:
            return None
        declared = int.from_bytes(chunk[4:], "little")
        if chunk[:4] == b"data":
            there = size - offset - 8
            # 0x7FFFFFFF and above: a header written before the recording ended (a stream)
            if there < declared < 0x7FFFFFFF:
                return f"its header announces {declared:,} bytes of sound, but {there:,} are there"
            return None
        offset += 8 + declared + (declared & 1)
    return None


_OGG_MAX_PAGE = 27 + 255 + 255 * 255


def _ogg_cut(f, size: int) -> str | None:
    """Why an Ogg file is cut short, or None: it must end where a page ends, and that last page
    must carry the end-of-stream mark that every finished Ogg recording ends with."""
    start = max(0, size - _OGG_MAX_PAGE - 16)
    f.seek(start)
    tail = f.read()
    at = len(tail)
    while (at := tail.rfind(b"OggS\x00", 0, at)) >= 0:
        if at + 27 > len(tail):
            continue
        segments = tail[at + 26]
        lacing = tail[at + 27 : at + 27 + segments]
        end = at + 27 + segments + sum(lacing)
        if len(lacing) == segments and end == len(tail):
            if tail[at + 5] & 0x04:
                return None
            return "its last Ogg page has no end-of-stream mark, so the recording was cut off"
    return "it does not end where an Ogg page ends, so the last page was cut off"


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
