"""The end of turn from several cues: pitch tracking, the fitted model, the detector using it,
and the corpus bench (its simulation matches the real detector)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from device.bench import cues
from device.bench.paused import RATE, Item
from device.bench.turn_corpus import CorpusError, load_manifest, utterance_items
from device.doll.settings import LoopSettings
from device.doll.turn_cues import FEATURES, CueModel, Prosody, fit, pause_features, pitch_st
from device.doll.vad import EndpointDetector, SpeechEnded
from device.stt.vosk import Word

BLOCK = RATE * 30 // 1000


def _glide(seconds: float, start_hz: float, end_hz: float, level: float = 0.3) -> np.ndarray:
    """A voiced-like sound whose pitch glides from ``start_hz`` to ``end_hz`` (with harmonics)."""
    t = np.arange(round(RATE * seconds)) / RATE
    f = np.linspace(start_hz, end_hz, len(t))
    phase = 2 * np.pi * np.cumsum(f) / RATE
    wave = sum(np.sin(k * phase) / k for k in range(1, 5))
    return (level * 32767 * wave / 2).astype(np.int16)


def _features_after(audio: np.ndarray) -> dict[str, float]:
    prosody = Prosody(RATE)
    for start in range(0, len(audio) - BLOCK + 1, BLOCK):
        prosody.push(audio[start : start + BLOCK], True)
    return prosody.features()


def test_pitch_of_a_200_hz_voice_is_an_octave_above_100_hz() -> None:
    block = _glide(0.06, 200, 200).astype(np.float32) / 32768
    assert pitch_st(block, RATE) == pytest.approx(12.0, abs=0.3)
    noise = np.random.default_rng(1).normal(0, 0.1, 960).astype(np.float32)
    assert math.isnan(pitch_st(noise, RATE))
    assert math.isnan(pitch_st(np.zeros(960, np.float32), RATE))


def test_a_falling_end_and_a_rising_end_are_told_apart() -> None:
    level = _glide(1.0, 220, 220)
    falling = _features_after(np.concatenate([level, _glide(0.4, 220, 150)]))
    rising = _features_after(np.concatenate([level, _glide(0.4, 220, 320)]))
    assert falling["f0_end"] < -2.0 < 2.0 < rising["f0_end"]
    assert falling["f0_slope"] < 0 < rising["f0_slope"]
    assert falling["voiced_end"] == rising["voiced_end"] == 1.0
    assert falling["last_run_s"] == pytest.approx(1.38, abs=0.05)


def test_no_speech_gives_neutral_prosody() -> None:
    assert set(Prosody(RATE).features().values()) == {0.0}


def _prosody(f0_end: float) -> dict[str, float]:
    return {**Prosody(RATE).features(), "f0_end": f0_end}


def _pauses(n: int = 400) -> tuple[list[dict], list[int]]:
    """Made-up pauses: a falling end is over after 0.3 s, a level one only after 1.2 s."""
    rng = np.random.default_rng(7)
    rows, labels = [], []
    for _ in range(n):
        falling = rng.random() < 0.5
        pause = float(rng.uniform(0.03, 1.5))
        f0_end = (-4.0 if falling else 0.5) + float(rng.normal(0, 0.5))
        rows.append(pause_features(_prosody(f0_end), pause, "", ""))
        labels.append(int(pause > (0.3 if falling else 1.2)))
    return rows, labels


def test_the_fitted_model_learns_that_a_fall_ends_sooner() -> None:
    rows, labels = _pauses()
    model = fit(rows, labels)
    falling = pause_features(_prosody(-4.0), 0.6, "", "")
    level = pause_features(_prosody(0.5), 0.6, "", "")
    assert model.probability(falling) > 0.8 > 0.2 > model.probability(level)
    longer = pause_features(_prosody(0.5), 1.4, "", "")
    assert model.probability(longer) > 0.5, "the longer the pause, the surer"
    accuracy = np.mean([(model.probability(r) >= 0.5) == bool(y) for r, y in zip(rows, labels, strict=True)])
    assert accuracy > 0.9


def test_fitting_needs_both_kinds_of_pause() -> None:
    rows, _ = _pauses(10)
    with pytest.raises(ValueError, match="both"):
        fit(rows, [1] * 10)


def test_a_model_round_trips_and_a_broken_one_says_what_is_wrong(tmp_path: Path) -> None:
    rows, labels = _pauses()
    model = fit(rows, labels).with_threshold(0.7)
    path = tmp_path / "model.json"
    path.write_text(json.dumps(model.as_json()), encoding="utf-8")
    assert CueModel.load(path) == model
    broken = {**model.as_json(), "features": ["pause_s", "loudness"]}
    with pytest.raises(ValueError, match="unknown features"):
        CueModel.from_json(broken)
    with pytest.raises(ValueError, match="differ in length"):
        CueModel.from_json({**model.as_json(), "coef": [1.0]})
    with pytest.raises(ValueError, match="threshold"):
        CueModel.from_json({**model.as_json(), "threshold": 1.5})
    with pytest.raises(ValueError, match="not an end-of-turn model"):
        CueModel.from_json({"features": ["pause_s"]})


def test_the_shipped_model_loads() -> None:
    model = CueModel.load()
    assert set(model.features) <= set(FEATURES)
    assert model.about["tuned_on"]["speakers"], "it says what it was fitted on"


def _pause_only_model(end_after_s: float) -> CueModel:
    """A model that ends a pause once it is ``end_after_s`` long, whatever else it sees."""
    return CueModel(("pause_s",), (0.0,), (1.0,), (40.0,), -40.0 * end_after_s, 0.5, 0.1, 1.5)


def test_the_detector_ends_her_turn_when_the_model_says_so() -> None:
    detector = EndpointDetector(sample_rate=RATE, cues=_pause_only_model(0.45))
    events = [detector.push_probability(0.9, 0.03) for _ in range(20)]
    assert not any(isinstance(e, SpeechEnded) for e in events)
    ended = None
    for _ in range(40):
        ended = detector.push_probability(0.0, 0.03) or ended
        if isinstance(ended, SpeechEnded):
            break
    assert isinstance(ended, SpeechEnded)
    assert ended.at_s - ended.last_speech_s == pytest.approx(0.45, abs=0.031)


def test_the_models_limits_bound_the_pause() -> None:
    never = CueModel(("pause_s",), (0.0,), (1.0,), (0.0,), -10.0, 0.5, 0.2, 0.9)  # p ≈ 0
    always = CueModel(("pause_s",), (0.0,), (1.0,), (0.0,), 10.0, 0.5, 0.2, 0.9)  # p ≈ 1
    assert not never.ends({"pause_s": 0.6}) and never.ends({"pause_s": 0.9})
    assert not always.ends({"pause_s": 0.15}) and always.ends({"pause_s": 0.2})


# --- the corpus and the bench ---------------------------------------------------------------


def _utterance_audio() -> tuple[np.ndarray, list[Word]]:
    """Three "words" (pitch glides) with short gaps, 0.5 s of quiet either side."""
    quiet = np.zeros(RATE // 2, np.int16)
    gap = np.zeros(round(RATE * 0.08), np.int16)
    parts = [quiet, _glide(0.5, 200, 210), gap, _glide(0.5, 210, 220), gap, _glide(0.6, 220, 160), quiet]
    words = [Word("오늘", 0.5, 1.0, 1.0), Word("학교에", 1.08, 1.58, 1.0), Word("갔어", 1.66, 2.26, 1.0)]
    return np.concatenate(parts), words


def test_a_corpus_utterance_gives_a_whole_item_and_spliced_pauses(tmp_path: Path) -> None:
    from device.bench.turn_corpus import Utterance

    audio, words = _utterance_audio()
    utterance = Utterance(tmp_path / "x.wav", "spk-1", "src", "test", "오늘 학교에 갔어")
    items = utterance_items(utterance, audio, words, "spk-1-001", per_utterance=2)
    whole, *paused = items
    assert (whole.pause_ms, whole.natural, whole.speaker, whole.split) == (0, False, "spk-1", "test")
    assert whole.speech_end == round(2.26 * RATE)
    assert len(paused) == 2 and {i.boundary for i in paused} == {1, 2}
    for item in paused:
        assert 300 <= item.pause_ms <= 1000 and item.pause_ms % 10 == 0
        assert item.pause_end - item.pause_start == round(RATE * item.pause_ms / 1000)
        assert item.speech_end == whole.speech_end + item.pause_end - item.pause_start
        pause = item.samples[item.pause_start + 100 : item.pause_end - 100]
        assert np.abs(pause).max() < 50  # noise, not speech
    again = utterance_items(utterance, audio, words, "spk-1-001", per_utterance=2)
    assert [i.name for i in again] == [i.name for i in items], "seeded by name"


def test_a_natural_pause_of_her_own_counts_as_a_pause(tmp_path: Path) -> None:
    from device.bench.turn_corpus import Utterance

    audio, words = _utterance_audio()
    words[2] = Word("갔어", 1.9, 2.26, 1.0)  # 0.32 s between her second and third word
    items = utterance_items(Utterance(tmp_path / "x.wav", "s", "src", "tune", None), audio, words, "s-001")
    assert items[0].natural and items[0].pause_ms == 320
    assert items[0].last_segment_start == round(1.9 * RATE)


def test_a_bad_manifest_says_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no such corpus manifest"):
        load_manifest(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"sources": [], "utterances": [{"path": "a.wav", "speaker": "s", "source": "x", '
                   '"split": "train"}]}', encoding="utf-8")  # fmt: skip
    with pytest.raises(CorpusError, match="split 'train'"):
        load_manifest(bad)
    bad.write_text('{"sources": [], "utterances": [{"path": "a.wav", "speaker": "s", "source": "x", '
                   '"split": "test"}]}', encoding="utf-8")  # fmt: skip
    with pytest.raises(CorpusError, match="1 recording"):
        load_manifest(bad)


def _trace(rows: list[tuple[float, bool, float]], speech_end_s: float, pause_ms: int = 450) -> cues.Trace:
    item = Item("x", "src", "x", pause_ms, 1, "", "", round(speech_end_s * RATE), 0, None, None, np.zeros(1))
    return cues.Trace(
        item,
        [
            cues.Row(t, speaking, not speaking, silence, 0.7, {"pause_s": silence} if not speaking else None)
            for t, speaking, silence in rows
        ],
    )


def _blocks(*spans: tuple[bool, float]) -> list[tuple[float, bool, float]]:
    rows, t, silence = [], 0.0, 0.0
    for speaking, seconds in spans:
        for _ in range(round(seconds / 0.03)):
            t = round(t + 0.03, 3)
            silence = 0.0 if speaking else round(silence + 0.03, 3)
            rows.append((t, speaking, silence))
    return rows


def test_a_tentative_end_she_talks_through_is_retracted_not_a_cut() -> None:
    # she speaks 1 s, pauses 0.6 s, speaks 0.6 s more, then is silent
    rows = _blocks((True, 0.99), (False, 0.6), (True, 0.6), (False, 1.5))
    trace = _trace(rows, speech_end_s=2.19)
    rule = cues.fixed_rule(0.3)
    plain = cues.hear_with(trace, rule)
    assert plain.cut and plain.end_s == pytest.approx(1.29)
    tentative = cues.hear_with(trace, rule, first_sound_s=0.9)
    assert (tentative.cut, tentative.retractions) == (False, 1)
    assert tentative.end_s == pytest.approx(2.49)  # after her last words
    assert tentative.delay_ms == pytest.approx((2.49 + 0.9 - 2.19) * 1000)
    late = cues.hear_with(trace, rule, first_sound_s=0.2)  # he would speak before she goes on
    assert late.cut and late.retractions == 0


@pytest.mark.slow
def test_the_bench_simulation_ends_where_the_real_detector_does() -> None:
    """Traced once, a rule's end is where the detector with that rule stops (no words cue here:
    Vosk adapts to what it heard before, so its text depends on the order of utterances)."""
    from device.bench.endpoint import load_vosk
    from device.bench.paused import real_items
    from device.doll.hearing import Hearing
    from device.doll.vad import SileroVad
    from device.stt.settings import STTSettings

    sample = Path(__file__).resolve().parents[1] / "samples" / "ko-read-sentence.wav"
    from device.audio import load_audio

    stt = STTSettings()
    vosk = load_vosk(stt)
    samples = load_audio(sample, sample_rate=RATE)
    items = real_items(samples, vosk.inner.words(samples), "", pauses_ms=(300, 800))[:5]
    model = CueModel(
        ("pause_s", "f0_end", "energy_end", "last_run_s"), (0.5, 0.0, 0.0, 0.5), (0.3, 3.0, 5.0, 0.3),
        (3.0, -1.0, -1.0, 0.5), -1.0, 0.5, 0.2, 1.2,
    )  # fmt: skip
    vad = SileroVad(RATE)
    for item in items:
        traced = cues.hear_with(cues.trace(item, vosk, vad, stt.chunk_ms), cues.model_rule(model))
        settings = LoopSettings(max_utterance_s=60)
        detector = EndpointDetector.from_settings(settings, vad, RATE, cues=model)
        hearing = Hearing(vosk, detector, RATE * stt.chunk_ms // 1000)
        hearing.open()
        ended = None
        for start in range(0, len(item.samples), BLOCK):
            ended = hearing.hear([item.samples[start : start + BLOCK]])
            if ended is not None:
                break
        hearing.cancel()
        assert ended is not None and traced.end_s == pytest.approx(ended.at_s), item.name


def test_retractions_never_spend_the_dolls_reserve_over_a_day() -> None:
    # every turn asked twice, 10 requests a day, 3 of them kept for the doll
    day = cues.quota_day(100, doll_turns=20, telegram=0, requests_per_day=10, doll_reserve=0.3)
    sure, tentative = day["modes"]["sure ends only"], day["modes"]["tentative ends"]
    assert sure["answered_by_gemini"] == 10
    assert tentative["retraction_requests"] <= 7, "retractions only ever spend the shared part"
    assert tentative["tentative_refused"] > 0
    assert tentative["answered_by_gemini"] >= 3, "the reserve still answers her turns"
    assert tentative["left_today"] == 0
    calm = cues.quota_day(10, doll_turns=10, telegram=2, requests_per_day=20)
    assert calm["modes"]["tentative ends"]["answered_by_gemini"] == 10


@pytest.mark.slow
def test_bench_endpoint_on_a_corpus_fits_a_model_and_compares_the_rules(tmp_path: Path, capsys) -> None:
    """The whole command on a tiny corpus made of the repository's sample (one speaker in both
    splits: it shows the command works, not what the cues are worth)."""
    import shutil

    from device.cli.main import main

    sample = Path(__file__).resolve().parents[1] / "samples" / "ko-read-sentence.wav"
    for n in range(2):
        shutil.copy(sample, tmp_path / f"s{n}.wav")
    manifest = tmp_path / "corpus.json"
    manifest.write_text(
        json.dumps(
            {
                "sources": [{"id": "sample", "licence": "Apache-2.0"}],
                "utterances": [
                    {"path": f"s{n}.wav", "speaker": f"spk{n}", "source": "sample", "split": split}
                    for n, split in enumerate(("tune", "test"))
                ],
            }
        ),
        encoding="utf-8",
    )
    model, output = tmp_path / "model.json", tmp_path / "result.json"
    code = main(
        ["bench", "endpoint", "--corpus", str(manifest), "--fit", str(model), "--output", str(output)]
    )
    assert code == 0
    fitted = CueModel.load(model)
    assert fitted.about["tuned_on"]["speakers"] == ["spk0"]
    result = json.loads(output.read_text(encoding="utf-8"))
    assert result["splits"]["test"]["speakers"] == ["spk1"]
    rules = result["results"]["test"]
    assert {"fixed 700 ms", "adaptive (as shipped)", "cues (as shipped)", "cues without pitch"} <= set(rules)
    assert rules["fixed 700 ms"]["ends"]["paused"] == 2
    assert result["quota_days"][0]["modes"]["tentative ends"]["of_turns"] == 30
    assert "false cut-offs" in capsys.readouterr().out
