"""Choosing the speech recogniser (one of ``device.stt.registry``, or auto); loading it, cleaned.

Hybrid (``device.stt.hybrid``) is what the doll uses where the machine allows; ``auto`` picks
it when this machine runs Whisper fast enough (see :func:`choose_engine`).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from dataclasses import dataclass

import numpy as np

from device.stt import registry
from device.stt.cleanup import CleanTranscriber
from device.stt.settings import STTSettings

_LOGGER = logging.getLogger(__name__)

_SPEED_FILE = "stt-speed.json"


@dataclass(frozen=True)
class Choice:
    engine: str  # a registered engine (auto's choice: hybrid or vosk)
    reason: str


def total_memory_mb() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        return None
    return None


def _cpu_name() -> str:
    """The CPU's name: x86's "model name", else a Pi's "Hardware" or "Model" line."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip().lower(), value.strip())
    except OSError:
        pass
    for key in ("model name", "hardware", "model"):
        if fields.get(key):
            return fields[key]
    return platform.processor() or platform.machine()


_PASSES = 3  # encoder passes timed per measurement; the fastest counts
_MAX_AGE_S = 30 * 86400  # a measurement older than this is taken again
_MARGINAL = 2.0  # a figure within this factor of stt.auto_max_encode_s is measured again at each start


def measure_encode_s(whisper, passes: int = _PASSES) -> list[float]:
    """Seconds each of ``passes`` Whisper encoder passes over a 30 s window took here.

    One warm-up pass runs first. The fastest pass is what this machine can do: a pass is only
    ever slowed down, by whatever else the machine was doing at the time.
    """
    model = whisper.model
    features = model.feature_extractor(np.zeros(16000, np.float32))
    window = features[:, : model.feature_extractor.nb_max_frames]
    window = np.pad(window, ((0, 0), (0, model.feature_extractor.nb_max_frames - window.shape[1])))
    model.encode(window)  # the first pass warms caches up
    times = []
    for _ in range(max(1, passes)):
        started = time.perf_counter()
        model.encode(window)
        times.append(time.perf_counter() - started)
    return times


@dataclass(frozen=True)
class SpeedRecord:
    """What this machine's Whisper speed was measured to be (``stt-speed.json`` in the cache)."""

    key: str  # CPU, core count, model and threads: another machine or model measures again
    passes: tuple[float, ...]  # every pass timed since the record was started, in seconds
    measured_at: float  # Unix time of the first measurement in it

    @property
    def encode_s(self) -> float:
        return min(self.passes)

    def age_s(self, now: float | None = None) -> float:
        return max(0.0, (time.time() if now is None else now) - self.measured_at)

    def describe(self, limit_s: float) -> str:
        verdict = "hybrid" if self.encode_s <= limit_s else "vosk"
        days = self.age_s() / 86400
        when = "today" if days < 1 else f"{days:.0f} day(s) ago"
        return (
            f"one Whisper pass takes {self.encode_s:.2f} s here (fastest of {len(self.passes)}, "
            f"measured {when}); auto picks {verdict} (limit {limit_s:g} s)"
        )


def speed_key(settings: STTSettings, whisper) -> str:
    """What a stored speed measurement holds for: this CPU, its number of cores, the model and
    Whisper's threads (a record for any other is measured again)."""
    return f"{_cpu_name()}|{os.cpu_count()}|{whisper.model_path}|{settings.whisper.cpu_threads}"


def read_speed(settings: STTSettings, key: str | None = None) -> SpeedRecord | None:
    """The stored measurement (for ``key``, when given), or None."""
    try:
        stored = json.loads((settings.cache_dir / _SPEED_FILE).read_text(encoding="utf-8"))
        passes = tuple(float(p) for p in stored.get("passes") or [stored["encode_s"]])
        record = SpeedRecord(str(stored["key"]), passes, float(stored.get("measured_at", 0.0)))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not record.passes or (key is not None and record.key != key):
        return None
    return record


