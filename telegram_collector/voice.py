"""Telegram voice notes (OGG/Opus) to recogniser samples, and 차차's speech back to a voice note.

libsndfile (through soundfile) reads and writes Ogg Opus itself, so no ffmpeg is needed. Opus
only runs at 8, 12, 16, 24 or 48 kHz; replies are written at 48 kHz mono, as Telegram's own
apps record them.
"""

from __future__ import annotations

import io
import math

import numpy as np

from tts.audio import to_float, to_int16

VOICE_RATE = 48000
"""Hertz of the voice notes the bot sends."""


BYTES_PER_S = 16_000
"""The most a voice note may weigh per second it lasts: 128 kbit/s, four times what Telegram's
apps record (Opus at about 32 kbit/s), so only a note that is not what it claims is refused."""


class VoiceError(Exception):
    """A voice note that cannot be read or written; the message says why in one line."""


class VoiceTooLong(VoiceError):
    """A voice note longer than the bot listens to, found from its header or while decoding."""

    def __init__(self, length_s: float, limit_s: float) -> None:
        super().__init__(f"the voice note is {length_s:.0f} s long; the limit is {limit_s:g} s")
        self.length_s = length_s
        self.limit_s = limit_s


def size_limit(max_s: float) -> int:
    """Bytes a voice note of at most ``max_s`` seconds may have (with 64 KiB for its headers)."""
    return int(max_s * BYTES_PER_S) + 65536


def decode_voice(data: bytes, *, sample_rate: int = 16000, max_s: float | None = None) -> np.ndarray:
    """An OGG/Opus (or any libsndfile format) voice note as mono int16 samples at ``sample_rate``.

    With ``max_s``, a note longer than that (by more than the second Telegram rounds to) raises
    :class:`VoiceTooLong`: from its header, before any sample is decoded, and, should the header
    understate it, as soon as decoding passes the limit; never is more than that decoded.
    """
    import soundfile as sf
    import soxr

    if not data:
        raise VoiceError("the voice note is empty")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            rate = f.samplerate
            if max_s is None:
                audio = f.read(dtype="float32", always_2d=True)
            else:
                if f.frames / rate > max_s + 1:  # Ogg: the last page's granule position
                    raise VoiceTooLong(f.frames / rate, max_s)
                budget = int((max_s + 1) * rate) + 1
                audio = f.read(frames=budget, dtype="float32", always_2d=True)
                if audio.shape[0] >= budget:
                    raise VoiceTooLong(max(f.frames, budget) / rate, max_s)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise VoiceError(f"the voice note is not audio libsndfile can read ({exc})") from None
    if audio.shape[0] == 0:
        raise VoiceError("the voice note holds no sound")
    mono = audio.mean(axis=1, dtype=np.float32) if audio.shape[1] > 1 else audio[:, 0]
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ")
    return to_int16(mono)


def encode_voice(samples: np.ndarray, sample_rate: int) -> tuple[bytes, int]:
    """Mono int16 samples as an OGG/Opus voice note at 48 kHz; returns (bytes, whole seconds)."""
    import soundfile as sf
    import soxr

    audio = to_float(np.asarray(samples, dtype=np.int16).reshape(-1))
    if audio.size == 0:
        raise VoiceError("there is no speech to send")
    if sample_rate != VOICE_RATE:
        audio = soxr.resample(audio, sample_rate, VOICE_RATE, quality="HQ")
    buffer = io.BytesIO()
    try:
        sf.write(buffer, np.clip(audio, -1.0, 1.0), VOICE_RATE, format="OGG", subtype="OPUS")
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise VoiceError(f"cannot write an Ogg Opus voice note with this libsndfile ({exc})") from None
    return buffer.getvalue(), max(1, math.ceil(len(audio) / VOICE_RATE))
