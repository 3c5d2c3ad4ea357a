# SPDX-License-Identifier: GPL-3.0-or-later
"""What piper-tts 1.8.0's trainer lacks, put right from our side before it runs.

1. ``piper/train/vits/models.py`` does ``from . import monotonic_align`` inside
   ``SynthesizerTrn.forward`` and calls ``monotonic_align.maximum_path``. That package's
   ``__init__`` imports ``.monotonic_align.core.maximum_path_c``, a Cython extension whose
   source (``core.pyx``) the wheel does not ship, so the first training step fails with an
   ImportError. :func:`install_monotonic_align` registers a module of our own under the
   package's name (``piper.train.vits.monotonic_align``) and as the attribute of
   ``piper.train.vits``, so that import finds ours: :func:`tts.voice.monotonic_align.maximum_path`.
   A ``core`` submodule with ``maximum_path_c`` is registered too, for code that imports the
   extension itself.
2. The default checkpoint callbacks of ``python -m piper.train`` monitor ``val_mel`` and
   ``val_mos`` (a UTMOS score that ``VitsModel(mos_metric="utmos")`` fetches with
   ``torch.hub`` from the network). We do not go through piper's LightningCLI at all: our
   trainer (:mod:`tts.voice.train`) builds ``VitsModel(mos_metric=None)`` and passes its own
   callbacks, so nothing is downloaded and no callback waits for a metric that never comes.
3. ``piper/train/export_onnx.py`` calls ``torch.onnx.export`` without ``dynamo=False``; in
   torch 2.13 that means the dynamo exporter, which needs ``onnxscript`` (piper-tts does not
   install it). Our export (:mod:`tts.voice.export`) calls the legacy TorchScript exporter
   itself.
"""

from __future__ import annotations

import sys
import types

import numpy as np

from tts.voice.monotonic_align import maximum_path, maximum_path_numpy

MODULE = "piper.train.vits.monotonic_align"


def _maximum_path_c(path: np.ndarray, neg_cent: np.ndarray, t_t_max: np.ndarray, t_s_max: np.ndarray) -> None:
    """The Cython extension's signature: fills ``path`` in place."""
    path[...] = maximum_path_numpy(neg_cent, t_t_max, t_s_max)


def install_monotonic_align() -> types.ModuleType:
    """Make ``piper.train.vits.monotonic_align`` our implementation; idempotent.

    Must run before the first training step (importing piper's trainer first is fine: the
    module is looked up only inside ``SynthesizerTrn.forward``).
    """
    import piper.train.vits as vits_package

    existing = sys.modules.get(MODULE)
    if existing is not None and getattr(existing, "__chachaping__", False):
        return existing
    module = types.ModuleType(MODULE, "Monotonic alignment search (chachaping's NumPy implementation).")
    module.__chachaping__ = True
    module.maximum_path = maximum_path
    module.__path__ = []  # a package, so that `.core` below can be imported from it
    core = types.ModuleType(MODULE + ".core", "Stand-in for the missing Cython extension.")
    core.maximum_path_c = _maximum_path_c
    module.core = core
    sys.modules[MODULE] = module
    sys.modules[MODULE + ".core"] = core
    vits_package.monotonic_align = module
    return module
