"""The end-of-turn benchmark: the paused set is built right, and a real run finds a cut-off."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device.audio import rms_dbfs
from device.bench.endpoint import evaluate, load_vosk, parse_variant, section
from device.bench.paused import (
    RATE,
    TAIL_S,
    espeak_items,
    load_set,
    real_items,
    reference_prefix,
    word_boundaries,
    write_set,
)
from device.doll.settings import LoopSettings
from device.stt.settings import STTSettings
from device.stt.vosk import Word

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "ko-read-sentence.wav"


def _tone(seconds: float, level: float = 0.3) -> np.ndarray:
    t = np.arange(round(RATE * seconds)) / RATE
    return (level * 32767 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)


def _speechlike() -> tuple[np.ndarray, list[Word]]:
    """0.5 s of quiet, three 0.4 s "words" back to back, 0.3 s of quiet: Vosk-like word times."""
    quiet = np.zeros(RATE // 2, np.int16)
    audio = np.concatenate([quiet, _tone(1.2), np.zeros(round(RATE * 0.3), np.int16)])
    words = [Word("그", 0.5, 0.7, 1.0), Word("는", 0.7, 0.9, 1.0), Word("집에", 0.9, 1.3, 1.0)]
    words.append(Word("갔다", 1.3, 1.7, 1.0))
    return audio, words


def test_boundaries_follow_the_dolls_words_not_voskss_morphemes() -> None:
    _, words = _speechlike()
    boundaries = word_boundaries(words)
    assert [text for _, text in boundaries] == ["그는", "그는 집에"]
    assert [round(at, 2) for at, _ in boundaries] == [0.9, 1.3]


def test_real_items_put_the_pause_at_the_boundary_and_move_the_end() -> None:
    audio, words = _speechlike()
    items = real_items(audio, words, "그는 집에 갔다", pauses_ms=(300, 600))
    whole = items[0]
    assert whole.name == "real-whole" and not whole.paused
    assert abs(whole.speech_end - round(1.7 * RATE)) <= round(0.03 * RATE)  # 30 ms frames
    assert len(whole.samples) == len(audio) + round(TAIL_S * RATE)
    assert [(i.boundary, i.pause_ms) for i in items[1:]] == [(1, 300), (1, 600), (2, 300), (2, 600)]
    for item in items[1:]:
        gap = round(RATE * item.pause_ms / 1000)
        assert item.pause_end - item.pause_start == gap
        assert item.last_segment_start == item.pause_end
        assert item.speech_end == whole.speech_end + gap
        assert len(item.samples) == len(whole.samples) + gap
        # the pause sits at the boundary (within the 50 ms the cut may move) and is quiet noise
        at = {1: 0.9, 2: 1.3}[item.boundary]
        assert abs(item.pause_start / RATE - at) <= 0.06
        pause = item.samples[item.pause_start : item.pause_end]
        assert np.any(pause != 0) and rms_dbfs(pause) < -60
        assert rms_dbfs(item.samples[item.pause_end : item.pause_end + 800]) > -30  # speech again
    assert [i.before_pause for i in items[1:]] == ["그는"] * 2 + ["그는 집에"] * 2
    tail = items[0].samples[-round(TAIL_S * RATE) :]
    assert np.any(tail != 0) and rms_dbfs(tail) < -60


def test_espeak_items_join_phrases_with_one_pause() -> None:
    phrases = [[_tone(0.5), _tone(0.3), _tone(0.4)]]
    sentences = [("오늘 학교에서", "친구랑", "싸웠어.")]
    items = espeak_items(phrases, -80.0, sentences, pauses_ms=(450,))
    assert [i.name for i in items] == ["espeak-1-whole", "espeak-1-b1-450ms", "espeak-1-b2-450ms"]
    lead, gap = round(0.5 * RATE), round(0.45 * RATE)
    whole, first, second = items
    assert whole.speech_end == lead + round(1.2 * RATE)
    assert whole.last_segment_start == lead
    assert (first.pause_start, first.pause_end) == (lead + round(0.5 * RATE), lead + round(0.5 * RATE) + gap)
    assert (second.pause_start, second.speech_end) == (lead + round(0.8 * RATE), whole.speech_end + gap)
    assert first.before_pause == "오늘 학교에서" and second.before_pause == "오늘 학교에서 친구랑"
    assert all(len(i.samples) == i.speech_end + round(TAIL_S * RATE) for i in items)


def test_espeak_phrases_are_16_khz_speech_without_the_quiet_around_it(tmp_path: Path) -> None:
    from device.bench.paused import espeak_phrases

    ((first, second),) = espeak_phrases(tmp_path, [("버스에서 내려서", "어떻게")])
    assert (tmp_path / "espeak" / "1-2.wav").is_file()
    for phrase in (first, second):
        assert phrase.dtype == np.int16 and 0.2 * RATE < len(phrase) < 3 * RATE
        assert rms_dbfs(phrase[: RATE // 100]) > -50 and rms_dbfs(phrase[-RATE // 100 :]) > -50
    assert np.array_equal(espeak_phrases(tmp_path, [("어떻게",)])[0][0], second)


def test_the_set_is_the_same_every_time_and_reads_back(tmp_path: Path) -> None:
    audio, words = _speechlike()
    first = real_items(audio, words, "그는 집에 갔다", pauses_ms=(300,))
    again = real_items(audio, words, "그는 집에 갔다", pauses_ms=(300,))
    assert all(np.array_equal(a.samples, b.samples) for a, b in zip(first, again, strict=True))
    assert [a.as_json() for a in first] == [b.as_json() for b in again]
    write_set(tmp_path, first)
    loaded = load_set(tmp_path)
    assert [i.as_json() for i in loaded] == [i.as_json() for i in first]
    assert all(np.array_equal(a.samples, b.samples) for a, b in zip(first, loaded, strict=True))


def test_the_reference_is_cut_where_the_recogniser_heard_the_boundary() -> None:
    reference = "그는 이리저리 피하면서 길 한 옆으로 걸어갔다"
    heard = "그는 디비전이 피하면서 기흥 옆으로 걸어갔다"
    assert reference_prefix(reference, heard, "그는 디비전이") == "그는 이리저리"
    assert reference_prefix(reference, heard, "그는 디비전이 피하면서 기흥") == "그는 이리저리 피하면서 길 한"


def test_variants_are_loop_settings() -> None:
    assert parse_variant("adaptive") == ("adaptive", LoopSettings())
    name, fixed = parse_variant("fixed:silence_ms=500")
    assert (name, fixed.end_of_turn, fixed.silence_ms) == ("fixed:silence_ms=500", "fixed", 500)
    for bad in ("eager", "fixed:silence=5", "adaptive:min_silence_ms=1000"):
        with pytest.raises(ValueError):
            parse_variant(bad)


@pytest.mark.slow  # real Vosk and Silero
def test_a_real_run_measures_delays_and_catches_an_eager_cut(tmp_path: Path) -> None:
    from device.bench.paused import build_set

    vosk = load_vosk(STTSettings())
    built = build_set(tmp_path, vosk.inner, sample=SAMPLE, pauses_ms=(600,), espeak=False)
    # whole, and paused 600 ms after "피하면서" (a connective: the adaptive wait is long)
    items = [i for i in built if not i.paused or i.before_pause == "그는 이리저리 피하면서"]
    assert [i.pause_ms for i in items] == [0, 600]
    result = evaluate(STTSettings(), items, ["adaptive", "fixed:silence_ms=200"], transcriber=vosk)

    assert set(result["summary"]) == {"adaptive", "fixed:silence_ms=200"}
    assert set(result["summary"]["adaptive"]) == {"real", "espeak", "all"}
    assert result["items"] == {"real": {"whole": 1, "paused": 1}, "espeak": {"whole": 0, "paused": 0}}
    outcomes = {(o["variant"], o["pause_ms"]): o for o in result["outcomes"]}
    assert len(outcomes) == 4

    for pause_ms in (0, 600):  # the adaptive default waits the pause out, and then ends
        heard = outcomes["adaptive", pause_ms]
        assert heard["ended"] and heard["reason"] == "silence" and not heard["cut"]
        assert 0 < heard["delay_ms"] <= 1500 + 300  # the longest wait and Silero's trailing blocks
        assert heard["end_s"] == pytest.approx(heard["speech_end_s"] + heard["delay_ms"] / 1000, abs=1e-3)
        assert heard["text_at_end"]
    assert outcomes["adaptive", 600]["text_at_pause"]

    eager = outcomes["fixed:silence_ms=200", 600]
    assert eager["cut"] and eager["in_pause"] and eager["delay_ms"] is None
    assert eager["end_s"] < eager["last_segment_start_s"]
    paused = result["summary"]["fixed:silence_ms=200"]["real"]["paused"]
    assert (paused["items"], paused["cut"], paused["false_cut_rate"]) == (1, 1, 1.0)
    assert result["summary"]["adaptive"]["real"]["paused"]["cut"] == 0
    targets = {t["what"]: t for t in result["targets"]}
    assert not targets["false cut-offs, fixed:silence_ms=200 (real)"]["met"]
    assert "## End of turn" in section(result)
