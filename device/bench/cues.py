# SPDX-License-Identifier: GPL-3.0-or-later
"""End of turn from several cues: fit the model on one set, report on another.

Every item of a corpus (:mod:`device.bench.turn_corpus`) is heard once through the doll's own
hearing (Silero VAD on 30 ms blocks, Vosk's partial text, :class:`~device.doll.turn_cues.Prosody`)
by a detector that never ends a pause; in every block it notes what each way of ending a turn
would see (the pause so far, the adaptive wait for the words heard, every cue). A rule's end is
then the first silent block in which it says "over", which is exactly where the doll's detector
with that rule would have stopped: the detector is causal, so what it sees before its end does not
depend on the end. (``tests/test_cue_bench.py`` checks this against the real detector.)

- **fit**: a logistic regression on the ``tune`` split's silent blocks (1: after her last word)
  and, for each cue, one without it; each model's threshold is the one that answers soonest on
  the tune split, as tentative ends, within :data:`TUNE_CUT_RATE` cut-offs he speaks over and
  :data:`EXTRA_REQUESTS` retractions per 100 turns;
- **report**: on the ``test`` split, for each rule (fixed 700 ms, adaptive as shipped, the cue
  model, the model without each cue): false cut-offs and the delay after a finished sentence;
- **tentative ends**: each rule again, the request starting at its end and his first sound
  ``first_sound_s`` later; if she goes on before it, the reply is dropped (a retraction, one
  more request) and her turn continues; a cut counts only when she goes on after his first sound.

All times are audio time; only the per-block cost of each cue is measured on the clock.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from device.bench.paused import RATE, Item
from device.doll.hearing import Hearing
from device.doll.settings import LoopSettings
from device.doll.turn_cues import CUES, FEATURES, CueModel, Prosody, fit, pause_features
from device.doll.vad import EndpointDetector, SileroVad

BLOCK_MS = 30
TUNE_CUT_RATE = 0.02  # the tune split's false cut-offs a model's threshold may allow
TARGET_CUT_RATE = 0.03  # the held-out target
FIXED_S = 0.7
FIRST_SOUND_S = 0.9  # from the end of her turn to his first sound when nothing else waits
EXTRA_REQUESTS = 15.0  # retractions per 100 turns a model's threshold may cost on the tune split


@dataclass(frozen=True)
class Row:
    """What one block showed (audio time at its end)."""

    t: float
    speaking: bool
    pausing: bool
    silence_s: float
    adaptive_s: float  # the silence the shipped adaptive rule needs now
    features: dict[str, float] | None  # the cues, while she pauses


@dataclass
class Trace:
    item: Item
    rows: list[Row] = field(default_factory=list)

    @property
    def speech_end_s(self) -> float:
        return self.item.speech_end / RATE


class _Tracer(EndpointDetector):
    """A detector that sees everything and never ends her turn on a pause."""

    def _turn_over(self) -> bool:
        return False


def trace(item: Item, transcriber, vad, chunk_ms: int, settings: LoopSettings | None = None) -> Trace:
    """Hear ``item`` to its end, noting every block."""
    settings = (settings or LoopSettings()).model_copy(update={"max_utterance_s": 120.0})
    detector = _Tracer.from_settings(settings, vad, RATE, prosody=True)
    hearing = Hearing(transcriber, detector, RATE * chunk_ms // 1000)
    block = RATE * BLOCK_MS // 1000
    result = Trace(item)
    hearing.open()
    try:
        for start in range(0, len(item.samples), block):
            hearing.hear([item.samples[start : start + block]])
            pausing = detector.pausing
            result.rows.append(
                Row(
                    round(detector.elapsed_s, 4),
                    detector.started and not pausing,
                    pausing,
                    round(detector._now.silence_s, 4),
                    detector.silence_needed_s,
                    detector.pause_features() if pausing else None,
                )
            )
    finally:
        hearing.cancel()
    return result


Rule = Callable[[Row], bool]


def fixed_rule(silence_s: float = FIXED_S) -> Rule:
    return lambda row: row.silence_s >= silence_s - 1e-9


def adaptive_rule(row: Row) -> bool:
    return row.silence_s >= row.adaptive_s - 1e-9


def model_rule(model: CueModel) -> Rule:
    return lambda row: row.features is not None and model.ends(row.features)


@dataclass(frozen=True)
class Heard:
    """One item under one rule."""

    end_s: float | None
    cut: bool
    delay_ms: float | None
    retractions: int = 0


def first_end(rows: Sequence[Row], rule: Rule, start: int = 0) -> int | None:
    for i in range(start, len(rows)):
        if rows[i].pausing and rule(rows[i]):
            return i
    return None


def hear_with(t: Trace, rule: Rule, first_sound_s: float | None = None) -> Heard:
    """Where ``rule`` ends the item's turn; with ``first_sound_s``, as a tentative end that she
    may take back by speaking before his first sound."""
    end_s, rows, retractions, start = t.speech_end_s, t.rows, 0, 0
    while True:
        i = first_end(rows, rule, start)
        if i is None:
            return Heard(None, False, None, retractions)
        at = rows[i].t
        heard_at = at + (first_sound_s or 0.0)
        resumed = next((j for j in range(i + 1, len(rows)) if rows[j].speaking), None)
        if first_sound_s is not None and resumed is not None and rows[resumed].t <= heard_at + 1e-9:
            retractions += 1  # she went on before he made a sound: the reply is dropped
            start = resumed
            continue
        cut = at < end_s - 1e-9
        delay = None if cut else round((heard_at - end_s) * 1000, 1)
        return Heard(at, cut, delay, retractions)


def summarise(traces: Sequence[Trace], rule: Rule, first_sound_s: float | None = None) -> dict:
    """False cut-offs over the paused items, delay over the whole ones without a natural pause
    (and over everything not cut), and retractions: requests per 100 turns as she said them (the
    whole utterances, natural pauses and all) and per 100 paused ones."""
    heard = [(t.item, hear_with(t, rule, first_sound_s)) for t in traces]
    paused = [(i, h) for i, h in heard if i.pause_ms > 0]
    finished = [h.delay_ms for i, h in heard if i.pause_ms == 0 and h.delay_ms is not None]
    everything = [h.delay_ms for _, h in heard if h.delay_ms is not None]
    cut = sum(h.cut for _, h in paused)
    retractions = sum(h.retractions for _, h in heard)
    spoken = [h for i, h in heard if not i.paused or i.natural]  # her turns as she said them
    return {
        "paused": len(paused),
        "cut": cut,
        "false_cut_rate": round(cut / len(paused), 4) if paused else None,
        "natural": {
            "n": sum(i.natural for i, _ in paused),
            "cut": sum(h.cut for i, h in paused if i.natural),
        },
        "finished": {"n": len(finished), **_stats(finished)},
        "not_cut": {"n": len(everything), **_stats(everything)},
        "never_ended": sum(h.end_s is None for _, h in heard),
        "retractions": retractions,
        "requests_per_100_turns": _per_100(spoken),
        "requests_per_100_paused": _per_100([h for _, h in paused]),
    }


def _per_100(heard: Sequence[Heard]) -> float | None:
    """Requests per 100 turns: one each, and one more for each retraction."""
    if not heard:
        return None
    return round(100 * (len(heard) + sum(h.retractions for h in heard)) / len(heard), 1)


def _stats(values: Sequence[float]) -> dict:
    if not values:
        return {"median_ms": None, "p90_ms": None}
    return {
        "median_ms": round(statistics.median(values), 1),
        "p90_ms": round(float(np.percentile(values, 90)), 1),
    }


def training_rows(traces: Sequence[Trace], max_pause_s: float) -> tuple[list[dict], list[int]]:
    """Every silent block after she began (up to ``max_pause_s`` into a pause), labelled 1 when
    her speech is over."""
    rows, labels = [], []
    for t in traces:
        for row in t.rows:
            if row.features is None or row.silence_s > max_pause_s + 1e-9:
                continue
            rows.append(row.features)
            labels.append(int(row.t > t.speech_end_s + 1e-9))
    return rows, labels


def tune_threshold(
    model: CueModel,
    traces: Sequence[Trace],
    cut_rate: float = TUNE_CUT_RATE,
    first_sound_s: float = FIRST_SOUND_S,
    extra_requests: float = EXTRA_REQUESTS,
) -> tuple[CueModel, dict]:
    """The threshold, among 0.02…0.99, with the lowest median time from a finished sentence to his
    first sound, as tentative ends, whose cut-offs he speaks over stay within ``cut_rate`` and
    whose retractions within ``extra_requests`` per 100 turns on ``traces`` (the highest
    threshold, if none does)."""
    best = None
    for threshold in np.round(np.arange(0.02, 0.995, 0.01), 2):
        candidate = model.with_threshold(float(threshold))
        s = summarise(traces, model_rule(candidate), first_sound_s)
        ok = (
            s["false_cut_rate"] is not None
            and s["false_cut_rate"] <= cut_rate + 1e-9
            and s["requests_per_100_turns"] <= 100 + extra_requests + 1e-9
        )
        median = s["finished"]["median_ms"] if s["finished"]["median_ms"] is not None else float("inf")
        key = (not ok, median if ok else -threshold)
        if best is None or key < best[0]:
            best = (key, candidate, s)
    assert best is not None
    return best[1], best[2]


def fit_model(
    traces: Sequence[Trace],
    features: Sequence[str] = FEATURES,
    *,
    min_pause_s: float = 0.2,
    max_pause_s: float = 1.5,
) -> tuple[CueModel, dict]:
    rows, labels = training_rows(traces, max_pause_s)
    model = fit(rows, labels, features)
    model = CueModel(**{**model.as_fields(), "min_pause_s": min_pause_s, "max_pause_s": max_pause_s})
    return tune_threshold(model, traces)


def ablations(traces: Sequence[Trace]) -> dict[str, CueModel]:
    """The model with every cue, and without each cue in turn."""
    models = {"cues": fit_model(traces)[0]}
    for cue, names in CUES.items():
        kept = [f for f in FEATURES if f not in names]
        models[f"cues without {cue}"] = fit_model(traces, kept)[0]
    return models


def cue_costs(items: Sequence[Item], repeats: int = 3) -> dict[str, float]:
    """Microseconds per 30 ms block (one core) of what each cue adds to the doll's hearing:
    tracking pitch and level (pitch, energy, length share it), and evaluating the model."""
    block = RATE * BLOCK_MS // 1000
    blocks = [i.samples[s : s + block] for i in items[:20] for s in range(0, len(i.samples) - block, block)]
    prosody = Prosody(RATE)
    best = float("inf")
    for _ in range(repeats):
        prosody.reset()
        started = time.perf_counter()
        for b in blocks:
            prosody.push(b, True)
        best = min(best, (time.perf_counter() - started) / len(blocks))
    model = CueModel(FEATURES, (0.0,) * len(FEATURES), (1.0,) * len(FEATURES), (0.1,) * len(FEATURES), 0.0)
    features = pause_features(prosody.features(), 0.3, "먹었어", "먹었")
    started = time.perf_counter()
    for _ in range(2000):
        model.probability(features)
    model_s = (time.perf_counter() - started) / 2000
    started = time.perf_counter()
    for _ in range(50):
        prosody.features()
    pause_s = (time.perf_counter() - started) / 50
    return {
        "prosody_us_per_block": round(best * 1e6, 1),
        "prosody_share_of_core": round(best / (BLOCK_MS / 1000), 5),
        "pause_features_us": round(pause_s * 1e6, 1),
        "model_us_per_block": round(model_s * 1e6, 1),
    }


def traces_of(items: Sequence[Item], transcriber, chunk_ms: int, progress=None) -> list[Trace]:
    vad = SileroVad(RATE)
    out = []
    for n, item in enumerate(items, start=1):
        out.append(trace(item, transcriber, vad, chunk_ms))
        if progress is not None:
            progress(n, len(items))
    return out


def _counts(traces: Sequence[Trace]) -> dict:
    speakers = sorted({t.item.speaker for t in traces})
    return {
        "speakers": speakers,
        "utterances": len({t.item.utterance for t in traces}),
        "items": len(traces),
        "paused": sum(t.item.pause_ms > 0 for t in traces),
        "natural": sum(t.item.natural for t in traces),
    }


def trace_corpus(
    config, manifest, *, per_speaker: int | None = None, progress=None
) -> tuple[list, list[Trace]]:
    """The corpus's sources, and every item of it heard once (:func:`trace`)."""
    from pathlib import Path

    from device.bench.endpoint import load_vosk
    from device.bench.turn_corpus import corpus_items

    vosk = load_vosk(config)
    sources, items = corpus_items(Path(manifest), vosk.inner, limit=per_speaker)
    return sources, traces_of(items, vosk, config.stt.chunk_ms, progress)


