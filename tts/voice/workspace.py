# SPDX-License-Identifier: GPL-3.0-or-later
"""The voice folder: where every step of `chacha voice …` reads and writes.

::

    DIR/                         (--dir; default $XDG_DATA_HOME/chachaping/voice)
      recorded/                  `record`: wavs/NNNN-hhhhhh.wav, review.tsv, progress.json
      imported/                  `import`: clips/*.wav, review.tsv (his corrections go here)
      dataset/                   `prepare`: metadata.csv (id|text), wavs/, report.json
      training/                  `train`: checkpoints/last.ckpt, best.ckpt, config.json,
                                 cache/ (Piper's phonemes and spectrograms), logs/ (TensorBoard)
      voice/                     `export`: voice.onnx, voice.onnx.json
      listen/                    `install`: the listening test's WAVs
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 22050
"""Hertz of every recording, clip and dataset WAV (Piper's 'medium' rate)."""

Load = Callable[[Path, int], np.ndarray]
"""Reads a recording as int16 mono at the given rate; raises ``UnreadableAudio`` when it cannot.
The steps take one from the command line (the doll's audio loader), so this package reads no
audio formats of its own."""


@dataclass(frozen=True)
class VoiceDir:
    root: Path

    @property
    def recorded(self) -> Path:
        return self.root / "recorded"

    @property
    def imported(self) -> Path:
        return self.root / "imported"

    @property
    def dataset(self) -> Path:
        return self.root / "dataset"

    @property
    def metadata(self) -> Path:
        return self.dataset / "metadata.csv"

    @property
    def dataset_wavs(self) -> Path:
        return self.dataset / "wavs"

    @property
    def report(self) -> Path:
        return self.dataset / "report.json"

    @property
    def training(self) -> Path:
        return self.root / "training"

    @property
    def checkpoints(self) -> Path:
        return self.training / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last.ckpt"

    @property
    def voice(self) -> Path:
        return self.root / "voice"

    @property
    def onnx(self) -> Path:
        return self.voice / "voice.onnx"

    @property
    def listen(self) -> Path:
        return self.root / "listen"

    def review_files(self) -> list[Path]:
        """The review files of recorded and imported clips that exist."""
        return [p for p in (self.recorded / "review.tsv", self.imported / "review.tsv") if p.is_file()]
