"""Audio as samples: the one int16 scale and dBFS for the whole project, and synthesised
speech (one sentence of audio, joining, volume, WAV in and out).

PCM arithmetic lives here, in the lowest package every other one imports, so that the doll,
the voice-cloning tools and the Telegram bot convert and measure audio the same way:
float samples are full scale at 1.0, int16 at 32768 (``to_int16``/``to_float``), and levels
are dB relative to full scale, floored at ``SILENCE_DBFS``.
"""

from __future__ import annotations

import io
import logging
import math
import struct
import wave
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tts.errors import TTSError

_LOGGER = logging.getLogger(__name__)

_INT16_MIN = -32768
_INT16_MAX = 32767

FULL_SCALE = 32768.0
"""int16 full scale: float 1.0 is this many int16 steps."""
SILENCE_DBFS = -120.0
"""The level of digital silence, and the floor of every level here (dBFS)."""


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Float samples (full scale 1.0) as int16: ×32768, rounded, clipped; NaN is silence.

    Exact for floats that came from int16 (``to_float``), so the two round-trip.
    """
    x = np.nan_to_num(np.asarray(samples, dtype=np.float64), nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(np.rint(x * FULL_SCALE), _INT16_MIN, _INT16_MAX).astype(np.int16)


def to_float(samples: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Samples with full scale 1.0: int16 (any signed integer) is divided by its full scale."""
    x = np.asarray(samples)
    if np.issubdtype(x.dtype, np.signedinteger):
        return (x.astype(np.float64) / float(-np.iinfo(x.dtype).min)).astype(dtype)
    if np.issubdtype(x.dtype, np.floating):
        return x.astype(dtype)
    raise ValueError(f"need signed integer or float samples, not {x.dtype}")


