# SPDX-License-Identifier: GPL-3.0-or-later
"""The whole voice-cloning pipeline on a tiny generated dataset, on the CPU.

espeak-ng reads twelve sentences of the recording script; a fake microphone "hears" them
while `record` is driven by scripted keys; then `prepare`, `train` (Piper's trainer, the
smallest model size, batch 2, two steps from scratch), `export` and `install` run through
the `chacha voice` command line, and the exported voice speaks Korean through the project's
TTS interface. This proves the plumbing, not the voice: two steps teach it nothing.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fakes.sounddevice import FakeSoundDevice

from device.cli import voice as cli_args
from tts.voice.record import record_script
from tts.voice.script import load_script
from tts.voice.workspace import SAMPLE_RATE, VoiceDir

pytestmark = pytest.mark.slow


def espeak(text: str) -> np.ndarray:
    wav = subprocess.run(["espeak-ng", "-v", "ko", "--stdout", text], capture_output=True, check=True).stdout
    samples, rate = sf.read(io.BytesIO(wav), dtype="int16")
    assert rate == SAMPLE_RATE
    return samples


def chacha_voice(argv: list[str], config_path: Path | None = None) -> int:
    """`chacha voice …` as device/cli/main.py runs it: parse, then handler(args, config)."""
    from device.config import load_config

    parser = argparse.ArgumentParser(prog="chacha")
    parser.add_argument("--config", type=Path)
    cli_args.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    config, source = load_config(config_path)
    args.config_source = source
    return args.func(args, config)


@pytest.mark.voice_train
@pytest.mark.timeout(600)
def test_record_prepare_train_export_install_speak(tmp_path: Path):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (sudo apt-get install espeak-ng)")
    started = time.perf_counter()

    sentences = load_script()[:12]
    script = tmp_path / "script.txt"
    script.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    voices = [espeak(s) for s in sentences]
    pause = np.zeros(SAMPLE_RATE // 4, np.int16)

    # record: a fake microphone hears espeak-ng read each sentence; keys come from a script.
    fake = FakeSoundDevice(input_speed=20.0)
    pending = list(voices)
    keys = iter(["", "r", "", ""] + ["", ""] * 11)  # the first sentence is taken twice

    def ask(prompt: str) -> str:
        if "stop" in prompt:
            deadline = time.monotonic() + 10
            while fake.pending_input and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(0.02)
            return ""
        key = next(keys)
        if "start" in prompt:
            take = pending[0] if key == "" else None
            if take is not None:
                fake.say(np.concatenate([pause, take, pause]))
        if "keep" in prompt and key == "":
            pending.pop(0)
        return key

    vdir = VoiceDir(tmp_path / "voice")
    result = record_script(vdir, backend=fake, script=script, ask=ask, say=lambda s: None)
    assert (result.kept, result.remaining) == (12, 0)

    # prepare → train → export → install, through the command line.
    config = tmp_path / "chacha.yaml"
    config.write_text("# the doll\ntts:\n  engine: espeak  # for now\n  volume: 1.0\n", encoding="utf-8")
    base = ["--dir", str(vdir.root)]
    assert chacha_voice(["voice", "prepare", *base], config) == 0
    metadata = vdir.metadata.read_text(encoding="utf-8").splitlines()
    assert len(metadata) == 12
    assert metadata[0].startswith("rec_0001-") and metadata[0].endswith(f"|{sentences[0]}")
    for line in metadata:
        clip_id, text = line.split("|")
        wav = vdir.dataset_wavs / f"{clip_id}.wav"
        info = sf.info(str(wav))
        assert info.samplerate == SAMPLE_RATE and info.channels == 1 and 1.0 <= info.duration <= 15.0
    report = json.loads(vdir.report.read_text(encoding="utf-8"))
    assert report["kept"] == 12 and report["rejected"] == []

    train = ["voice", "train", *base, "--accelerator", "cpu", "--quality", "x_low", "--batch-size", "2"]
    train += ["--save-every", "1", "--workers", "0"]
    assert chacha_voice([*train, "--max-steps", "2"], config) == 0
    assert vdir.last_checkpoint.is_file()
    import torch

    checkpoint = torch.load(vdir.last_checkpoint, map_location="cpu", weights_only=False)
    assert checkpoint["global_step"] == 4  # two batches, two optimiser steps each
    assert (vdir.training / "config.json").is_file()
    assert any((vdir.training / "cache").glob("*.phonemes.pt"))

    # Starting again goes on from the checkpoint (one more step), and says so.
    assert chacha_voice([*train, "--max-steps", "3"], config) == 0
    checkpoint = torch.load(vdir.last_checkpoint, map_location="cpu", weights_only=False)
    assert checkpoint["global_step"] == 6
    del checkpoint

    assert chacha_voice(["voice", "export", *base], config) == 0
    assert vdir.onnx.is_file() and vdir.onnx.stat().st_size > 1_000_000
    voice_config = json.loads(vdir.onnx.with_name("voice.onnx.json").read_text(encoding="utf-8"))
    assert voice_config["espeak"]["voice"] == "ko" and voice_config["audio"]["sample_rate"] == SAMPLE_RATE

    assert chacha_voice(["voice", "install", *base, "--no-play"], config) == 0
    assert sorted(p.name for p in vdir.listen.glob("*.wav")) == ["01.wav", "02.wav", "03.wav"]
    from device.config import load_config

    installed, _ = load_config(config)
    assert installed.tts.engine == "piper" and installed.tts.piper.model == vdir.onnx.resolve()
    assert config.read_text(encoding="utf-8").startswith("# the doll\ntts:\n")

    # The exported voice speaks Korean through the project's TTS interface.
    from tts.engines import create_engine, speak
    from tts.settings import PiperSettings, TTSSettings

    engine = create_engine(TTSSettings(engine="piper", piper=PiperSettings(model=vdir.onnx)))
    assert engine.sample_rate == SAMPLE_RATE
    spoken = list(speak(engine, "진주야, 오늘 3시에 만나자! 밥은 먹었어?"))
    assert len(spoken) == 2
    for audio in spoken:
        assert audio.sample_rate == SAMPLE_RATE
        assert audio.samples.dtype == np.int16 and len(audio.samples) > SAMPLE_RATE // 10

    assert time.perf_counter() - started < 300
