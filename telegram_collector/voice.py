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


class VoiceError(Exception):
    """A voice note that cannot be read or written; the message says why in one line."""


def decode_voice(data: bytes, *, sample_rate: int = 16000) -> np.ndarray:
    """An OGG/Opus (or any libsndfile format) voice note as mono int16 samples at ``sample_rate``."""
    import soundfile as sf
    import soxr

    if not data:
        raise VoiceError("the voice note is empty")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            rate = f.samplerate
            audio = f.read(dtype="float32", always_2d=True)
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
