"""`chacha transcribe` (hearing only) and `chacha say` (speaking only)."""

from __future__ import annotations

import json
import logging
import sys
from argparse import Namespace

from device.config import ChachaConfig

_LOGGER = logging.getLogger(__name__)

# --- transcribe --------------------------------------------------------------------------


def transcribe(args: Namespace, config: ChachaConfig) -> int:
    from device.errors import STTError
    from device.stt.auto import create_transcriber

    transcriber = create_transcriber(config.stt, engine=args.engine, debug=args.debug)
    results, failed = [], 0
    for path in args.files:
        try:
            t = transcriber.transcribe_file(path)
        except STTError as exc:
            failed += 1
            results.append({"file": str(path), "error": str(exc)})
            if not args.json:
                print(f"{path}: error: {exc}", file=sys.stderr)
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
        print(json.dumps(results if len(results) > 1 else results[0], ensure_ascii=False))
    return 2 if failed else 0


# --- say ---------------------------------------------------------------------------------


def say(args: Namespace, config: ChachaConfig) -> int:
    from device.cli.errors import CommandError
    from tts.engines import create_engine, join_audio, speak, write_wav

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
