"""`chacha talk` (one whole turn from a recording or a text) and `chacha ask` (text only)."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from argparse import Namespace
from pathlib import Path

from device.cli.errors import CommandError
from device.cli.server import server_client
from device.config import ChachaConfig
from inference_server.backends import registry as backend_registry
from inference_server.settings import MAX_TEXT_CHARS
from inference_server.shared.secrets import Secrets

_LOGGER = logging.getLogger(__name__)


def check_text(text: str) -> str:
    """Her text as the server will take it, or a one-line error before anything is sent."""
    if len(text) > MAX_TEXT_CHARS:
        raise CommandError(
            f"the text is {len(text):,} characters long and 차차 takes at most {MAX_TEXT_CHARS:,} "
            "at a time: shorten it"
        )
    return text


# --- talk --------------------------------------------------------------------------------


def talk(args: Namespace, config: ChachaConfig) -> int:
    from device.cli.speech import check_output
    from device.doll.talk import run_turn, write_reply
    from tts.engines import create_engine

    if args.text is not None:
        check_text(args.text)
    check_output(args.output)  # before her turn is asked and kept, not after
    transcript, recording = None, None
    if args.input is not None:
        from device.audio import load_audio
        from device.stt.auto import create_transcriber

        # fail fast on a bad or too long file, before a model is loaded
        samples = load_audio(args.input, sample_rate=config.stt.sample_rate, max_s=config.stt.max_audio_s)
        transcript = create_transcriber(config.stt, debug=args.debug).transcribe(samples)
        if config.client.send_audio != "off":
            recording = (samples, config.stt.sample_rate)
    engine = create_engine(config.tts)
    conversation = args.conversation or config.client.conversation
    with server_client(config) as client:
        result = asyncio.run(
            run_turn(
                client,
                engine,
                conversation=conversation,
                text=args.text,
                transcript=transcript,
                gap_ms=config.tts.sentence_gap_ms,
                volume=config.tts.volume,
                recording=recording,
            )
        )
    if args.output is not None:
        write_reply(result, args.output)
    if args.json:
        print(json.dumps(result.as_json(args.output), ensure_ascii=False))
    else:
        _explain_turn(result, args.output, config)
    return 0


_BACKEND_WORDS = {  # who answered when no backend did; a backend's own label is in its registration
    "none": "nobody (nothing was heard, so the doll asked her to say it again)",
    "disk-full": "nobody: the server's disk is full, so nothing was stored (see `chacha status`)",
}


def _explain_turn(result, output: Path | None, config: ChachaConfig) -> None:
    t = result.timings_ms
    lines = []
    if result.transcript is not None:
        lines.append(
            f"Heard:        {result.text or '(nothing)'}  "
            f"[{result.transcript.engine}, confidence {result.transcript.confidence:.2f}, "
            f"{result.transcript.audio_s:.1f} s of audio]"
        )
        if result.transcript.vosk_text is not None:
            lines.append(
                f"              (Vosk heard while she spoke: {result.transcript.vosk_text or 'nothing'})"
            )
    else:
        lines.append(f"She said:     {result.text}")
    lines.append(f"차차:         {result.reply}")
    answered = _BACKEND_WORDS.get(result.backend) or backend_registry.label(result.backend)
    lines.append(f"Answered by:  {answered}")
    for fallback in result.fallbacks:
        lines.append(
            f"              ({fallback['backend']} skipped: {fallback['reason']} — {fallback['detail']})"
        )
    if output is not None:
        lines.append(
            f"Reply audio:  {output}  [{result.audio_s:.1f} s, {result.sample_rate} Hz, {result.engine}]"
        )

    def ms(key: str) -> str:
        return "—" if t.get(key) is None else f"{t[key]:.0f} ms"

    lines.append(
        f"Timings:      speech recognition {ms('stt')} · first sentence of the reply "
        f"{ms('llm_first_sentence')} · whole reply {ms('llm_total')} · first sentence "
        f"synthesised {ms('tts_first_audio')} · first audio ready {ms('first_audio')} after asking"
        f" · whole turn {ms('total')}"
    )
    if "gemini" in config.llm.backends and result.backend != "gemini" and Secrets().gemini_api_key is None:
        lines.append("")
        lines.append(
            "Note: GEMINI_API_KEY is not set, so 차차 answered offline from the "
            "phrasebook. To let Gemini answer, create a key in Google AI Studio, then "
            "`export GEMINI_API_KEY=...` and run this again."
        )
    print("\n".join(lines))


# --- ask ---------------------------------------------------------------------------------


def ask(args: Namespace, config: ChachaConfig) -> int:
    from inference_server.api import ReplyFinal, ReplySentence

    check_text(args.text)
    conversation = args.conversation or config.client.conversation

    async def run() -> ReplyFinal | None:
        final = None
        with server_client(config) as client:
            async for event in client.chat(args.text, conversation=conversation, channel="cli"):
                if isinstance(event, ReplySentence) and not args.json:
                    print(event.text, flush=True)
                elif isinstance(event, ReplyFinal):
                    final = event
        return final

    final = asyncio.run(run())
    if args.json and final is not None:
        print(
            json.dumps(
                {
                    "reply": final.reply,
                    "backend": final.backend,
                    "timings_ms": final.timings_ms.model_dump(),
                    "fallbacks": [f.model_dump() for f in final.fallbacks],
                },
                ensure_ascii=False,
            )
        )
    elif final is not None:
        print(f"[{_BACKEND_WORDS.get(final.backend, final.backend)}]", file=sys.stderr)
    return 0
