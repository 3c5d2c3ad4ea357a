# SPDX-License-Identifier: GPL-3.0-or-later
"""End of speech: has she started talking, and has she stopped?

Two detectors of voice activity turn a block of audio (int16 mono, ~30 ms) into the
probability that it holds speech:

- :class:`SileroVad`: the Silero VAD network that faster-whisper ships
  (``faster_whisper/assets/silero_vad_v6.onnx``), run with onnxruntime one 32 ms window
  (512 samples at 16 kHz, with the 64 samples before it as context) at a time, its LSTM state
  carried from window to window, exactly as faster-whisper runs it over a whole file.
- :class:`EnergyVad`: the block's RMS level against a threshold in dBFS (1.0 or 0.0).

:class:`EndpointDetector` turns those probabilities into events: :class:`SpeechStarted` once
``min_speech_ms`` of speech has been heard; :class:`PauseBegan` when a pause in her speech
reaches ``speculate_after_ms`` and :class:`SpeechResumed` if she goes on after it; then
:class:`SpeechEnded` after the silence that :class:`device.doll.turn_end.TurnEnd` asks for
given her last words, or the first silent block in which
:class:`device.doll.turn_cues.CueModel` finds her turn over (``end_of_turn: cues``; reason
``"silence"``), or when the utterance reaches
``max_utterance_s`` (``"max_length"``), whichever comes first. Times are audio time (samples
fed), not wall time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from device.audio import rms_dbfs, to_float
from device.doll.settings import LoopSettings
from device.doll.turn_cues import CueModel, Prosody, pause_features
from device.doll.turn_end import TurnEnd
from device.errors import STTError


class VoiceActivity(Protocol):
    """Speech probability (0..1) of each block of int16 mono audio, fed in order."""

    def __call__(self, block: np.ndarray) -> float: ...

    def reset(self) -> None:
        """Forget everything heard: the next block starts a new utterance."""


@dataclass(frozen=True)
class SpeechStarted:
    """She has been speaking for ``min_speech_ms``; her speech began ``at_s`` into the utterance."""

    at_s: float


@dataclass(frozen=True)
class PauseBegan:
    """She has been silent a while after speaking: a good moment to read what she said so far."""

    at_s: float  # seconds of audio heard when the pause was noticed
    last_speech_s: float  # where her speech stopped (seconds into the utterance)


@dataclass(frozen=True)
class SpeechResumed:
    """She spoke again after a :class:`PauseBegan`: anything read at the pause is out of date."""

    at_s: float


@dataclass(frozen=True)
class TentativeEnd:
    """Her turn is probably over (``loop.tentative_end``): a reply may be asked for now, and
    listening goes on; if she speaks again a :class:`SpeechResumed` follows, and later another
    tentative end. Listening ends for sure after ``loop.max_silence_ms`` of silence."""

    at_s: float  # seconds of audio heard when it was judged over
    last_speech_s: float | None


@dataclass(frozen=True)
class SpeechEnded:
    """Listening should stop: after enough silence, or at the length limit."""

    reason: Literal["silence", "max_length"]
    at_s: float  # seconds of audio heard when it ended
    speech_s: float  # seconds of those that were speech
    last_speech_s: float | None  # where the last speech ended (seconds into the utterance)


Event = SpeechStarted | PauseBegan | SpeechResumed | TentativeEnd | SpeechEnded


_WORD_LAG_S = 0.45  # a streaming recogniser names her last word within this much silence

block_dbfs = rms_dbfs  # RMS level of a block in dB relative to full scale (-120 for silence)


class EnergyVad:
    """Loudness only: 1.0 when a block's RMS reaches ``threshold_dbfs``, else 0.0.

    Cheap and model-free, but any noise that loud counts as speech.
    """

    def __init__(self, threshold_dbfs: float = -40.0) -> None:
        self.threshold_dbfs = threshold_dbfs

    def __call__(self, block: np.ndarray) -> float:
        return 1.0 if block_dbfs(np.asarray(block).reshape(-1)) >= self.threshold_dbfs else 0.0

    def reset(self) -> None:
        pass


def silero_model_path() -> str:
    """Where faster-whisper keeps its Silero VAD model."""
    from faster_whisper.utils import get_assets_path

    return os.path.join(get_assets_path(), "silero_vad_v6.onnx")


class SileroVad:
    """The Silero VAD network, streamed: one probability per 32 ms window.

    A block's probability is the highest of the windows completed by that block (speech in
    any part of it counts); a block too short to complete a window repeats the last one.
    Not thread-safe: feed one stream from one thread.
    """

    WINDOW = 512  # samples per window at 16 kHz, as faster-whisper runs the model
    CONTEXT = 64  # samples of the previous window given with each one

    def __init__(self, sample_rate: int = 16000, *, model_path: str | None = None) -> None:
        if sample_rate != 16000:
            raise STTError(
                f"the Silero VAD works on 16000 Hz audio, not {sample_rate} Hz: "
                "set audio.capture_rate and stt.sample_rate to 16000, or set loop.vad: energy"
            )
        path = model_path or _find_model()
        try:
            import onnxruntime
        except ImportError as exc:
            raise STTError(
                f"cannot import onnxruntime for the Silero VAD ({exc}): reinstall faster-whisper "
                "(`pip install faster-whisper`), or set loop.vad: energy"
            ) from None
        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = 1
        options.enable_cpu_mem_arena = False
        options.log_severity_level = 4
        try:
            self._session = onnxruntime.InferenceSession(
                path, providers=["CPUExecutionProvider"], sess_options=options
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise STTError(
                f"cannot load the Silero VAD model {path} ({exc}): reinstall faster-whisper, "
                "or set loop.vad: energy"
            ) from None
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(self.CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self._last = 0.0

    def __call__(self, block: np.ndarray) -> float:
        samples = to_float(np.asarray(block, dtype=np.int16).reshape(-1))
        self._pending = np.concatenate([self._pending, samples])
        best: float | None = None
        while len(self._pending) >= self.WINDOW:
            window = self._pending[: self.WINDOW]
            self._pending = self._pending[self.WINDOW :]
            probability = self._run(window)
            best = probability if best is None else max(best, probability)
        if best is not None:
            self._last = best
        return self._last

    def _run(self, window: np.ndarray) -> float:
        frame = np.concatenate([self._context, window])[np.newaxis, :]
        output, self._h, self._c = self._session.run(None, {"input": frame, "h": self._h, "c": self._c})
        self._context = window[-self.CONTEXT :]
        return float(np.asarray(output).reshape(-1)[0])


def _find_model() -> str:
    try:
        path = silero_model_path()
    except ImportError as exc:
        raise STTError(
            f"the Silero VAD model comes with faster-whisper, which is not installed ({exc}): "
            "`pip install faster-whisper`, or set loop.vad: energy"
        ) from None
    if not os.path.isfile(path):
        raise STTError(
            f"the Silero VAD model is missing ({path}): reinstall faster-whisper, or set loop.vad: energy"
        )
    return path


def create_vad(settings: LoopSettings, sample_rate: int) -> VoiceActivity:
    """The detector ``loop.vad`` names, ready to use (Silero loads its model: a few ms)."""
    if settings.vad == "energy":
        return EnergyVad(settings.energy_threshold_dbfs)
    return SileroVad(sample_rate)


@dataclass(frozen=True)
class EndpointRules:
    """What an :class:`EndpointDetector` counts as speech, and how long things may last."""

    sample_rate: int = 16000
    threshold: float = 0.5  # a block is speech at this probability or above
    silence_ms: int = 700  # the quiet after which stray noise is forgotten
    min_speech_ms: int = 250  # speech needed before an utterance has begun
    max_utterance_s: float = 15.0
    speculate_after_ms: int | None = None  # a pause this long is reported (PauseBegan)
    confirm_ms: int | None = None  # tentative ends: this much silence ends her turn for sure

    @property
    def neg_threshold(self) -> float:
        """Below this a block is silence; in between it continues the previous block."""
        return max(self.threshold - 0.15, 0.01)


@dataclass
class _Utterance:
    """What one utterance has heard so far (audio time, seconds from its first block)."""

    elapsed_s: float = 0.0
    speech_s: float = 0.0
    started: bool = False
    ended: bool = False
    first_speech_s: float | None = None
    last_speech_s: float | None = None
    speaking: bool = False
    silence_s: float = 0.0
    paused: bool = False
    tentative: bool = False  # a TentativeEnd was reported in this pause
    text: str = ""
    text_at_pause: str = ""


class EndpointDetector:
    """Speech start and end from per-block speech probabilities.

    Feed it audio with :meth:`push` (it asks its VAD) or probabilities with
    :meth:`push_probability`. A block is speech at ``threshold`` or above and silence below
    ``threshold - 0.15``; in between it continues whatever the previous block was (the
    hysteresis Silero's authors use). Stray noise that never adds up to ``min_speech_ms`` is
    forgotten after ``silence_ms`` of quiet, so it cannot end the utterance early.

    How much silence ends the utterance is ``turn_end``'s call, from the words the recogniser
    has heard so far (:meth:`hear_text`); without a ``turn_end`` it is always ``silence_ms``.
    """

    def __init__(
        self,
        vad: VoiceActivity | None = None,
        *,
        sample_rate: int = 16000,
        threshold: float = 0.5,
        silence_ms: int = 700,
        min_speech_ms: int = 250,
        max_utterance_s: float = 15.0,
        turn_end: TurnEnd | None = None,
        speculate_after_ms: int | None = None,
        cues: CueModel | None = None,
        prosody: bool = False,
        confirm_ms: int | None = None,
    ) -> None:
        self.vad = vad
        self.turn_end = turn_end or TurnEnd("fixed", neutral_s=silence_ms / 1000)
        self.cues = cues
        """With a model, it (not ``turn_end``) decides when a pause ends her turn."""
        self.prosody = Prosody(sample_rate) if cues is not None or prosody else None
        """Pitch and level of her speech (with ``cues``, or ``prosody=True`` to trace them)."""
        self._pause_prosody: dict[str, float] = {}
        self.rules = EndpointRules(
            sample_rate, threshold, silence_ms, min_speech_ms, max_utterance_s, speculate_after_ms, confirm_ms
        )
        self._now = _Utterance()
        self.reset()

    @classmethod
    def from_settings(
        cls,
        settings: LoopSettings,
        vad: VoiceActivity | None,
        sample_rate: int,
        *,
        cues: CueModel | None = None,
        prosody: bool = False,
    ) -> EndpointDetector:
        """The detector ``loop`` describes; ``cues``: this model rather than the shipped one
        decides (whatever ``end_of_turn`` says); ``prosody``: track pitch and level anyway."""
        return cls(
            vad,
            sample_rate=sample_rate,
            threshold=settings.vad_threshold if settings.vad == "silero" else 0.5,
            silence_ms=settings.silence_ms,
            min_speech_ms=settings.min_speech_ms,
            max_utterance_s=settings.max_utterance_s,
            turn_end=TurnEnd(
                settings.end_of_turn,
                final_s=settings.min_silence_ms / 1000,
                neutral_s=settings.silence_ms / 1000,
                continuing_s=settings.max_silence_ms / 1000,
            ),
            speculate_after_ms=settings.speculate_after_ms,
            cues=cues or (CueModel.load() if settings.end_of_turn == "cues" else None),
            prosody=prosody,
            confirm_ms=settings.max_silence_ms if settings.tentative_end else None,
        )

    def reset(self) -> None:
        """Start a new utterance (and reset the VAD's own state)."""
        if self.vad is not None:
            self.vad.reset()
        if getattr(self, "prosody", None) is not None:
            self.prosody.reset()
        self._now = _Utterance()

    # -- what the utterance has heard so far ------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        return self.rules.sample_rate

    @property
    def elapsed_s(self) -> float:
        """Audio heard in this utterance, seconds."""
        return self._now.elapsed_s

    @property
    def speech_s(self) -> float:
        """How much of it counts as speech (stray noise forgotten)."""
        return self._now.speech_s

    @property
    def started(self) -> bool:
        """Whether she has begun (``min_speech_ms`` of speech)."""
        return self._now.started

    @property
    def ended(self) -> bool:
        return self._now.ended

    @property
    def first_speech_s(self) -> float | None:
        return self._now.first_speech_s

    @property
    def last_speech_s(self) -> float | None:
        return self._now.last_speech_s

    @property
    def text(self) -> str:
        """What the recogniser has heard so far (:meth:`hear_text`)."""
        return self._now.text

    @property
    def heard_speech(self) -> bool:
        """Whether any speech counts in this utterance so far (stray noise forgotten)."""
        return self._now.speech_s > 0

    def hear_text(self, text: str) -> None:
        """What the recogniser has heard so far: its last word says how long to wait."""
        self._now.text = text

    @property
    def pausing(self) -> bool:
        """She has spoken and is silent now."""
        return self._now.started and not self._now.speaking

    @property
    def silence_needed_s(self) -> float:
        """The silence that would end the utterance now, given the words heard so far.

        A streaming recogniser names a word some 0.3–0.4 s after it ends, so when a pause
        begins the text's last word is usually the one *before* her last: "먹었어" of "먹었어
        근데", while "근데" is not in yet. A finished sentence therefore ends her turn after
        ``min_silence_ms`` only when the text has changed during the pause (her last word came
        in); otherwise not before ``_WORD_LAG_S``, by when it would have.
        """
        needed = self.turn_end.silence_s(self._now.text)
        if self.pausing and self._now.text == self._now.text_at_pause and needed < _WORD_LAG_S:
            return min(_WORD_LAG_S, self.turn_end.neutral_s)
        return needed

    # -- hearing ----------------------------------------------------------------------------------

    def push(self, block: np.ndarray) -> Event | None:
        """Hear one block of int16 mono audio at ``sample_rate``."""
        if self.vad is None:
            raise TypeError("this detector has no VAD: give it probabilities with push_probability()")
        if self._now.ended:
            return None
        probability = self.vad(block)
        if self.prosody is not None:
            self.prosody.push(block, self._would_speak(probability))
        return self.push_probability(probability, len(block) / self.rules.sample_rate)

    def _would_speak(self, probability: float) -> bool:
        if probability >= self.rules.threshold:
            return True
        return self._now.speaking and probability >= self.rules.neg_threshold

    def pause_features(self) -> dict[str, float] | None:
        """The cues of the pause she is in now (None when she is not pausing, or no prosody)."""
        if not self.pausing or self.prosody is None:
            return None
        now = self._now
        return pause_features(self._pause_prosody, now.silence_s, now.text, now.text_at_pause)

    def _turn_over(self) -> bool:
        if self.cues is None:
            return self._now.silence_s >= self.silence_needed_s - 1e-9
        features = self.pause_features()
        return features is not None and self.cues.ends(features)

    def push_probability(self, probability: float, duration_s: float) -> Event | None:
        """Take the speech probability of the next ``duration_s`` seconds of audio."""
        now, rules = self._now, self.rules
        if now.ended:
            return None
        began = now.elapsed_s
        now.elapsed_s += duration_s
        if probability >= rules.threshold:
            now.speaking = True
        elif probability < rules.neg_threshold:
            now.speaking = False
        event: Event | None = None
        if now.speaking:
            now.silence_s = 0.0
            now.speech_s += duration_s
            now.last_speech_s = now.elapsed_s
            if now.first_speech_s is None:
                now.first_speech_s = began
            if not now.started and now.speech_s >= rules.min_speech_ms / 1000 - 1e-9:
                now.started = True
                event = SpeechStarted(now.first_speech_s)
            elif now.paused or now.tentative:
                now.paused = now.tentative = False
                event = SpeechResumed(began)
        else:
            if now.silence_s == 0.0:
                now.text_at_pause = now.text
                if self.prosody is not None:
                    self._pause_prosody = self.prosody.features()
            now.silence_s += duration_s
            if now.started and rules.confirm_ms is not None:
                if now.silence_s >= max(rules.confirm_ms / 1000, self.silence_needed_s) - 1e-9:
                    return self._end("silence")
                if not now.tentative and self._turn_over():
                    now.tentative = True
                    return TentativeEnd(now.elapsed_s, now.last_speech_s)
            elif now.started and self._turn_over():
                return self._end("silence")
            if not now.started and now.silence_s >= rules.silence_ms / 1000 - 1e-9:
                now.speech_s = 0.0  # stray noise, long ago: forget it
                now.first_speech_s = now.last_speech_s = None
            if (
                now.started
                and not now.paused
                and rules.speculate_after_ms is not None
                and now.silence_s >= rules.speculate_after_ms / 1000 - 1e-9
            ):
                now.paused = True
                event = PauseBegan(now.elapsed_s, now.last_speech_s or 0.0)
        if now.elapsed_s >= rules.max_utterance_s - 1e-9:
            return self._end("max_length")
        return event

    def _end(self, reason: Literal["silence", "max_length"]) -> SpeechEnded:
        now = self._now
        now.ended = True
        return SpeechEnded(reason, now.elapsed_s, now.speech_s, now.last_speech_s)