def power_dbfs(mean_square):
    """Mean squares (full scale 1.0) in dBFS, floored at ``SILENCE_DBFS``; a number or an array."""
    if np.ndim(mean_square) == 0:
        power = float(mean_square)
        return SILENCE_DBFS if power <= 0 else max(SILENCE_DBFS, 10.0 * math.log10(power))
    power = np.asarray(mean_square, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.maximum(SILENCE_DBFS, 10.0 * np.log10(np.maximum(power, 1e-20)))


def rms_dbfs(samples: np.ndarray) -> float:
    """Root-mean-square level in dB relative to full scale.

    Integer samples are scaled by their type's full scale (32768 for int16), float samples are
    taken as full scale = 1.0. A full-scale square wave is 0 dBFS, a full-scale sine about
    -3 dBFS. Silence or no samples give ``SILENCE_DBFS`` (-120.0), which is also the floor.
    """
    x = np.asarray(samples)
    if x.size == 0:
        return SILENCE_DBFS
    return power_dbfs(float(np.mean(np.square(to_float(x, np.float64)))))


def peak_dbfs(samples: np.ndarray) -> float:
    """Level of the largest sample in dBFS (``SILENCE_DBFS`` for silence or no samples)."""
    x = np.asarray(samples)
    if x.size == 0:
        return SILENCE_DBFS
    return power_dbfs(float(np.max(np.abs(to_float(x, np.float64)))) ** 2)


@dataclass(frozen=True, eq=False)
class SpeechAudio:
    """The audio of one sentence."""

    text: str
    """The sentence as spoken (normalised)."""
    samples: np.ndarray
    """int16, mono."""
    sample_rate: int
    """Hertz."""

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate if self.sample_rate else 0.0


def as_int16(samples: np.ndarray) -> np.ndarray:
    """Mono samples as int16: floats are taken as -1‥1, other integers are clipped."""
    array = np.asarray(samples)
    if array.ndim != 1:
        raise TTSError(
            f"audio must be mono (one dimension), got shape {array.shape}: "
            "mix the channels down before writing"
        )
    if array.dtype == np.int16:
        return array
    if np.issubdtype(array.dtype, np.floating):
        return to_int16(array)
    return clip_int16(array)


def clip_int16(samples: np.ndarray) -> np.ndarray:
    """Samples already on the int16 scale (any dtype), rounded and clipped into int16."""
    return np.clip(np.rint(np.asarray(samples)), _INT16_MIN, _INT16_MAX).astype(np.int16)


def scale_volume(samples: np.ndarray, volume: float) -> np.ndarray:
    """int16 samples times ``volume`` (1.0 unchanged), clipped to the int16 range."""
    if volume == 1.0:
        return samples
    return clip_int16(samples.astype(np.float32) * volume)


def join_audio(
    chunks: Iterable[SpeechAudio], gap_ms: int, sample_rate: int | None = None
) -> tuple[np.ndarray, int]:
    """Sentences one after another with ``gap_ms`` of silence between them.

    Returns (int16 samples, hertz). With no chunks the result is empty at ``sample_rate``;
    without one to fall back on that is an error.
    """
    parts: list[np.ndarray] = []
    rate = None
    for chunk in chunks:
        if rate is None:
            rate = chunk.sample_rate
        elif chunk.sample_rate != rate:
            raise TTSError(
                f"cannot join audio at {rate} Hz and {chunk.sample_rate} Hz: "
                "synthesise every sentence with the same engine"
            )
        if parts and gap_ms > 0:
            parts.append(np.zeros(round(rate * gap_ms / 1000), dtype=np.int16))
        parts.append(as_int16(chunk.samples))
    if rate is None:
        if sample_rate is None:
            raise TTSError(
                "no audio to join: the text had nothing speakable — "
                "check the reply, or pass sample_rate to get empty audio"
            )
        return np.zeros(0, dtype=np.int16), sample_rate
    return np.concatenate(parts), rate


def write_wav(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit mono PCM to ``path``, creating its folder if needed."""
    path = Path(path)
    pcm = as_int16(samples)
    if sample_rate <= 0:
        raise TTSError(f"cannot write {path} at {sample_rate} Hz: the sample rate must be > 0")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Open the file first: wave.open(name) on a folder leaves a half-made writer whose
        # finaliser prints an "Exception ignored" traceback after our one-line error.
        with open(path, "wb") as handle, wave.open(handle, "wb") as wav_file:
            wav_file.setnchannels(1)
            wav_file.setsampwidth(2)
            wav_file.setframerate(sample_rate)
            wav_file.writeframes(pcm.astype("<i2").tobytes())
    except OSError as exc:
        raise TTSError(f"cannot write {path}: {exc.strerror or exc} — choose a writable path") from exc
    _LOGGER.debug("wrote %s (%.2f s at %d Hz)", path, len(pcm) / sample_rate, sample_rate)


def read_wav_bytes(data: bytes) -> tuple[np.ndarray, int]:
    """16-bit PCM WAV bytes → (mono int16 samples, hertz).

    Streamed WAV (espeak-ng --stdout) may carry placeholder sizes such as 0xFFFFFFFF in
    its RIFF header; then the data chunk simply runs to the end of the bytes.
    """
    try:
        with wave.open(io.BytesIO(data), "rb") as wav_file:
            channels, width, rate = (
                wav_file.getnchannels(),
                wav_file.getsampwidth(),
                wav_file.getframerate(),
            )
            frames = wav_file.readframes(wav_file.getnframes())
    except (wave.Error, EOFError, struct.error):
        channels, width, rate, frames = _read_riff_chunks(data)
    if width != 2:
        raise TTSError(f"expected 16-bit WAV audio, got {8 * width}-bit: use 16-bit PCM output")
    usable = len(frames) - len(frames) % (2 * channels)
    samples = np.frombuffer(frames[:usable], dtype="<i2").astype(np.int16)
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype(np.int16)
    return samples, rate


def _read_riff_chunks(data: bytes) -> tuple[int, int, int, bytes]:
    """Walk the RIFF chunks by hand, trusting no size that runs past the end."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise TTSError("the engine did not return WAV audio: check that it writes WAV to stdout")
    position = 12
    fmt: tuple[int, int, int] | None = None
    while position + 8 <= len(data):
        chunk_id = data[position : position + 4]
        (size,) = struct.unpack_from("<I", data, position + 4)
        body_start = position + 8
        body_end = min(body_start + size, len(data))
        if chunk_id == b"fmt " and body_end - body_start >= 16:
            audio_format, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, body_start)
            if audio_format != 1:
                raise TTSError(f"WAV format {audio_format} is not PCM: use 16-bit PCM output")
            fmt = (channels, bits // 8, rate)
        elif chunk_id == b"data":
            if fmt is None:
                break
            return (*fmt, data[body_start:body_end])
        position = body_end + (size & 1)
    raise TTSError("the WAV audio has no format or data chunk: check the engine's output")
