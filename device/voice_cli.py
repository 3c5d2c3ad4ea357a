# SPDX-License-Identifier: GPL-3.0-or-later
"""The `chacha voice …` command line: ``register(subparsers)`` adds it to the `chacha` parser.

Every sub-command sets ``func`` to a handler ``handler(args, config) -> int`` in
:mod:`device.voice_commands`; problems are raised as :class:`tts.voice.errors.VoiceError`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

STEPS = "record → (import) → prepare → train → export → install"


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``voice`` with its sub-commands to the `chacha` sub-parsers; returns its parser."""
    from device import voice_commands as commands

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dir",
        type=Path,
        metavar="DIR",
        help="the voice folder all steps share (default: $XDG_DATA_HOME/chachaping/voice)",
    )

    voice = subparsers.add_parser(
        "voice",
        help=f"clone 차차's voice into a Piper voice: {STEPS}",
        description=f"Make a Piper voice from 차차's own recordings, step by step: {STEPS}. "
        "See docs/voice.md.",
    )
    steps = voice.add_subparsers(dest="voice_command", required=True, metavar="STEP")

    p = steps.add_parser(
        "record", parents=[common], help="read the recording script aloud, sentence by sentence"
    )
    p.add_argument(
        "--script",
        type=Path,
        metavar="FILE",
        help="your own script, one sentence a line (default: the shipped Korean one)",
    )
    p.add_argument(
        "--device",
        metavar="MIC",
        help="microphone: part of its name or its index (default: audio.input_device, else the system's)",
    )
    p.add_argument(
        "--max-seconds", type=float, default=30.0, metavar="S", help="longest take in seconds (default 30)"
    )
    p.set_defaults(func=commands.record)

    p = steps.add_parser(
        "import",
        parents=[common],
        help="cut recordings you already have into clips, transcribe them, and list them for review",
    )
    p.add_argument(
        "sources",
        nargs="+",
        metavar="DIR|telegram",
        help="folders or files of WAV/FLAC/OGG recordings; 'telegram' = the voice notes in --telegram-dir",
    )
    p.add_argument(
        "--telegram-dir", type=Path, metavar="DIR", help="folder of the Telegram collector's .ogg voice notes"
    )
    p.add_argument(
        "--accept-all",
        action="store_true",
        help="mark every transcript ok without review (only if you trust the recogniser)",
    )
    p.add_argument(
        "--engine",
        choices=["whisper", "hybrid", "vosk", "auto"],
        help="speech recogniser for the transcripts (default: whisper, else stt.engine)",
    )
    p.set_defaults(func=commands.import_)

    p = steps.add_parser(
        "prepare", parents=[common], help="check, trim and normalise the reviewed clips into a Piper dataset"
    )
    p.add_argument(
        "--accept-all", action="store_true", help="also use clips whose review status is still todo"
    )
    p.add_argument(
        "--min-snr",
        type=float,
        default=20.0,
        metavar="DB",
        help="reject clips with a lower signal-to-noise ratio (default 20 dB)",
    )
    p.set_defaults(func=commands.prepare)

    p = steps.add_parser(
        "train", parents=[common], help="train (or go on training) the voice with Piper's trainer"
    )
    p.add_argument(
        "--base-checkpoint",
        type=Path,
        metavar="CKPT",
        help="Piper checkpoint to fine-tune from (recommended; see docs/voice.md); "
        "ignored when continuing a run",
    )
    p.add_argument(
        "--accelerator",
        choices=["cpu", "gpu", "auto"],
        default="auto",
        help="where to train (default: auto = GPU if there is one)",
    )
    p.add_argument(
        "--max-steps",
        type=_positive,
        default=20000,
        metavar="N",
        help="train until this many steps in all (default 20000)",
    )
    p.add_argument(
        "--batch-size",
        type=_positive,
        default=16,
        metavar="N",
        help="clips per step (default 16; lower it when memory runs out)",
    )
    p.add_argument(
        "--quality",
        choices=["x_low", "medium", "high"],
        help="model size (default: the base checkpoint's, else medium)",
    )
    p.add_argument(
        "--save-every",
        type=_positive,
        default=200,
        metavar="N",
        help="write last.ckpt every N steps (default 200)",
    )
    p.add_argument(
        "--workers", type=int, default=1, metavar="N", help="data-loading processes (default 1; 0 = none)"
    )
    p.set_defaults(func=commands.train)

    p = steps.add_parser(
        "export", parents=[common], help="turn a checkpoint into voice.onnx + voice.onnx.json"
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        metavar="CKPT",
        help="checkpoint to export (default: DIR/training/checkpoints/last.ckpt)",
    )
    p.add_argument(
        "--output", type=Path, metavar="ONNX", help="where to write the voice (default: DIR/voice/voice.onnx)"
    )
    p.set_defaults(func=commands.export)

    p = steps.add_parser(
        "install",
        parents=[common],
        help="listen to the new voice, then make it the doll's voice in chacha.yaml",
    )
    p.add_argument(
        "--voice", type=Path, metavar="ONNX", help="the voice to install (default: DIR/voice/voice.onnx)"
    )
    p.add_argument(
        "--no-play", action="store_true", help="only write the listening test's WAVs, do not play them"
    )
    p.add_argument("--no-config", action="store_true", help="do not change chacha.yaml")
    p.set_defaults(func=commands.install)
    return voice
