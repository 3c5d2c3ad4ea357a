"""Honest checks (issue #15): `chacha config` and `chacha doctor` fail exactly when `chacha serve`
would, with the server's own one-line error; the CLI checks audio files before loading models.

Each test is named after the failure it keeps from coming back.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from device.cli import doctor
from device.cli.main import main
from device.config import load_config

pytestmark = pytest.mark.timeout(120)

# --- A: config and doctor load what the server loads --------------------------------------------


def _persona_file(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / "persona.yaml"
    if kind == "missing":
        return path
    if kind == "folder":
        path.mkdir()
    elif kind == "broken-yaml":
        path.write_text("name: [차차\nrules: -\n", encoding="utf-8")
    elif kind == "wrong-keys":
        path.write_text("nmae: 차차\n", encoding="utf-8")
    return path


def _config(tmp_path: Path, problem: str) -> Path:
    data_dir = tmp_path / "data"
    lines = ["memory:\n  enabled: false\n"]  # its model is checked apart: these fail before it
    if problem.startswith("persona-"):
        lines.append(f"persona:\n  file: {_persona_file(tmp_path, problem.removeprefix('persona-'))}\n")
    elif problem == "missing-phrasebook":
        lines.append(f"llm:\n  phrasebook:\n    file: {tmp_path / 'phrasebook.yaml'}\n")
    elif problem == "unwritable-data-dir":
        blocker = tmp_path / "a-file"
        blocker.write_text("not a folder", encoding="utf-8")
        data_dir = blocker / "data"  # even root cannot make a folder inside a file
    lines.append(f"server:\n  data_dir: {data_dir}\n")
    path = tmp_path / "chacha.yaml"
    path.write_text("".join(lines), encoding="utf-8")
    return path


PROBLEMS = {
    "persona-missing": "persona file not found",
    "persona-broken-yaml": "is not valid YAML",
    "persona-folder": "is a folder",
    "persona-wrong-keys": "nmae: unknown key",
    "missing-phrasebook": "phrasebook file not found",
    "unwritable-data-dir": "is not a writable folder",
}


def _one_error(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("chacha: ")]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("problem", list(PROBLEMS))
def test_config_and_doctor_fail_with_the_servers_own_error(tmp_path, capsys, monkeypatch, problem):
    config = _config(tmp_path, problem)
    monkeypatch.setenv("CHACHA_API_TOKEN", "test-token")

    assert main(["--config", str(config), "serve", "--port", "0"]) == 2
    served = _one_error(capsys)
    assert served.startswith("chacha: error: ") and PROBLEMS[problem] in served

    assert main(["--config", str(config), "config"]) == 2
    assert _one_error(capsys) == served

    loaded, _ = load_config(config)
    failed = [c for c in doctor.check_server_start(loaded) if c.status == "FAIL"]
    assert [c.detail for c in failed] == [served.removeprefix("chacha: error: ")]


def test_doctor_shows_every_start_step_and_goes_on_after_a_failure(tmp_path):
    loaded, _ = load_config(_config(tmp_path, "persona-wrong-keys"))
    checks = {c.what: c for c in doctor.check_server_start(loaded)}
    assert checks["data folder"].status == checks["phrasebook"].status == "OK"
    assert checks["persona"].status == "FAIL"
    assert checks["memory"].status == "OK" and "off" in checks["memory"].detail


def test_doctor_tries_to_write_in_the_cache_folder_rather_than_trust_permission_bits(tmp_path):
    """Permission bits pass a file for a writable place (and everything, for root): the doctor
    writes a scratch file where the cache folder is, or will be made, instead."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    config = tmp_path / "chacha.yaml"
    config.write_text(f"stt:\n  cache_dir: {blocker / 'cache'}\n", encoding="utf-8")
    loaded, _ = load_config(config)
    checks = {c.what: c for c in doctor.check_disk(loaded)}
    assert checks["cache folder"].status == "FAIL", checks
    assert "is not writable (Not a directory)" in checks["cache folder"].detail
    config.write_text(f"stt:\n  cache_dir: {tmp_path / 'cache'}\n", encoding="utf-8")  # made when needed
    loaded, _ = load_config(config)
    assert {c.what: c for c in doctor.check_disk(loaded)}["cache folder"].status == "OK"


