"""`chacha transcribe` (hearing only) and `chacha say` (speaking only)."""

from __future__ import annotations

import json
import logging
import sys
from argparse import Namespace
from pathlib import Path

from device.config import ChachaConfig

_LOGGER = logging.getLogger(__name__)

# --- transcribe --------------------------------------------------------------------------


def transcribe(args: Namespace, config: ChachaConfig) -> int:
    from device.audio import check_audio_file
    from device.errors import STTError

    results, failed = [], 0

    def refuse(path, exc: STTError) -> None:
        nonlocal failed
        failed += 1
        results.append({"file": str(path), "error": str(exc)})
        if not args.json:
            print(f"{path}: error: {exc}", file=sys.stderr)

    # Every file's header first (seconds for a model to load, microseconds for a header).
    readable = []
    for path in args.files:
        try:
            check_audio_file(path, max_s=config.stt.max_audio_s)
        except STTError as exc:
            refuse(path, exc)
        else:
            readable.append(path)
    transcriber = None
    if readable:
        from device.stt.auto import create_transcriber

        transcriber = create_transcriber(config.stt, engine=args.engine, debug=args.debug)
    for path in readable:
        try:
            t = transcriber.transcribe_file(path)
        except STTError as exc:
            refuse(path, exc)
            continue
        results.append(
            {
                "file": str(path),
                "text": t.text,
                "confidence": round(t.confidence, 3),
                "engine": t.engine,
                "vosk_text": t.vosk_text,
                "audio_s": round(t.audio_s, 3),
                "timings_ms": {
                    "total": round(t.elapsed_s * 1000, 1),
                    "final": round(t.final_latency_s * 1000, 1),
                },
            }
        )
        if not args.json:
            print(
                f"{path}: {t.text or '(nothing heard)'}  [confidence {t.confidence:.2f}, "
                f"{t.audio_s:.1f} s of audio in {t.elapsed_s * 1000:.0f} ms, final text "
                f"{t.final_latency_s * 1000:.0f} ms after the last chunk]"
            )
    if args.json:
        order = {str(path): i for i, path in enumerate(args.files)}
        results.sort(key=lambda r: order.get(r["file"], 0))  # as given, refused files included
        print(json.dumps(results if len(results) > 1 else results[0], ensure_ascii=False))
    return 2 if failed else 0


# --- say ---------------------------------------------------------------------------------


def check_output(path: Path | None) -> None:
    """Refuse an --output that cannot become a WAV file before any work is done for it."""
    from device.cli.errors import CommandError

    if path is None:
        return
    if path.is_dir():
        raise CommandError(f"--output {path} is a folder: give a file name, e.g. {path / 'reply.wav'}")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise CommandError(f"--output {path}: {parent} is a file, not a folder — choose another path")


def say(args: Namespace, config: ChachaConfig) -> int:
    from device.cli.errors import CommandError
    from tts.engines import create_engine, join_audio, speak, write_wav

    check_output(args.output)
    engine = create_engine(config.tts)
    chunks = list(speak(engine, args.text, volume=config.tts.volume))
    if not any(len(c.samples) for c in chunks):
        raise CommandError("there is nothing speakable in that text: give Korean words")
    samples, rate = join_audio(chunks, config.tts.sentence_gap_ms)
    if args.output is not None:
        write_wav(args.output, samples, rate)
        print(f"{args.output}: {len(samples) / rate:.1f} s at {rate} Hz ({engine.name})")
        return 0
    from device.audio import play

    play(samples, rate)
    return 0