def _why_measure(record: SpeedRecord | None, limit_s: float) -> str | None:
    """Why the stored figure cannot be trusted as it is (None: it can)."""
    if record is None:
        return "no measurement for this machine and model yet"
    if record.age_s() > _MAX_AGE_S:
        return f"the measurement is {record.age_s() / 86400:.0f} days old"
    if limit_s / _MARGINAL < record.encode_s < limit_s * _MARGINAL:
        return f"{record.encode_s:.2f} s is close to the {limit_s:g} s limit"
    return None


def whisper_speed(
    settings: STTSettings, whisper, *, fresh: bool = False, passes: int = _PASSES
) -> SpeedRecord:
    """This machine's Whisper speed: stored, or measured now when the stored one is missing,
    old or close to the limit (then kept with the earlier passes: the fastest counts).

    ``fresh``: measure now and start a new record (``chacha doctor --measure-stt``).
    """
    key = speed_key(settings, whisper)
    record = None if fresh else read_speed(settings, key)
    why = "asked to measure again" if fresh else _why_measure(record, settings.auto_max_encode_s)
    if why is None and record is not None:
        return record
    _LOGGER.info("measuring Whisper's speed here: %s", why)
    times = tuple(measure_encode_s(whisper, passes))
    if record is not None and record.age_s() <= _MAX_AGE_S:
        record = SpeedRecord(key, record.passes + times, record.measured_at)
    else:
        record = SpeedRecord(key, times, time.time())
    cache = settings.cache_dir / _SPEED_FILE
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "key": record.key,
            "encode_s": record.encode_s,
            "passes": list(record.passes[-20:]),
            "measured_at": record.measured_at,
        }
        cache.write_text(json.dumps(payload), encoding="utf-8")
    except OSError as exc:
        _LOGGER.warning("cannot keep the speed measurement in %s: %s", cache, exc)
    return record


def choose_engine(settings: STTSettings, whisper_factory) -> tuple[Choice, object | None]:
    """Resolve 'auto': hybrid when memory allows and Whisper is fast enough here, else vosk.

    The speed is the fastest of several passes, kept in the cache folder per machine and
    model, and measured again when it is missing, a month old, or close to the limit: a
    measurement taken while the machine was busy does not decide for good.
    Returns the choice and the Whisper transcriber if one was loaded to decide.
    """
    if settings.engine != "auto":
        return Choice(settings.engine, "set in stt.engine"), None
    memory = total_memory_mb()
    if memory is not None and memory < settings.auto_min_memory_mb:
        return Choice("vosk", f"{memory} MB of memory is too little for Vosk and Whisper together"), None
    whisper = whisper_factory()
    encode_s = whisper_speed(settings, whisper).encode_s
    if encode_s <= settings.auto_max_encode_s:
        return Choice(
            "hybrid", f"one Whisper pass takes {encode_s:.2f} s here (≤ {settings.auto_max_encode_s:g} s)"
        ), whisper
    return Choice(
        "vosk",
        f"one Whisper pass takes {encode_s:.2f} s here "
        f"(> {settings.auto_max_encode_s:g} s): too slow for the doll",
    ), None


def create_transcriber(
    settings: STTSettings, *, engine: str | None = None, debug: bool = False
) -> CleanTranscriber:
    """The recogniser the settings ask for (after resolving 'auto'), loaded and ready."""
    if engine is not None:
        settings = settings.model_copy(update={"engine": registry.check_choice(engine)})
    context = registry.BuildContext(settings, debug=debug)
    choice, whisper = choose_engine(settings, lambda: context.engine("whisper"))
    _LOGGER.info("speech recognition: %s (%s)", choice.engine, choice.reason)
    if whisper is None:
        context.loaded.pop("whisper", None)  # measured, but not chosen: not kept
    return CleanTranscriber(registry.get(choice.engine).create(context), choice)


def create_engines(settings: STTSettings, names: list[str], *, debug: bool = False) -> dict:
    """Several recognisers sharing one loaded Vosk and one loaded Whisper (for comparisons)."""
    context = registry.BuildContext(settings, debug=debug)
    return {name: CleanTranscriber(context.engine(name), Choice(name, "asked for")) for name in names}