def test_config_lists_what_the_server_loads_when_all_is_well(tmp_path, capsys):
    config = _config(tmp_path, "none")
    assert main(["--config", str(config), "config"]) == 0
    out = capsys.readouterr().out
    assert "what the server loads at start loads" in out
    assert f"data folder: {tmp_path / 'data'} takes new files" in out
    assert "persona: 차차" in out and "phrasebook: the shipped phrasebook" in out


# --- D: audio files and --output are checked before any work is done ----------------------------


def _long_wav(path: Path, seconds: float, rate: int = 8000) -> Path:
    """A real 16-bit mono WAV of silence, written as a sparse file: its header and its size say
    `seconds`, yet no sample is written to disk."""
    data_bytes = int(seconds * rate) * 2
    header = (
        b"RIFF"
        + (36 + data_bytes).to_bytes(4, "little")
        + b"WAVEfmt "
        + (16).to_bytes(4, "little")
        + (1).to_bytes(2, "little")  # PCM
        + (1).to_bytes(2, "little")  # mono
        + rate.to_bytes(4, "little")
        + (rate * 2).to_bytes(4, "little")
        + (2).to_bytes(2, "little")
        + (16).to_bytes(2, "little")
        + b"data"
        + data_bytes.to_bytes(4, "little")
    )
    with path.open("wb") as handle:
        handle.write(header)
        handle.truncate(len(header) + data_bytes)
    return path


def _no_speech_models(tmp_path: Path) -> Path:
    """A config whose recogniser cannot load: any error about a file proves it came first."""
    path = tmp_path / "chacha.yaml"
    path.write_text(f"stt:\n  engine: vosk\n  vosk_model: {tmp_path / 'no-model'}\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("kind", "fragment"),
    [
        ("empty", "is empty (0 bytes)"),
        ("text", "not a WAV/FLAC/OGG file"),
        ("missing", "audio file not found"),
        ("folder", "is a folder"),
        ("ten-minutes", "is 600.0 s long, more than stt.max_audio_s (60 s)"),
    ],
)
def test_transcribe_checks_the_file_before_loading_the_speech_models(tmp_path, capsys, kind, fragment):
    path = tmp_path / "her.wav"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("not audio at all", encoding="utf-8")
    elif kind == "folder":
        path.mkdir()
    elif kind == "ten-minutes":
        _long_wav(path, 600)
    assert main(["--config", str(_no_speech_models(tmp_path)), "transcribe", str(path)]) == 2
    err = capsys.readouterr().err
    assert fragment in err and "Vosk model not found" not in err, err


def test_a_long_recording_is_refused_from_its_header_before_it_is_decoded(tmp_path, monkeypatch):
    from device import audio

    path = _long_wav(tmp_path / "long.wav", 600)
    assert audio.check_audio_file(path) == pytest.approx(600.0)

    def no_decoding(*args, **kwargs):
        raise AssertionError("the samples were read")

    monkeypatch.setattr(audio.sf.SoundFile, "read", no_decoding)
    with pytest.raises(audio.AudioError, match=r"600\.0 s long, more than stt\.max_audio_s \(60 s\)"):
        audio.load_audio(path, max_s=60)


# Issue 22, item 4: a FLAC cut in half passed the header check (its header still announces every
# sample), the speech model loaded (2.5 s, 570 MB), and only then was it "not a WAV/FLAC/OGG file".


def _whole_recording(tmp_path: Path, kind: str) -> Path:
    """samples/ko-read-sentence.wav (3.9 s of her voice) as a WAV, a FLAC or an Ogg Vorbis file."""
    import soundfile as sf
    from conftest import ROOT

    samples, rate = sf.read(ROOT / "samples" / "ko-read-sentence.wav", dtype="int16")
    path = tmp_path / f"her.{kind}"
    if kind == "ogg":
        sf.write(path, samples, rate, format="OGG", subtype="VORBIS")
    else:
        sf.write(path, samples, rate)
    return path


def _header_bytes(data: bytes, kind: str) -> int:
    """Where a file's first sound begins: after a WAV's header, a FLAC's metadata, an Ogg's
    three Vorbis header packets (on the pages before the first page with a granule position)."""
    if kind == "wav":
        return data.index(b"data") + 8
    if kind == "flac":
        at = 4
        while True:
            last, length = data[at] & 0x80, int.from_bytes(data[at + 1 : at + 4], "big")
            at += 4 + length
            if last:
                return at
    at = 0
    while int.from_bytes(data[at + 6 : at + 14], "little") == 0:  # granule 0: headers
        segments = data[at + 26]
        at += 27 + segments + sum(data[at + 27 : at + 27 + segments])
    return at