def run_corpus(
    config,
    manifest,
    *,
    fit_to=None,
    first_sound_s: float = FIRST_SOUND_S,
    per_speaker: int | None = None,
    progress=None,
) -> dict:
    """Fit on the corpus's tune split, report every rule on both splits (see the module);
    ``per_speaker``: at most this many utterances of each speaker; ``fit_to``: write the fitted
    model there, and report it as the shipped one."""
    sources, traces = trace_corpus(config, manifest, per_speaker=per_speaker, progress=progress)
    return report_corpus(str(manifest), sources, traces, fit_to=fit_to, first_sound_s=first_sound_s)


def report_corpus(
    manifest: str,
    sources: list,
    traces: Sequence[Trace],
    *,
    fit_to=None,
    first_sound_s: float = FIRST_SOUND_S,
) -> dict:
    """What :func:`run_corpus` reports, from traced items."""
    import json
    from pathlib import Path

    splits = {name: [t for t in traces if t.item.split == name] for name in ("tune", "test")}
    if not splits["tune"] or not splits["test"]:
        raise ValueError(f"{manifest}: the corpus needs utterances in both the tune and the test split")
    fitted = ablations(splits["tune"])
    if fit_to is None:
        shipped = CueModel.load()
    else:
        model = fitted["cues"]
        about = {"tuned_on": _counts(splits["tune"]), "tune_cut_rate": TUNE_CUT_RATE}
        model = CueModel(**{**model.as_fields(), "about": about})
        Path(fit_to).write_text(
            json.dumps(model.as_json(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
        )
        shipped = model
    rules: dict[str, Rule] = {
        f"fixed {FIXED_S * 1000:.0f} ms": fixed_rule(),
        "adaptive (as shipped)": adaptive_rule,
        "cues (as shipped)": model_rule(shipped),
    }
    rules |= {name: model_rule(model) for name, model in fitted.items() if name != "cues"}
    results = {
        split: {
            name: {"ends": summarise(those, rule), "tentative": summarise(those, rule, first_sound_s)}
            for name, rule in rules.items()
        }
        for split, those in splits.items()
    }
    test = results["test"]
    sweep = {
        f"{threshold:.2f}": {
            "ends": summarise(splits["test"], model_rule(shipped.with_threshold(threshold))),
            "tentative": summarise(
                splits["test"], model_rule(shipped.with_threshold(threshold)), first_sound_s
            ),
        }
        for threshold in (0.5, 0.6, 0.7, shipped.threshold, 0.8, 0.9, 0.95)
    }
    return {
        "manifest": Path(manifest).name,
        "sources": sources,
        "splits": {name: _counts(those) for name, those in splits.items()},
        "first_sound_s": first_sound_s,
        "models": {
            name: {"threshold": m.threshold, "features": list(m.features)} for name, m in fitted.items()
        },
        "shipped_model": shipped.as_json(),
        "results": results,
        "threshold_sweep_test": sweep,
        "quota_days": [
            quota_day(test["cues (as shipped)"]["tentative"]["requests_per_100_turns"] - 100, **day)
            for day in ({"doll_turns": 30, "telegram": 10}, {"doll_turns": 15, "telegram": 0})
        ],
        "costs": cue_costs([t.item for t in traces]),
        "targets": [
            _target(
                "false cut-offs he speaks over, cues with tentative ends (test)",
                test["cues (as shipped)"]["tentative"]["false_cut_rate"],
                TARGET_CUT_RATE,
            ),
            _target(
                "median end of a finished sentence → his first sound, cues vs adaptive (test)",
                test["cues (as shipped)"]["tentative"]["finished"]["median_ms"],
                test["adaptive (as shipped)"]["ends"]["finished"]["median_ms"] + first_sound_s * 1000,
            ),
        ],
    }


def _target(what: str, value, goal) -> dict:
    met = value is not None and goal is not None and value <= goal + 1e-9
    return {"what": what, "value": value, "goal": goal, "met": met}


def _pct(s: dict) -> str:
    rate = s["false_cut_rate"]
    return "–" if rate is None else f"{s['cut']}/{s['paused']} ({rate:.1%})"


def _ms(value) -> str:
    return "–" if value is None else f"{value:.0f}"


def corpus_table(result: dict, split: str = "test") -> str:
    """One row per rule: its ends alone, then as tentative ends before his first sound."""
    lines = [
        "| rule | false cut-offs | natural pauses cut | finished: median, p90 delay (ms) | "
        "tentative: cut-offs he speaks over | requests per 100 turns as spoken / paused | "
        "tentative: median, p90 to his first sound (ms) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in result["results"][split].items():
        e, t = r["ends"], r["tentative"]
        lines.append(
            f"| {name} | {_pct(e)} | {e['natural']['cut']}/{e['natural']['n']} | "
            f"{_ms(e['finished']['median_ms'])}, {_ms(e['finished']['p90_ms'])} | {_pct(t)} | "
            f"{t['requests_per_100_turns']} / {t['requests_per_100_paused']} | "
            f"{_ms(t['finished']['median_ms'])}, {_ms(t['finished']['p90_ms'])} |"
        )
    return "\n".join(lines)


def quota_day(
    retractions_per_100: float,
    *,
    doll_turns: int = 30,
    telegram: int = 10,
    requests_per_day: int = 20,
    doll_reserve: float = 0.3,
) -> dict:
    """One simulated Pacific day of the free quota (the server's own :class:`QuotaLedger`), with
    and without tentative ends: ``telegram`` messages first thing, then ``doll_turns`` turns of
    hers spread over the day, ``retractions_per_100`` of which are asked for twice or more
    (each retraction one more request, spent only outside the doll's reserve: once that is all
    that is left, the doll waits for her sure end and asks once).

    Returns, per mode, her turns answered by Gemini (the rest go to the offline fallback), the
    requests spent on retractions, the tentative requests refused, and how many requests of the
    doll's reserve were left when the day's spending outside it ran out."""
    import tempfile
    from pathlib import Path

    from inference_server.settings import QuotaSettings

    limits = QuotaSettings(
        requests_per_day=requests_per_day, requests_per_minute=1000, doll_reserve=doll_reserve
    )
    out = {}
    for mode in ("sure ends only", "tentative ends"):
        with tempfile.TemporaryDirectory() as folder:
            out[mode] = _quota_mode(
                Path(folder), limits, mode == "tentative ends", retractions_per_100, doll_turns, telegram
            )
    return {
        "requests_per_day": requests_per_day,
        "doll_reserve": doll_reserve,
        "telegram": telegram,
        "retractions_per_100": retractions_per_100,
        "modes": out,
    }


def _quota_mode(
    folder, limits, tentative: bool, retractions_per_100: float, doll_turns: int, telegram: int
) -> dict:
    from inference_server.quota import QuotaLedger

    now = [1_780_000_000.0]  # a fixed instant; every request a minute after the last
    ledger = QuotaLedger(folder / "quota.sqlite3", clock=lambda: now[0])

    def admit(channel: str, early: bool = False) -> bool:
        now[0] += 60.0
        return ledger.admit("gemini", limits, channel=channel, tokens=1000, tentative=early).admitted

    for _ in range(telegram):
        admit("telegram")
    answered = retracted = refused = 0
    owed = 0.0
    for _ in range(doll_turns):
        if tentative:
            owed += retractions_per_100 / 100
            while owed >= 1.0:  # a reply asked early and dropped: one more request
                owed -= 1.0
                if admit("doll", early=True):
                    retracted += 1
                else:
                    refused += 1
        answered += admit("doll", early=tentative) or admit("doll")
    status = ledger.status("gemini", limits)
    ledger.close()
    return {
        "answered_by_gemini": answered,
        "of_turns": doll_turns,
        "retraction_requests": retracted,
        "tentative_refused": refused,
        "left_today": status.left_today,
    }


def sweep_table(result: dict) -> str:
    """The shipped model at other thresholds, on the test split."""
    lines = [
        "| threshold | false cut-offs | finished: median delay (ms) | tentative: cut-offs he speaks over | "
        "requests per 100 turns as spoken | tentative: median to his first sound (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for threshold, r in result["threshold_sweep_test"].items():
        e, t = r["ends"], r["tentative"]
        lines.append(
            f"| {threshold} | {_pct(e)} | {_ms(e['finished']['median_ms'])} | {_pct(t)} | "
            f"{t['requests_per_100_turns']} | {_ms(t['finished']['median_ms'])} |"
        )
    return "\n".join(lines)
