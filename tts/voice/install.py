# SPDX-License-Identifier: GPL-3.0-or-later
"""`chacha voice install`: hear the new voice, then make it the doll's voice.

The listening test goes through the project's own speech path — ``create_engine`` with a
``piper`` section, then ``speak`` (normalisation, sentence splitting) — exactly as the doll
will use the voice; each sentence is written to ``listen/NN.wav`` and played. Then
chacha.yaml is switched to the voice with a careful line edit
(:mod:`tts.voice.config_edit`); when the file cannot be written (``/etc``, read-only) or
edited safely, the lines to add are printed instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tts.voice.config_edit import CannotEdit, check_edit, set_piper_voice, snippet
from tts.voice.errors import VoiceError

LISTENING_TEST = (
    "진주야, 오늘 하루는 어땠어?",
    "밥은 챙겨 먹었지? 나는 벌써 커피 두 잔째야.",
    "잘 자, 내일 아침 일곱 시에 깨워 줄게!",
)

Say = Callable[[str], None]
Player = Callable[[np.ndarray, int], None]


@dataclass
class InstallResult:
    wavs: list[Path] = field(default_factory=list)
    sample_rate: int = 0
    config: Path | None = None
    config_written: bool = False


def listening_test(
    model: Path,
    out_dir: Path,
    *,
    sentences: tuple[str, ...] = LISTENING_TEST,
    play: Player | None = None,
    gap_ms: int = 120,
    say: Say = print,
) -> tuple[list[Path], int]:
    """Speak ``sentences`` with the voice through the project's TTS; write (and play) each."""
    from tts.audio import join_audio, write_wav
    from tts.engines import create_engine, speak
    from tts.errors import TTSError
    from tts.settings import PiperSettings, TTSSettings

    if not model.is_file():
        raise VoiceError(f"no voice at {model}: run `chacha voice export` first (or give --voice PATH)")
    try:
        engine = create_engine(TTSSettings(engine="piper", piper=PiperSettings(model=model)))
    except TTSError as exc:
        raise VoiceError(str(exc)) from None
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for number, text in enumerate(sentences, start=1):
        try:
            samples, _rate = join_audio(speak(engine, text), gap_ms, engine.sample_rate)
        except TTSError as exc:
            raise VoiceError(f"the voice failed on {text!r}: {exc}") from None
        path = out_dir / f"{number:02d}.wav"
        write_wav(path, samples, engine.sample_rate)
        written.append(path)
        say(f"  {path.name}: {text}  ({len(samples) / engine.sample_rate:.1f} s)")
        if play is not None:
            play(samples, engine.sample_rate)
    return written, engine.sample_rate


def switch_config(config_path: Path, model: Path, *, say: Say = print) -> bool:
    """Set tts.engine/tts.piper.model in ``config_path`` (created if missing); False if not done."""
    config_json = model.with_name(model.name + ".json")
    try:
        original = config_path.read_text(encoding="utf-8") if config_path.exists() else ""
    except OSError as exc:
        say(
            f"Cannot read {config_path} ({exc}). Add these lines to your chacha.yaml yourself:\n"
            + snippet(model)
        )
        return False
    try:
        edited = set_piper_voice(original, model, config_json)
        check_edit(edited, model)
    except CannotEdit as exc:
        say(f"{config_path} was not changed: {exc}. Add these lines to it yourself:\n{snippet(model)}")
        return False
    try:
        config_path.parent.mkdir(parents=True, exist_ok=True)
        if original:
            shutil.copy2(config_path, config_path.with_name(config_path.name + ".bak"))
        temporary = config_path.with_name(config_path.name + ".tmp")
        temporary.write_text(edited, encoding="utf-8")
        os.replace(temporary, config_path)
    except OSError as exc:
        config_path.with_name(config_path.name + ".tmp").unlink(missing_ok=True)
        say(
            f"Cannot write {config_path} ({exc.strerror or exc}). Add these lines to it yourself "
            f"(e.g. with sudo):\n{snippet(model)}"
        )
        return False
    say(
        f"{config_path}: tts.engine is now piper with {model}"
        + (f" (previous file kept as {config_path.name}.bak)" if original else "")
    )
    return True
