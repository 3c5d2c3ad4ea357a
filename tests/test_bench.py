"""`chacha bench`: the latency harness runs the real loop and reports every stage."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT
from test_cli import chacha

from device.bench.report import check_targets

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.mark.realtime
def test_latency_bench_through_the_real_loop(tmp_path):
    """The bench measures real time; its bounds hold on a machine four times slower."""
    out = tmp_path / "latency.json"
    result = chacha(
        "bench",
        "latency",
        "--runs",
        "2",
        "--scenarios",
        "vosk:espeak:gemini",
        "--first-token-s",
        "0.3",
        "--tokens-per-s",
        "80",
        "--output",
        str(out),
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    entry = json.loads(out.read_text())["latency"][0]
    m = entry["median_ms"]
    stages = ["vad_hangover", "stt_final", "llm_first_sentence", "tts_first_audio", "playback_start"]
    assert all(m[s] >= 0 for s in stages)
    assert sum(m[s] for s in stages) == pytest.approx(m["voice_to_voice"], abs=60)
    assert 500 < m["vad_hangover"] < 2500, "the 700 ms silence window ends her turn"
    assert m["llm_first_sentence"] >= 300, "the paced Gemini holds its first text 0.3 s"
    assert m["naive"] > m["voice_to_voice"]
    assert entry["reply"].startswith("진주야")


def test_paced_gemini_streams_with_the_real_sdk():
    import time

    from google import genai
    from google.genai import types

    from device.bench.fake_gemini import FakeGemini, Reply

    paced = Reply.paced("하나. 둘. 셋.", first_token_s=0.2, tokens_per_s=20)
    with FakeGemini(default=paced, api_key=None) as fake:
        client = genai.Client(
            api_key="x", http_options=types.HttpOptions(base_url=fake.base_url, api_version="v1beta")
        )
        started = time.monotonic()
        arrivals = [
            (time.monotonic() - started, c.text)
            for c in client.models.generate_content_stream(model="m", contents="시작")
        ]
        started = time.monotonic()
        whole = client.models.generate_content(model="m", contents="시작")
        whole_s = time.monotonic() - started
    assert "".join(t for _, t in arrivals) == "하나. 둘. 셋."
    assert arrivals[0][0] >= 0.2 and arrivals[-1][0] > arrivals[0][0]
    assert whole.text == "하나. 둘. 셋." and whole_s >= paced.total_s
    assert fake.server_errors == []


def test_targets_say_by_how_much_they_are_missed():
    report = {
        "latency": [
            {
                "scenario": {"name": "s", "stt": "vosk", "tts": "piper", "llm": "gemini"},
                "median_ms": {"overhead": 420.0},
                "naive_over_streaming": 1.5,
            }
        ],
        "device_process": {"peak_rss_mb": 900.0, "ready_s": 4.0},
        "server_process": {"ready_s": 1.0},
    }
    checks = {c["what"]: c for c in check_targets(report)}
    overhead = checks["pipeline overhead, vosk + Piper (gemini)"]
    assert not overhead["met"] and overhead["missed_by"] == 120.0
    ratio = checks["streaming vs naive to first sound, s"]
    assert not ratio["met"] and ratio["missed_by"] == 0.5
    assert checks["device peak RSS"]["met"] and checks["device cold start to ready"]["met"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["latency", "--scenarios", "foo:piper:gemini"], "stt is vosk|whisper|hybrid"),
        (["latency", "--runs", "0"], "--runs 0"),
        (["latency", "--recording", "/nope.wav"], "recording /nope.wav not found"),
        (["stt", "samples", "--repeat", "0"], "--repeat 0"),
    ],
)
def test_bad_bench_arguments_are_one_line_errors(args, message):
    from test_cli import assert_one_line_error

    assert_one_line_error(chacha("bench", *args, cwd=ROOT), message)
