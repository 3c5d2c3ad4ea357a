# SPDX-License-Identifier: GPL-3.0-or-later
"""The handlers of `chacha voice …`: ``handler(args, config) -> int``, heavy imports inside.

They compose the voice-cloning steps (``tts.voice``) with the doll's parts, which those steps
take as parameters: the audio loader and player and the sound card (``device.audio``), and a
speech recogniser (``device.stt``).
"""

from __future__ import annotations

import argparse
import logging
from argparse import Namespace
from pathlib import Path

import numpy as np

from device.stt import registry as stt_registry
from tts.voice.errors import UnreadableAudio, VoiceError
from tts.voice.workspace import VoiceDir

_LOGGER = logging.getLogger(__name__)


def default_voice_dir() -> Path:
    from inference_server.settings import default_data_dir

    return default_data_dir() / "voice"


def voice_dir(args: Namespace) -> VoiceDir:
    folder = getattr(args, "dir", None)
    return VoiceDir(Path(folder).expanduser() if folder else default_voice_dir())


def read_recording(path: Path, sample_rate: int) -> np.ndarray:
    """The doll's audio loader, as the voice steps take it (an unreadable file is UnreadableAudio)."""
    from device.audio import load_audio
    from device.errors import AudioError

    try:
        return load_audio(path, sample_rate=sample_rate)
    except AudioError as exc:
        raise UnreadableAudio(str(exc)) from None


def make_transcriber(stt_settings, *, say=print):
    """Whisper when it can be loaded (far more accurate on Korean), else the configured engine."""
    from device.errors import STTError
    from device.stt.auto import create_transcriber

    try:
        transcriber = create_transcriber(stt_settings, engine="whisper")
        say("Transcribing with Whisper.")
        return transcriber
    except (STTError, ImportError, OSError, RuntimeError) as exc:
        _LOGGER.warning("Whisper is not available (%s); using stt.engine", exc)
    try:
        transcriber = create_transcriber(stt_settings)
    except (STTError, ImportError, OSError, RuntimeError) as exc:
        raise VoiceError(
            f"no speech recogniser to transcribe with ({exc}): install the device extra "
            "(`make install`) and check `chacha doctor`"
        ) from None
    say(f"Whisper is not available; transcribing with {transcriber.engine} (check every transcript).")
    return transcriber


def default_player(device=None):
    """Play through the speaker; a missing sound card only costs the playing, not the test."""
    from device.audio import play
    from device.errors import AudioDeviceError

    state = {"ok": True}

    def player(samples: np.ndarray, rate: int) -> None:
        if not state["ok"]:
            return
        try:
            play(samples, rate, device=device)
        except AudioDeviceError as exc:
            state["ok"] = False
            print(f"  (not played: {exc})")

    return player


def _device(value):
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


def _audio_setting(config, name: str):
    """``config.audio.<name>`` when the configuration has an audio section, else None."""
    audio = getattr(config, "audio", None)
    return getattr(audio, name, None) if audio is not None else None


def record(args: Namespace, config) -> int:
    from device.audio import load_portaudio
    from tts.voice.record import record_script

    device = args.device if args.device is not None else _audio_setting(config, "input_device")
    record_script(
        voice_dir(args),
        backend=load_portaudio(),
        device=_device(device),
        script=args.script,
        max_s=args.max_seconds,
    )
    return 0


def import_(args: Namespace, config) -> int:
    from tts.voice.importing import find_recordings, import_recordings

    sources: list[Path] = []
    for source in args.sources:
        if source == "telegram":
            if args.telegram_dir is None:
                raise VoiceError(
                    "`import telegram` needs --telegram-dir DIR: the folder where the Telegram collector "
                    "keeps his voice notes (.ogg)"
                )
            sources.append(args.telegram_dir)
        else:
            sources.append(Path(source))
    files = find_recordings(sources)  # fail on an empty folder before loading a recogniser
    print(f"{len(files)} recording(s) found.")
    if args.engine:
        from device.stt.auto import create_transcriber

        transcriber = create_transcriber(config.stt, engine=args.engine)
    else:
        transcriber = make_transcriber(config.stt)
    vdir = voice_dir(args)
    result = import_recordings(vdir, sources, transcriber, load=read_recording, accept_all=args.accept_all)
    print(
        f"Imported {result.files} file(s) as {result.clips} clip(s), {result.seconds / 60:.1f} min"
        + (f"; {result.skipped_files} imported before" if result.skipped_files else "")
        + "."
    )
    if args.accept_all:
        print(f"Transcripts accepted as they are ({result.review}). Next: `chacha voice prepare`.")
    else:
        print(
            f"Now open {result.review}, correct each text to exactly what is said, and set status to ok "
            "(or skip). Then `chacha voice prepare` (or `prepare --accept-all` to trust the transcripts)."
        )
    return 0


def prepare(args: Namespace, config) -> int:
    from tts.voice.prepare import prepare_dataset

    prepare_dataset(voice_dir(args), load=read_recording, accept_all=args.accept_all, min_snr_db=args.min_snr)
    return 0


def train(args: Namespace, config) -> int:
    from tts.voice.train import TrainOptions, train_voice

    options = TrainOptions(
        base_checkpoint=args.base_checkpoint.expanduser() if args.base_checkpoint else None,
        accelerator=args.accelerator,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        quality=args.quality,
        save_every=args.save_every,
        workers=max(0, args.workers),
    )
    result = train_voice(voice_dir(args), options)
    return 130 if result.interrupted else 0


def export(args: Namespace, config) -> int:
    from tts.voice.export import export_voice

    export_voice(voice_dir(args), checkpoint=args.checkpoint, output=args.output)
    return 0


def config_file(args: Namespace) -> Path:
    """The chacha.yaml in use, or the user's one to create."""
    source = getattr(args, "config_source", None) or getattr(args, "config", None)
    return Path(source) if source else Path("~/.config/chachaping/chacha.yaml").expanduser()


def install(args: Namespace, config) -> int:
    from tts.voice.install import listening_test, switch_config

    vdir = voice_dir(args)
    model = (args.voice or vdir.onnx).expanduser().resolve()
    print(f"Listening test with {model}:")
    player = None if args.no_play else default_player(_audio_setting(config, "output_device"))
    wavs, rate = listening_test(model, vdir.listen, play=player)
    print(f"Wrote {len(wavs)} WAVs at {rate} Hz to {vdir.listen}.")
    if args.no_config:
        print("chacha.yaml left as it is (--no-config).")
        return 0
    switch_config(config_file(args), model)
    return 0


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
    from device.cli import voice as commands

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
        choices=stt_registry.choices(),
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
