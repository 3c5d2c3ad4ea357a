# SPDX-License-Identifier: GPL-3.0-or-later
"""Audio helpers for speech-to-text: read a recording, measure its level, cut it up.

The recogniser wants 16-bit mono PCM at one fixed rate; people hand the doll
whatever their phone or microphone made. :func:`load_audio` bridges the two.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from device.errors import AudioError

#: What :func:`rms_dbfs` returns for digital silence (and never less than this).
SILENCE_DBFS = -120.0

_HINT = "give a recording made by a microphone, e.g. 16 kHz mono WAV"


def load_audio(path: Path | str, *, sample_rate: int = 16000) -> np.ndarray:
    """Read an audio file as 16-bit mono PCM at ``sample_rate`` Hz.

    Reads anything libsndfile reads (WAV, FLAC, OGG/Vorbis, ...): any sample
    rate, any number of channels, integer or float samples. Channels are mixed
    down to mono (their mean), the rate is converted with soxr ("HQ"), and the
    result is returned as a 1-D ``int16`` array (float input is clipped to full
    scale).

    Raises :class:`~device.errors.AudioError` (an ``STTError``) with a one-line
    message for a missing file, a folder, an empty file, a file that is not
    audio, or a recording with no samples in it.
    """
    if not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive number of Hz, not {sample_rate!r}")
    path = Path(path)
    if not path.exists():
        raise AudioError(f"audio file not found: {path} — check the path, and {_HINT}")
    if path.is_dir():
        raise AudioError(f"{path} is a folder, not an audio file — {_HINT}")
    if path.stat().st_size == 0:
        raise AudioError(f"audio file {path} is empty (0 bytes) — record again, and {_HINT}")

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
    return _to_int16(mono)


def _to_int16(x: np.ndarray) -> np.ndarray:
    """Float samples (full scale = 1.0) to int16; exact for data that came from int16."""
    x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(np.rint(x * 32768.0), -32768, 32767).astype(np.int16)


def rms_dbfs(samples: np.ndarray) -> float:
    """Root-mean-square level in dB relative to full scale.

    Integer samples are scaled by their type's full scale (32768 for int16),
    float samples are taken as full scale = 1.0. A full-scale square wave is
    0 dBFS, a full-scale sine about -3 dBFS. Silence or no samples give
    :data:`SILENCE_DBFS` (-120.0), which is also the floor.
    """
    x = np.asarray(samples)
    if x.size == 0:
        return SILENCE_DBFS
    if np.issubdtype(x.dtype, np.signedinteger):
        full_scale = float(-np.iinfo(x.dtype).min)
    elif np.issubdtype(x.dtype, np.floating):
        full_scale = 1.0
    else:
        raise ValueError(f"rms_dbfs needs signed integer or float samples, not {x.dtype}")
    mean_square = float(np.mean(np.square(x.astype(np.float64) / full_scale)))
    if mean_square <= 0.0:
        return SILENCE_DBFS
    return max(SILENCE_DBFS, 10.0 * math.log10(mean_square))


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
