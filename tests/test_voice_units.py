# SPDX-License-Identifier: GPL-3.0-or-later
"""The voice-cloning pipeline piece by piece: alignment search, checks, gates, errors, resume."""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
from fakes.sounddevice import FakeSoundDevice

from device.cli import voice as cli_args
from device.cli.voice import read_recording
from tts.voice import levels
from tts.voice.config_edit import CannotEdit, check_edit, set_piper_voice
from tts.voice.errors import VoiceError
from tts.voice.importing import find_recordings, import_recordings
from tts.voice.install import switch_config
from tts.voice.monotonic_align import maximum_path_numpy
from tts.voice.prepare import check_clip, prepare_dataset
from tts.voice.record import check_take, clip_name, record_script
from tts.voice.review import read_review, write_review
from tts.voice.script import FINALS, INITIALS, VOWELS, jamo_coverage, load_script
from tts.voice.speech_text import training_text
from tts.voice.train import MIN_CLIPS, TrainOptions, count_clips, train_voice
from tts.voice.workspace import SAMPLE_RATE, VoiceDir

RATE = SAMPLE_RATE


# --- synthetic audio -------------------------------------------------------------------------


def speechlike(seconds: float, *, level_db: float = -18.0, seed: int = 0) -> np.ndarray:
    """Noise shaped by a 4 Hz syllable rhythm: loud and quiet like speech, never silent."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t)
    x = rng.standard_normal(n) * envelope
    x *= 10 ** (level_db / 20) / np.sqrt(np.mean(x**2))
    return levels.to_int16(x)


def silence(seconds: float, noise_db: float | None = None, seed: int = 1) -> np.ndarray:
    n = int(seconds * RATE)
    if noise_db is None:
        return np.zeros(n, np.int16)
    rng = np.random.default_rng(seed)
    return levels.to_int16(rng.standard_normal(n) * 10 ** (noise_db / 20))


def utterance(speech_s: float = 2.0, seed: int = 0, noise_db: float | None = -70.0) -> np.ndarray:
    return np.concatenate(
        [
            silence(0.4, noise_db, seed + 10),
            speechlike(speech_s, seed=seed),
            silence(0.4, noise_db, seed + 20),
        ]
    )


def write(path: Path, samples: np.ndarray, rate: int = RATE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), samples, rate, subtype="PCM_16")
    return path


class FakeTranscriber:
    engine = "fake"
    sample_rate = 16000

    def __init__(self, text: str = "오늘 날씨 좋다") -> None:
        self.text = text
        self.calls: list[int] = []

    def transcribe(self, samples):
        self.calls.append(len(samples))
        return SimpleNamespace(text=self.text)


# --- monotonic alignment ---------------------------------------------------------------------


def brute_force_path(score: np.ndarray) -> np.ndarray:
    """Every monotonic alignment of frames to phonemes, scored; the best one as a 0/1 matrix."""
    frames, phonemes = score.shape
    best, best_choice = -np.inf, None
    for moves in itertools.combinations(range(1, frames), phonemes - 1):
        index = np.zeros(frames, dtype=int)
        for move in moves:
            index[move:] += 1
        total = score[np.arange(frames), index].sum()
        if total > best:
            best, best_choice = total, index
    path = np.zeros(score.shape, dtype=np.int32)
    path[np.arange(frames), best_choice] = 1
    return path


def test_maximum_path_matches_brute_force_on_random_batches():
    rng = np.random.default_rng(42)
    for _ in range(150):
        batch, max_frames, max_phonemes = 3, 9, 6
        score = rng.normal(size=(batch, max_frames, max_phonemes)).astype(np.float32)
        frames = rng.integers(1, max_frames + 1, size=batch)
        phonemes = np.minimum(rng.integers(1, max_phonemes + 1, size=batch), frames)
        got = maximum_path_numpy(score, frames, phonemes)
        for b in range(batch):
            expected = np.zeros((max_frames, max_phonemes), np.int32)
            expected[: frames[b], : phonemes[b]] = brute_force_path(
                score[b, : frames[b], : phonemes[b]].astype(np.float64)
            )
            np.testing.assert_array_equal(got[b], expected)


def test_maximum_path_is_a_monotonic_alignment():
    rng = np.random.default_rng(7)
    score = rng.normal(size=(2, 40, 12))
    path = maximum_path_numpy(score, np.array([40, 25]), np.array([12, 7]))
    for b, (frames, phonemes) in enumerate([(40, 12), (25, 7)]):
        assert path[b, frames:].sum() == 0 and path[b, :, phonemes:].sum() == 0
        index = path[b, :frames, :phonemes].argmax(axis=1)
        assert (path[b, :frames].sum(axis=1) == 1).all()
        assert index[0] == 0 and index[-1] == phonemes - 1
        assert set(np.diff(index)) <= {0, 1}


@pytest.mark.voice_train
def test_piper_trainer_uses_our_alignment():
    import torch

    from tts.voice.piper_patches import install_monotonic_align

    install_monotonic_align()
    from piper.train.vits import monotonic_align  # what SynthesizerTrn.forward imports

    score = torch.randn(2, 10, 4)
    mask = torch.zeros(2, 10, 4)
    mask[0, :10, :4] = 1
    mask[1, :6, :3] = 1
    path = monotonic_align.maximum_path(score, mask)
    assert path.dtype == score.dtype and path.shape == score.shape
    expected = maximum_path_numpy(score.numpy(), np.array([10, 6]), np.array([4, 3]))
    np.testing.assert_array_equal(path.numpy(), expected)


# --- takes, clips and text -------------------------------------------------------------------


def test_check_take_finds_silence_quiet_and_clipping():
    assert not check_take(silence(2.0)).has_speech
    assert "no speech" in check_take(silence(2.0, noise_db=-60)).problems[0]
    good = check_take(utterance())
    assert good.has_speech and good.problems == []
    quiet = check_take(levels.to_int16(levels.as_float(utterance()) * 0.02))
    assert any("too quiet" in p for p in quiet.problems)
    loud = utterance().astype(np.int32) * 8
    clipped = check_take(np.clip(loud, -32768, 32767).astype(np.int16))
    assert any("clipped" in p for p in clipped.problems)


def test_clip_without_speech_is_rejected_with_the_reason():
    ready, text, reason = check_clip(silence(3.0, noise_db=-55), "안녕")
    assert ready is None and reason.startswith("no speech")


def test_noisy_short_and_long_clips_are_rejected():
    clean = levels.as_float(utterance(noise_db=None))
    noisy = levels.to_int16(clean + np.random.default_rng(3).standard_normal(len(clean)) * 0.03)
    assert "low SNR" in check_clip(noisy, "안녕")[2]
    assert "too short" in check_clip(utterance(0.4), "안녕")[2]
    long = np.concatenate([silence(2.0), speechlike(16.0), silence(2.0)])
    assert "too long" in check_clip(long, "안녕")[2]


def test_good_clip_is_trimmed_and_normalised():
    ready, text, reason = check_clip(utterance(2.0, noise_db=None), "오늘 3시에 만나")
    assert reason is None and text == "오늘 세 시에 만나"
    assert 2.0 <= len(ready) / RATE <= 2.0 + 0.35
    analysis = levels.analyse(ready, RATE)
    assert analysis.speech_rms_db == pytest.approx(-20.0, abs=1.5) or levels.peak_dbfs(ready) <= -0.9
    assert levels.peak_dbfs(ready) <= -0.9


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("A+B=C", "'+'"),
        ("가격은 $5", "'$'"),
        ("나 :) 좋아", "':'"),
        ("東京 가자", "'京'"),
        ("", "no transcript"),
    ],
)
def test_unspeakable_text_is_named(raw, problem):
    text, reason = training_text(raw)
    assert text is None and problem in reason


def test_text_is_normalised_like_the_doll_reads_it():
    assert training_text("GPU 서버 3대 OK?") == ("지피유 서버 세 대 오케이?", None)
    assert training_text("“안녕” 진주야~") == ("안녕 진주야", None)


# --- the recording script ----------------------------------------------------------------------


def test_script_covers_every_jamo_and_reads_as_is():
    lines = load_script()
    assert 280 <= len(lines) <= 400 and len(set(lines)) == len(lines)
    initials, vowels, finals = jamo_coverage(lines)
    assert initials == set(INITIALS) and vowels == set(VOWELS) and finals == set(FINALS)
    for line in lines:
        assert training_text(line) == (line, None), line
        assert not any(c.isdigit() for c in line)
        assert len(line) <= 40
    joined = "\n".join(lines)
    assert "진주" in joined and "차차" in joined
    assert sum(line.endswith("?") for line in lines) >= 30
    assert sum(line.endswith("!") for line in lines) >= 15


# --- record ------------------------------------------------------------------------------------


class Session:
    """Keys for `record`, and the voice the fake microphone hears when a take starts."""

    def __init__(self, fake: FakeSoundDevice, keys: list[str], takes: list[np.ndarray]) -> None:
        self.fake = fake
        self.keys = list(keys)
        self.takes = list(takes)
        self.prompts: list[str] = []

    def ask(self, prompt: str) -> str:
        self.prompts.append(prompt)
        if "stop" in prompt:
            deadline = time.monotonic() + 10
            while self.fake.pending_input and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(0.03)
            return ""
        key = self.keys.pop(0)
        if "start" in prompt and key == "" and self.takes:
            self.fake.say(self.takes.pop(0))
        return key


def test_record_keeps_retakes_skips_and_resumes(tmp_path: Path):
    script = tmp_path / "script.txt"
    script.write_text(
        "첫 번째 문장이야.\n두 번째 문장이야.\n세 번째 문장이야.\n네 번째 문장이야.\n", encoding="utf-8"
    )
    vdir = VoiceDir(tmp_path / "voice")
    fake = FakeSoundDevice(input_speed=20.0)
    # 1: silent take (Enter means retake), then a good one kept · 2: skipped · 3: start, then quit
    first = Session(
        fake, ["", "", "", "", "s", "", "q"], [silence(1.0), utterance(1.5, 1), utterance(1.5, 2)]
    )
    said: list[str] = []
    result = record_script(vdir, backend=fake, script=script, ask=first.ask, say=said.append)
    assert (result.kept, result.skipped, result.quit, result.remaining) == (1, 1, True, 2)
    assert any("no speech" in line for line in said)
    first_clip = vdir.recorded / clip_name(1, "첫 번째 문장이야.")
    assert sorted(p.name for p in (vdir.recorded / "wavs").iterdir()) == [first_clip.name]
    kept, rate = sf.read(first_clip, dtype="int16")
    assert rate == RATE and len(kept) / RATE > 1.4
    progress = json.loads((vdir.recorded / "progress.json").read_text(encoding="utf-8"))
    statuses = {k: v["status"] for k, v in progress["done"].items()}
    assert statuses == {"첫 번째 문장이야.": "kept", "두 번째 문장이야.": "skipped"}

    second = Session(fake, ["", "", "", ""], [utterance(1.5, 3), utterance(1.5, 4)])
    said.clear()
    result = record_script(vdir, backend=fake, script=script, ask=second.ask, say=said.append)
    assert any("starting at sentence 3" in line for line in said)
    assert (result.kept, result.total_kept, result.remaining) == (2, 3, 0)
    rows = read_review(vdir.recorded / "review.tsv")
    assert [(r.clip, r.text, r.status) for r in rows] == [
        (clip_name(1, "첫 번째 문장이야."), "첫 번째 문장이야.", "ok"),
        (clip_name(3, "세 번째 문장이야."), "세 번째 문장이야.", "ok"),
        (clip_name(4, "네 번째 문장이야."), "네 번째 문장이야.", "ok"),
    ]
    said.clear()
    done = record_script(vdir, backend=fake, script=script, ask=second.ask, say=said.append)
    assert done.remaining == 0 and "All 4 sentences are done" in said[0]


def test_record_without_a_microphone_says_what_to_do(tmp_path: Path):
    script = tmp_path / "s.txt"
    script.write_text("하나.\n", encoding="utf-8")
    with pytest.raises(VoiceError, match="cannot open the microphone"):
        record_script(
            VoiceDir(tmp_path / "v"), backend=FakeSoundDevice(devices=False), script=script, ask=lambda p: ""
        )


def test_record_opens_a_card_that_refuses_22050_at_its_own_rate(tmp_path: Path):
    script = tmp_path / "s.txt"
    script.write_text("하나 둘 셋.\n", encoding="utf-8")
    fake = FakeSoundDevice(input_speed=20.0, input_rates={48000})
    take = levels.to_int16(levels.as_float(utterance(1.5)))
    import soxr

    at_48k = levels.to_int16(soxr.resample(levels.as_float(take), RATE, 48000))
    session = Session(fake, ["", ""], [at_48k])
    record_script(VoiceDir(tmp_path / "v"), backend=fake, script=script, ask=session.ask, say=lambda s: None)
    kept, rate = sf.read(tmp_path / "v" / "recorded" / clip_name(1, "하나 둘 셋."), dtype="int16")
    assert rate == RATE and len(take) / RATE - 0.1 < len(kept) / RATE < len(take) / RATE + 1.5


# --- import and the review gate ----------------------------------------------------------------


def test_empty_folder_is_a_clear_error(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(VoiceError, match="no recordings in"):
        find_recordings([tmp_path / "empty"])
    with pytest.raises(VoiceError, match="nothing to prepare"):
        prepare_dataset(VoiceDir(tmp_path / "voice"), load=read_recording, say=lambda s: None)


def test_split_on_silence_makes_clips_of_one_to_fifteen_seconds():
    parts = [silence(0.5)]
    for i, seconds in enumerate([2.0, 3.0, 0.3, 0.4, 4.0]):
        parts += [speechlike(seconds, seed=i), silence(0.8)]
    parts += [speechlike(40.0, seed=9), silence(0.5)]
    audio = np.concatenate(parts)
    spans = levels.split_on_silence(audio, RATE)
    lengths = [(end - start) / RATE for start, end in spans]
    assert all(1.0 <= s <= 15.0 for s in lengths), lengths
    assert sum(lengths) > 45
    assert len(spans) >= 6


def test_import_writes_todo_review_and_prepare_waits_for_it(tmp_path: Path):
    source = tmp_path / "notes"
    long = np.concatenate([utterance(2.0, 1), silence(1.0, -70), utterance(3.0, 2)])
    write(source / "note1.wav", long)
    write(source / "note2.flac", utterance(2.5, 3), rate=48000)
    vdir = VoiceDir(tmp_path / "voice")
    transcriber = FakeTranscriber("오늘 날씨 좋다")
    result = import_recordings(vdir, [source], transcriber, load=read_recording, say=lambda s: None)
    assert result.files == 2 and result.clips == 3
    rows = read_review(vdir.imported / "review.tsv")
    assert [r.status for r in rows] == ["todo"] * 3 and all(r.text == "오늘 날씨 좋다" for r in rows)
    assert all((vdir.imported / r.clip).is_file() for r in rows)
    assert transcriber.calls and all(n > 16000 for n in transcriber.calls)  # resampled to 16 kHz

    again = import_recordings(vdir, [source], transcriber, load=read_recording, say=lambda s: None)
    assert (
        again.files == 0 and again.skipped_files == 2 and len(read_review(vdir.imported / "review.tsv")) == 3
    )

    with pytest.raises(
        VoiceError, match=r"no reviewed clips yet \(3 in .*review.tsv still 'todo'\).*--accept-all"
    ):
        prepare_dataset(vdir, load=read_recording, say=lambda s: None)
    assert not vdir.metadata.exists()

    rows[0].status, rows[0].text = "ok", "진주야 안녕"
    rows[1].status = "skip"
    write_review(vdir.imported / "review.tsv", rows)
    report = prepare_dataset(vdir, load=read_recording, say=lambda s: None)
    assert report.kept == 1 and report.not_reviewed == 1 and report.skipped_by_you == 1
    assert vdir.metadata.read_text(encoding="utf-8").splitlines() == [
        f"imp_{Path(rows[0].clip).stem}|진주야 안녕"
    ]

    report = prepare_dataset(vdir, load=read_recording, accept_all=True, say=lambda s: None)
    assert report.kept == 2 and report.not_reviewed == 0


def test_prepare_reports_rejected_clips_with_reasons(tmp_path: Path):
    vdir = VoiceDir(tmp_path / "voice")
    write(vdir.recorded / "wavs" / "0001.wav", utterance(2.0, 1))
    write(vdir.recorded / "wavs" / "0002.wav", silence(2.0, -60))
    write(vdir.recorded / "wavs" / "0003.wav", utterance(2.0, 3))
    from tts.voice.review import ReviewRow

    write_review(
        vdir.recorded / "review.tsv",
        [
            ReviewRow("wavs/0001.wav", "안녕, 진주야.", "ok"),
            ReviewRow("wavs/0002.wav", "아무 말도 없어.", "ok"),
            ReviewRow("wavs/0003.wav", "1+1=2 맞지?", "ok"),
        ],
    )
    printed: list[str] = []
    report = prepare_dataset(vdir, load=read_recording, say=printed.append)
    reasons = {r.clip: r.reason for r in report.rejected}
    assert reasons[str(Path("recorded/wavs/0002.wav"))].startswith("no speech")
    assert "unspeakable symbols '+' '='" in reasons[str(Path("recorded/wavs/0003.wav"))]
    saved = json.loads(vdir.report.read_text(encoding="utf-8"))
    assert saved["kept"] == 1 and saved["rejected_by_reason"] == {"no speech": 1, "text": 1}
    assert saved["minutes"] > 0
    table = "\n".join(printed)
    assert "kept" in table and "no speech" in table and "0003.wav" in table
    wav, rate = sf.read(vdir.dataset_wavs / "rec_0001.wav", dtype="int16")
    assert rate == RATE


# --- train's checks (no training) --------------------------------------------------------------


def small_dataset(vdir: VoiceDir, clips: int) -> None:
    lines = []
    for i in range(clips):
        write(vdir.dataset_wavs / f"rec_{i:04d}.wav", utterance(1.2, i, noise_db=None))
        lines.append(f"rec_{i:04d}|안녕 진주야.")
    vdir.metadata.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_too_few_clips_for_training(tmp_path: Path):
    vdir = VoiceDir(tmp_path / "voice")
    with pytest.raises(VoiceError, match="no dataset in .*chacha voice prepare"):
        count_clips(vdir)
    small_dataset(vdir, 3)
    with pytest.raises(VoiceError, match=rf"has 3 clip\(s\), too few to train on \(at least {MIN_CLIPS}"):
        train_voice(vdir, TrainOptions(), say=lambda s: None)


def run_cli(argv: list[str], config=None):
    parser = argparse.ArgumentParser(prog="chacha")
    parser.add_argument("--config", type=Path)
    cli_args.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    from device.config import ChachaConfig

    return args.func(args, config or ChachaConfig())


def test_missing_base_checkpoint(tmp_path: Path):
    vdir = VoiceDir(tmp_path / "voice")
    small_dataset(vdir, MIN_CLIPS)
    with pytest.raises(VoiceError) as caught:
        run_cli(["voice", "train", "--dir", str(vdir.root), "--base-checkpoint", "/nope.ckpt"])
    message = str(caught.value)
    assert message.startswith("base checkpoint not found: /nope.ckpt") and "\n" not in message
    assert "docs/voice.md" in message


@pytest.mark.voice_train
def test_base_checkpoint_that_is_not_a_checkpoint(tmp_path: Path):
    vdir = VoiceDir(tmp_path / "voice")
    small_dataset(vdir, MIN_CLIPS)
    bogus = tmp_path / "voice.onnx"
    bogus.write_bytes(b"not a checkpoint")
    with pytest.raises(VoiceError, match="cannot read the checkpoint .*not an .onnx voice"):
        train_voice(vdir, TrainOptions(base_checkpoint=bogus, accelerator="cpu"), say=lambda s: None)


def test_export_and_install_say_what_is_missing(tmp_path: Path):
    with pytest.raises(VoiceError, match="no checkpoint at .*chacha voice train"):
        run_cli(["voice", "export", "--dir", str(tmp_path / "voice")])
    with pytest.raises(VoiceError, match="no voice at .*chacha voice export"):
        run_cli(["voice", "install", "--dir", str(tmp_path / "voice"), "--no-play", "--no-config"])


def test_import_telegram_needs_its_folder(tmp_path: Path):
    with pytest.raises(VoiceError, match="--telegram-dir"):
        run_cli(["voice", "import", "telegram", "--dir", str(tmp_path / "voice")])
    (tmp_path / "tg").mkdir()
    with pytest.raises(VoiceError, match="no recordings in"):
        run_cli(
            [
                "voice",
                "import",
                "telegram",
                "--telegram-dir",
                str(tmp_path / "tg"),
                "--dir",
                str(tmp_path / "v"),
            ]
        )


def test_every_step_has_a_handler():
    parser = argparse.ArgumentParser(prog="chacha")
    cli_args.register(parser.add_subparsers(dest="command", required=True))
    for argv in (
        ["voice", "record", "--device", "USB"],
        ["voice", "import", "DIR", "--accept-all"],
        ["voice", "prepare", "--accept-all", "--min-snr", "15"],
        [
            "voice",
            "train",
            "--accelerator",
            "gpu",
            "--max-steps",
            "5",
            "--batch-size",
            "4",
            "--quality",
            "high",
        ],
        ["voice", "export", "--checkpoint", "x.ckpt"],
        ["voice", "install", "--no-play"],
    ):
        args = parser.parse_args(argv)
        assert callable(args.func)
    with pytest.raises(SystemExit):
        parser.parse_args(["voice", "train", "--max-steps", "0"])


# --- chacha.yaml --------------------------------------------------------------------------------

MODEL = Path("/home/chacha/voice/voice.onnx")


def test_config_edit_changes_only_the_tts_lines():
    original = (
        "# my doll\n"
        "server:\n"
        "  port: 8750  # keep\n"
        "\n"
        "tts:\n"
        "  # which engine\n"
        "  engine: espeak  # robot\n"
        "  espeak:\n"
        "    voice: ko\n"
        "  volume: 0.8\n"
        "hardware:\n"
        "  button_pin: 17\n"
    )
    edited = set_piper_voice(original, MODEL)
    check_edit(edited, MODEL)
    assert edited.splitlines() == [
        "# my doll",
        "server:",
        "  port: 8750  # keep",
        "",
        "tts:",
        "  # which engine",
        "  engine: piper",
        "  piper:",
        '    model: "/home/chacha/voice/voice.onnx"',
        "  espeak:",
        "    voice: ko",
        "  volume: 0.8",
        "hardware:",
        "  button_pin: 17",
    ]


def test_config_edit_replaces_an_existing_piper_model_and_config():
    original = (
        "tts:\n    engine: piper\n    piper:\n"
        "        model: old.onnx\n        config: old.onnx.json\n        length_scale: 1.1\n"
    )
    edited = set_piper_voice(original, MODEL, MODEL.with_name("voice.onnx.json"))
    check_edit(edited, MODEL)
    assert '        model: "/home/chacha/voice/voice.onnx"\n' in edited
    assert '        config: "/home/chacha/voice/voice.onnx.json"\n' in edited
    assert "        length_scale: 1.1\n" in edited and "old.onnx" not in edited


def test_config_edit_appends_a_section_and_refuses_flow_style():
    edited = set_piper_voice("server:\n  port: 1234\n", MODEL)
    check_edit(edited, MODEL)
    assert edited.startswith("server:\n  port: 1234\n")
    check_edit(set_piper_voice("", MODEL), MODEL)
    with pytest.raises(CannotEdit):
        set_piper_voice("tts: {engine: espeak}\n", MODEL)


def test_switch_config_prints_the_lines_when_it_cannot_write(tmp_path: Path, monkeypatch):
    locked = tmp_path / "etc" / "chacha.yaml"
    locked.parent.mkdir()
    locked.write_text("tts:\n  engine: espeak\n", encoding="utf-8")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("tts.voice.install.os.replace", refuse)
    printed: list[str] = []
    assert switch_config(locked, MODEL, say=printed.append) is False
    assert "Permission denied" in printed[0] and "engine: piper" in printed[0] and str(MODEL) in printed[0]
    assert locked.read_text(encoding="utf-8") == "tts:\n  engine: espeak\n"

    flow = tmp_path / "flow.yaml"
    flow.write_text("tts: {engine: espeak}\n", encoding="utf-8")
    printed.clear()
    assert switch_config(flow, MODEL, say=printed.append) is False
    assert "not changed" in printed[0] and "model:" in printed[0]


def test_switch_config_writes_a_valid_config(tmp_path: Path):
    from device.config import load_config

    path = tmp_path / "chacha.yaml"
    path.write_text("client:\n  conversation: jinju  # her\ntts:\n  engine: espeak\n", encoding="utf-8")
    model = tmp_path / "voice.onnx"
    assert switch_config(path, model, say=lambda s: None)
    config, _ = load_config(path)
    assert config.tts.engine == "piper" and config.tts.piper.model == model
    assert "# her" in path.read_text(encoding="utf-8")
    assert (tmp_path / "chacha.yaml.bak").read_text(encoding="utf-8").endswith("engine: espeak\n")
