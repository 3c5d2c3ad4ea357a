# SPDX-License-Identifier: GPL-3.0-or-later
"""The monotonic alignment search of VITS, in vectorised NumPy.

Piper's trainer asks ``piper.train.vits.monotonic_align.maximum_path`` which phoneme each
spectrogram frame belongs to. piper-tts 1.8.0 ships only the Python wrapper of that search;
its Cython source (``core.pyx``) is missing from the wheel, so the import fails the moment
training starts. :func:`maximum_path` here does the same job and :mod:`tts.voice.piper_patches`
puts it where Piper looks for it.

The problem: ``score[y, x]`` says how well frame ``y`` fits phoneme ``x``. An alignment
gives every frame one phoneme; the first frame gets the first phoneme, the last frame the
last one, and from one frame to the next the phoneme either stays or moves on by exactly one
(so every phoneme gets at least one frame). The answer is the alignment with the largest sum
of scores, found by dynamic programming over the frames: ``best[y, x]`` is the best sum of an
alignment of frames ``0..y`` that ends on phoneme ``x``, and

    best[y, x] = score[y, x] + max(best[y-1, x], best[y-1, x-1])

Each frame is one vectorised step over the whole batch and every phoneme at once; walking
back from the last frame and phoneme recovers the path. Ties go to staying on the same
phoneme.
"""

from __future__ import annotations

import numpy as np

__all__ = ["maximum_path", "maximum_path_numpy"]


def maximum_path_numpy(score: np.ndarray, frames: np.ndarray, phonemes: np.ndarray) -> np.ndarray:
    """Best monotonic alignment of each batch item.

    ``score``: ``[batch, max_frames, max_phonemes]`` floats; ``frames[b]`` and
    ``phonemes[b]`` are item ``b``'s real sizes (the rest is padding and ignored).
    Returns an ``int32`` array of the same shape as ``score``: 1 where frame ``y`` is given
    to phoneme ``x``, else 0 (padding is always 0). An item with more phonemes than frames
    has no valid alignment; its path is then the best the frames allow and is still
    monotonic.
    """
    score = np.asarray(score, dtype=np.float64)
    if score.ndim != 3:
        raise ValueError(f"score must be [batch, frames, phonemes], not shape {score.shape}")
    batch, max_frames, max_phonemes = score.shape
    frames = np.asarray(frames, dtype=np.int64).reshape(batch)
    phonemes = np.asarray(phonemes, dtype=np.int64).reshape(batch)
    path = np.zeros(score.shape, dtype=np.int32)
    if batch == 0 or max_frames == 0 or max_phonemes == 0:
        return path

    x = np.arange(max_phonemes)[np.newaxis, :]  # [1, phonemes]
    # Phoneme x can hold frame y only if x <= y (each earlier phoneme needs a frame) and
    # the phonemes after x still fit into the frames after y.
    lowest = (phonemes - frames)[:, np.newaxis]  # + y gives the smallest x allowed at frame y
    real = x < phonemes[:, np.newaxis]

    best = np.full(score.shape, -np.inf)
    start = np.full((batch, max_phonemes), -np.inf)
    start[:, 0] = 0.0
    previous = start
    for y in range(max_frames):
        stay = previous
        move = np.empty_like(previous)
        move[:, 0] = 0.0 if y == 0 else -np.inf
        move[:, 1:] = previous[:, :-1]
        if y == 0:
            stay = np.full_like(previous, -np.inf)
        row = score[:, y, :] + np.maximum(stay, move)
        allowed = real & (x <= y) & (x >= lowest + y)
        row = np.where(allowed, row, -np.inf)
        best[:, y, :] = row
        previous = row

    items = np.arange(batch)
    index = np.maximum(phonemes - 1, 0)
    for y in range(max_frames - 1, -1, -1):
        active = (y < frames) & (phonemes > 0)
        path[items[active], y, index[active]] = 1
        if y == 0:
            break
        here = best[items, y - 1, index]
        before = best[items, y - 1, np.maximum(index - 1, 0)]
        step = active & (index > 0) & ((index == y) | (here < before))
        index = index - step
    return path


def maximum_path(neg_cent, mask):
    """Drop-in for ``piper.train.vits.monotonic_align.maximum_path``.

    ``neg_cent``: ``[batch, frames, phonemes]`` tensor of scores; ``mask``: the same shape,
    1 on real (frame, phoneme) pairs. Returns the path as a tensor of ``neg_cent``'s dtype
    on its device, as Piper's version does.
    """
    import torch

    frames = mask.sum(1)[:, 0].detach().cpu().numpy().astype(np.int64)
    phonemes = mask.sum(2)[:, 0].detach().cpu().numpy().astype(np.int64)
    score = neg_cent.detach().float().cpu().numpy()
    path = maximum_path_numpy(score, frames, phonemes)
    return torch.from_numpy(path).to(device=neg_cent.device, dtype=neg_cent.dtype)