def _ogg_page_boundary(data: bytes) -> int:
    """The start of the Ogg page nearest the middle: a cut there leaves whole pages only."""
    return data.index(b"OggS", len(data) // 2)


@pytest.mark.parametrize(
    ("kind", "cut"),
    [
        (kind, cut)
        for kind in ("wav", "flac", "ogg")
        for cut in ("half", "after the header", "at a page boundary", "one byte short")
        if cut != "at a page boundary" or kind == "ogg"  # only Ogg has pages
    ],
)
def test_a_truncated_recording_is_refused_by_the_check_before_any_model(tmp_path, kind, cut):
    from device.audio import check_audio_file
    from device.errors import AudioError

    data = _whole_recording(tmp_path, kind).read_bytes()
    end = {
        "half": len(data) // 2,
        "after the header": _header_bytes(data, kind),
        "at a page boundary": _ogg_page_boundary(data) if kind == "ogg" else 0,
        "one byte short": len(data) - 1,
    }[cut]
    path = tmp_path / f"cut.{kind}"
    path.write_bytes(data[:end])
    with pytest.raises(AudioError, match=r"is truncated") as refused:
        check_audio_file(path, max_s=60)
    message = str(refused.value)
    assert message.startswith(f"audio file {path} is truncated") and "copy it again whole" in message
    assert "not a WAV/FLAC/OGG" not in message


@pytest.mark.parametrize("kind", ["wav", "flac", "ogg"])
def test_a_whole_recording_passes_the_check(tmp_path, kind):
    from device.audio import check_audio_file

    assert check_audio_file(_whole_recording(tmp_path, kind), max_s=60) == pytest.approx(3.888)


def test_a_recording_damaged_inside_is_refused_by_the_check(tmp_path):
    from device.audio import check_audio_file
    from device.errors import AudioError

    path = _whole_recording(tmp_path, "flac")
    data = bytearray(path.read_bytes())
    start = _header_bytes(bytes(data), "flac")
    data[start : len(data) - 100] = bytes(len(data) - 100 - start)  # the frames zeroed, the end kept
    path.write_bytes(bytes(data))
    with pytest.raises(AudioError, match=r"is truncated or damaged: .* — copy it again whole"):
        check_audio_file(path)


@pytest.mark.parametrize("kind", ["flac", "wav", "ogg"])
def test_transcribe_refuses_a_truncated_recording_before_loading_a_speech_model(
    tmp_path, capsys, monkeypatch, kind
):
    import device.stt.auto

    def no_model(*args, **kwargs):
        raise AssertionError("a speech model was loaded for a truncated file")

    monkeypatch.setattr(device.stt.auto, "create_transcriber", no_model)
    data = _whole_recording(tmp_path, kind).read_bytes()
    path = tmp_path / f"cut.{kind}"
    path.write_bytes(data[: len(data) // 2])
    assert main(["--config", str(_no_speech_models(tmp_path)), "transcribe", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: error: audio file {path} is truncated" in err and "Vosk model not found" not in err


def test_talk_refuses_a_long_recording_in_one_line(tmp_path, capsys):
    path = _long_wav(tmp_path / "long.wav", 61)
    config = _no_speech_models(tmp_path)
    assert main(["--config", str(config), "talk", "--input", str(path)]) == 2
    error = _one_error(capsys)
    assert "61.0 s long, more than stt.max_audio_s (60 s)" in error and "chacha.yaml" in error


def test_talk_output_to_a_folder_is_one_line_before_the_turn_without_an_ignored_exception(tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    config = tmp_path / "chacha.yaml"
    config.write_text(f"server:\n  data_dir: {tmp_path / 'data'}\n", encoding="utf-8")
    folder = tmp_path / "out"
    folder.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "device.cli", "--config", str(config), "talk", "--text", "안녕"]
        + ["--output", str(folder)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Exception ignored" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert f"--output {folder} is a folder" in result.stderr
    assert not (tmp_path / "data").exists()  # no server started, no turn kept


def test_writing_a_wav_onto_a_folder_leaves_no_ignored_exception(tmp_path, monkeypatch):
    import gc
    import sys

    import numpy as np

    from tts.audio import write_wav
    from tts.errors import TTSError

    ignored = []
    monkeypatch.setattr(sys, "unraisablehook", ignored.append)
    with pytest.raises(TTSError, match="choose a writable path"):
        write_wav(tmp_path, np.zeros(100, dtype=np.int16), 16000)
    gc.collect()
    assert ignored == []
