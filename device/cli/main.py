"""`chacha`: the command line of the doll, its server and its tools."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from pathlib import Path

from device.cli.errors import CommandError
from device.config import ConfigError, load_config
from device.stt import registry as stt_registry

_LOGGER = logging.getLogger("chacha")


def _known_errors() -> tuple[type[BaseException], ...]:
    """The errors that are the user's to fix: printed as one line, no traceback."""
    from device.errors import AudioDeviceError, STTError
    from hardware.errors import HardwareError
    from inference_server.api import ServerUnavailable
    from inference_server.errors import InferenceError
    from telegram_collector.errors import TelegramError
    from tts.errors import TTSError
    from tts.voice.errors import VoiceError

    return (
        CommandError,
        ConfigError,
        InferenceError,
        STTError,
        TTSError,
        ServerUnavailable,
        AudioDeviceError,
        HardwareError,
        TelegramError,
        VoiceError,
    )


def build_parser() -> argparse.ArgumentParser:
    from device.cli import (
        admin,
        bench,
        conversation,
        doctor,
        live,
        memory,
        server,
        speech,
        telegram,
        voice,
        wake,
    )

    parser = argparse.ArgumentParser(
        prog="chacha", description="차차핑: a talking doll that answers in Korean as 차차."
    )
    _common_options(parser, default=None)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run the inference server (needs CHACHA_API_TOKEN)")
    p.add_argument("--host", help="address to bind (default: server.host, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: server.port, 8750)")
    p.set_defaults(func=server.serve)

    p = sub.add_parser("talk", help="one whole turn from a file: her voice in, 차차's voice out")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", type=Path, metavar="WAV", help="her utterance (WAV/FLAC/OGG)")
    source.add_argument("--text", help="what she says, as text (skips speech recognition)")
    p.add_argument("--output", type=Path, metavar="WAV", help="where to write 차차's spoken reply")
    p.add_argument("--conversation", help="conversation id (default: client.conversation)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=conversation.talk)

    engines = stt_registry.choices()
    p = sub.add_parser("transcribe", help="speech recognition on audio files")
    p.add_argument("files", type=Path, nargs="+", metavar="WAV")
    p.add_argument("--engine", choices=engines, help="recogniser (default: stt.engine)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=speech.transcribe)

    p = sub.add_parser("say", help="speak a text in 차차's voice")
    p.add_argument("text")
    p.add_argument("--output", type=Path, metavar="WAV", help="write a WAV instead of playing it")
    p.set_defaults(func=speech.say)

    p = sub.add_parser("ask", help="ask 차차 in text and print his answer")
    p.add_argument("text")
    p.add_argument("--conversation", help="conversation id (default: client.conversation)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=conversation.ask)

    p = sub.add_parser("bench", help="measure: `bench stt DIR` (accuracy and speed of speech recognition)")
    bench_parsers = p.add_subparsers(dest="bench", required=True, metavar="WHAT")
    b = bench_parsers.add_parser("stt", help="character error rate and end-of-speech latency per engine")
    b.add_argument("folder", type=Path, metavar="DIR", help="folder with transcripts.tsv and its recordings")
    b.add_argument(
        "--engines",
        default="vosk,whisper,hybrid",
        help="comma-separated engines to compare (default: vosk,whisper,hybrid)",
    )
    b.add_argument(
        "--cores",
        type=int,
        metavar="N",
        help="pin the process to N cores (1 = a Pi-class budget) before loading anything",
    )
    b.add_argument(
        "--repeat",
        type=int,
        default=3,
        metavar="N",
        help="transcribe everything N times; latencies are medians over the runs (default 3)",
    )
    b.add_argument("--output", type=Path, metavar="JSON", help="also write the results as JSON here")
    b.add_argument("--json", action="store_true", help="print JSON instead of a table")
    b.set_defaults(func=bench.bench_stt)
    bench.register(bench_parsers)
    bench.register_endpoint(bench_parsers)
    bench.register_echo(bench_parsers)
    bench.register_wake(bench_parsers)

    wake.register(sub)

    p = sub.add_parser("doctor", help="check models, config, server, token and disk; say how to fix")
    p.add_argument(
        "--measure-stt",
        action="store_true",
        help="time Whisper again now (fastest of 5 passes) for stt.engine: auto, and keep that",
    )
    p.set_defaults(func=doctor.doctor)

    p = sub.add_parser("run", help="the doll itself: push-to-talk loop with LEDs (systemd runs this)")
    p.set_defaults(func=live.run)

    p = sub.add_parser("test", help="check one part of the doll: leds, button, mic or speaker")
    p.add_argument("part", choices=["leds", "button", "mic", "speaker"])
    p.add_argument(
        "--seconds",
        type=float,
        help="seconds per LED state (2), watching the button (10), recording the mic (3)",
    )
    p.set_defaults(func=live.test_hardware)

    p = sub.add_parser("status", help="the server's backends, cooldowns and quota left, on one screen")
    p.add_argument("--json", action="store_true", help="print the health JSON")
    p.set_defaults(func=admin.status)

    p = sub.add_parser("persona", help="show, edit, set or reload 차차's persona (applies at once)")
    p.add_argument("action", choices=["show", "edit", "set", "reload"])
    p.add_argument("file", type=Path, nargs="?", help="with `set`: the persona YAML to use")
    p.set_defaults(func=admin.persona)

    memory.register(sub)
    telegram.register(sub)
    voice.register(sub)

    p = sub.add_parser("config", help="check the configuration and print it as used")
    p.set_defaults(func=admin.show_config)
    _everywhere(parser)
    return parser


def _common_options(parser: argparse.ArgumentParser, default) -> None:
    """--config and --debug. `default` is None on `chacha` itself; after a sub-command it is
    argparse.SUPPRESS, so that one not given there keeps what was given before it."""
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        default=default,
        help="chacha.yaml to use (default: $CHACHA_CONFIG, "
        "./chacha.yaml, ~/.config/chachaping/chacha.yaml, /etc/chachaping/chacha.yaml)",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=False if default is None else default,
        help="verbose logs and full tracebacks",
    )


def _everywhere(parser: argparse.ArgumentParser) -> None:
    """Let every sub-command (and theirs) take --config and --debug too: `chacha serve --config x`
    as well as `chacha --config x serve`."""
    seen: set[int] = set()

    def visit(node: argparse.ArgumentParser) -> None:
        for action in node._actions:  # argparse keeps its sub-commands only here
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    if id(child) not in seen:  # an alias is the same parser
                        seen.add(id(child))
                        _common_options(child, default=argparse.SUPPRESS)
                        visit(child)

    visit(parser)


def _setup_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not debug:
        for noisy in (
            "httpx",
            "httpx2",
            "httpcore",
            "httpcore2",
            "google_genai",
            "uvicorn.error",
            "faster_whisper",
        ):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.debug)
    try:
        config, source = load_config(args.config)
        args.config_source = source
        return int(args.func(args, config) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the last word: one line unless --debug
        if args.debug:
            traceback.print_exc()
        if isinstance(exc, _known_errors()):
            print(f"chacha: error: {exc}", file=sys.stderr)
            return 2
        print(
            f"chacha: unexpected error: {type(exc).__name__}: {exc} "
            "(run again with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1
