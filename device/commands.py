"""What each `chacha` command does. Heavy libraries are imported only by the commands using them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import statistics
import sys
from argparse import Namespace
from collections.abc import Iterator
from pathlib import Path

import yaml

from device.config import ChachaConfig
from inference_server.shared.secrets import Secrets

_LOGGER = logging.getLogger(__name__)

TOKEN_ENV = "CHACHA_API_TOKEN"
TOKEN_HINT = (
    f"export {TOKEN_ENV}=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))') "
    "and give the same value to the server and its clients"
)


def _api_token(required_for: str) -> str:
    from device.cli import CommandError

    token = Secrets().chacha_api_token
    if token is None:
        raise CommandError(f"{TOKEN_ENV} is not set, and {required_for} needs it: {TOKEN_HINT}")
    return token.get_secret_value()


def _build_chat(config: ChachaConfig):
    from inference_server.runtime import build_chat_service

    return build_chat_service(config.server, config.llm, config.persona)


@contextlib.contextmanager
def _server_client(config: ChachaConfig) -> Iterator:
    """A client of the configured server, or of one started in this process when none is set."""
    from inference_server.api import InferenceClient

    if config.client.url:
        yield InferenceClient(
            config.client.url, _api_token("talking to client.url"), timeout_s=config.client.timeout_s
        )
        return
    from inference_server.runtime import BackgroundServer

    token = secrets.token_urlsafe(24)
    with BackgroundServer(_build_chat(config), token) as server:
        _LOGGER.debug("started an in-process server at %s", server.url)
        yield InferenceClient(server.url, token, timeout_s=config.client.timeout_s)


# --- serve -------------------------------------------------------------------------------


def serve(args: Namespace, config: ChachaConfig) -> int:
    from inference_server.runtime import bind_socket
    from inference_server.runtime import serve as run_server

    token = _api_token("the server")
    host = args.host or config.server.host
    port = args.port if args.port is not None else config.server.port
    sock = bind_socket(host, port)
    chat = _build_chat(config)
    for status in chat.backend_status():
        if not status.available:
            _LOGGER.warning("backend %s is off: %s", status.name, status.reason)
    run_server(chat, token, sock, log_level="debug" if args.debug else "info")
    return 0


# --- talk --------------------------------------------------------------------------------


def talk(args: Namespace, config: ChachaConfig) -> int:
    from device.doll.talk import run_turn, write_reply
    from tts.engines import create_engine

    transcript, recording = None, None
    if args.input is not None:
        from device.audio import load_audio
        from device.stt.auto import create_transcriber

        samples = load_audio(args.input, sample_rate=config.stt.sample_rate)  # fail fast on a bad file
        transcript = create_transcriber(config.stt, debug=args.debug).transcribe(samples)
        if config.client.send_audio:
            recording = (samples, config.stt.sample_rate)
    engine = create_engine(config.tts)
    conversation = args.conversation or config.client.conversation
    with _server_client(config) as client:
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


_BACKEND_WORDS = {
    "gemini": "Gemini",
    "phrasebook": "the offline phrasebook",
    "none": "nobody (nothing was heard, so the doll asked her to say it again)",
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
    lines.append(f"Answered by:  {_BACKEND_WORDS.get(result.backend, result.backend)}")
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


# --- bench ---------------------------------------------------------------------------------


def bench_stt(args: Namespace, config: ChachaConfig) -> int:
    from device.bench.stt import evaluate, load_transcripts
    from device.cli import CommandError
    from device.stt.auto import create_engines

    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = sorted(set(engines) - {"vosk", "whisper", "hybrid"})
    if unknown or not engines:
        raise CommandError(
            f"unknown engine(s) {', '.join(unknown) or '(none)'}: choose from vosk, whisper, hybrid"
        )
    if args.repeat < 1:
        raise CommandError(f"--repeat {args.repeat}: give at least 1")
    load_transcripts(args.folder)  # a bad folder fails before minutes of model loading
    stt = config.stt
    if args.cores:
        available = sorted(os.sched_getaffinity(0))
        if args.cores > len(available):
            raise CommandError(f"--cores {args.cores}: only {len(available)} core(s) here")
        os.sched_setaffinity(0, set(available[: args.cores]))
        stt = stt.model_copy(update={"whisper": stt.whisper.model_copy(update={"cpu_threads": args.cores})})
    loaded = create_engines(stt, engines, debug=args.debug)
    reports, latencies = [], {}
    for name in engines:
        runs = [evaluate(args.folder, loaded[name].transcribe_file) for _ in range(args.repeat)]
        reports.append(runs[-1])  # the first run pays one-off warm-up costs
        latencies[name] = sorted(r.median_final_latency_s for r in runs)
    result = {
        "folder": str(args.folder),
        "cores": args.cores or len(os.sched_getaffinity(0)),
        "repeat": args.repeat,
        "peak_rss_mb": _peak_rss_mb(),
        "engines": [
            {
                **r.as_json(),
                "final_latency_runs_s": latencies[name],
                "final_latency_median_of_runs_s": statistics.median(latencies[name]),
            }
            for name, r in zip(engines, reports, strict=True)
        ],
    }
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        for name, report in zip(engines, reports, strict=True):
            print(report.as_table())
            print(
                f"end of speech → final text, median of {args.repeat} run(s): "
                f"{statistics.median(latencies[name]) * 1000:.0f} ms"
            )
            print()
        print(
            f"Cores: {result['cores']} · peak RSS with {', '.join(engines)} loaded: "
            f"{result['peak_rss_mb']:.0f} MB"
        )
    return 0


def _peak_rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# --- doctor ------------------------------------------------------------------------------


def doctor(args: Namespace, config: ChachaConfig) -> int:
    from device.doctor import run_checks

    return run_checks(config, args.config_source, measure_stt=getattr(args, "measure_stt", False))


# --- say ---------------------------------------------------------------------------------


def say(args: Namespace, config: ChachaConfig) -> int:
    from device.cli import CommandError
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


# --- ask ---------------------------------------------------------------------------------


def ask(args: Namespace, config: ChachaConfig) -> int:
    from inference_server.api import ReplyFinal, ReplySentence

    conversation = args.conversation or config.client.conversation

    async def run() -> ReplyFinal | None:
        final = None
        with _server_client(config) as client:
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


# --- config ------------------------------------------------------------------------------


def show_config(args: Namespace, config: ChachaConfig) -> int:
    source = args.config_source or "built-in defaults (no chacha.yaml found)"
    print(f"# configuration from {source}; it is valid")
    print(yaml.safe_dump(config.model_dump(mode="json"), allow_unicode=True, sort_keys=False))
    return 0
