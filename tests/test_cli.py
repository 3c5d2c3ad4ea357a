"""The `chacha` command as a person runs it: real processes, real models, one-line errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import wave
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import ROOT, SAMPLE_WAV
from fakes.cli import assert_one_line_error, chacha

pytestmark = pytest.mark.timeout(180)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as wav:
        assert wav.getnchannels() == 1 and wav.getsampwidth() == 2
        return np.frombuffer(wav.readframes(wav.getnframes()), np.int16), wav.getframerate()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- one whole turn ------------------------------------------------------------------------


@pytest.mark.slow
def test_talk_from_a_real_recording_end_to_end(tmp_path):
    out = tmp_path / "reply.wav"
    result = chacha("talk", "--input", str(SAMPLE_WAV), "--output", str(out), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["transcript"] and report["confidence"] > 0
    assert report["reply"] and report["backend"] == "phrasebook"
    assert report["fallbacks"][0]["detail"] == "GEMINI_API_KEY is not set"
    assert set(report["timings_ms"]) >= {"stt", "llm_first_sentence", "llm_total", "tts_first_audio", "total"}
    assert all(report["timings_ms"][k] > 0 for k in ("stt", "llm_first_sentence", "total"))
    samples, rate = read_wav(out)
    assert rate == report["sample_rate"] and len(samples) / rate > 0.5
    assert np.sqrt(np.mean(samples.astype(float) ** 2)) > 300


@pytest.mark.slow
def test_demo_output_says_the_phrasebook_answered_and_how_to_enable_gemini(tmp_path):
    result = chacha("talk", "--input", str(SAMPLE_WAV), "--output", str(tmp_path / "r.wav"))
    assert result.returncode == 0, result.stderr
    assert "Heard:" in result.stdout and "차차:" in result.stdout
    assert "the offline phrasebook" in result.stdout
    assert "export GEMINI_API_KEY" in result.stdout
    assert "Timings:" in result.stdout and "speech recognition" in result.stdout


def test_talk_from_text_skips_speech_recognition(tmp_path):
    out = tmp_path / "reply.wav"
    result = chacha("talk", "--text", "오늘 너무 피곤해", "--output", str(out), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["transcript"] == "오늘 너무 피곤해" and report["timings_ms"]["stt"] is None
    samples, rate = read_wav(out)
    assert len(samples) > rate // 2


@pytest.mark.slow
def test_silence_is_answered_without_asking_the_server(tmp_path):
    silence = tmp_path / "silence.wav"
    with wave.open(str(silence), "wb") as wav:
        wav.setnchannels(1), wav.setsampwidth(2), wav.setframerate(16000)
        wav.writeframes(b"\0\0" * 32000)
    result = chacha("talk", "--input", str(silence), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["transcript"] == "" and report["backend"] == "none" and report["reply"]


@pytest.mark.slow
def test_transcribe_prints_text_confidence_and_timing(tmp_path):
    result = chacha("transcribe", str(SAMPLE_WAV), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert "옆으로" in report["text"] and 0 < report["confidence"] <= 1
    assert report["audio_s"] == pytest.approx(3.9, abs=0.1) and report["timings_ms"]["total"] > 0


def test_say_writes_speech(tmp_path):
    out = tmp_path / "hi.wav"
    result = chacha("say", "안녕 진주야. 3시에 보자!", "--output", str(out))
    assert result.returncode == 0, result.stderr
    samples, rate = read_wav(out)
    assert rate == 22050 and len(samples) > rate


# --- the server as its own process ------------------------------------------------------------


def test_serve_answers_and_ask_talks_to_it(tmp_path):
    port = free_port()
    env = {"CHACHA_API_TOKEN": "t0ken", "XDG_DATA_HOME": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "device.cli", "serve", "--port", str(port)],
        env={**os.environ, **env},
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                health = httpx.get(f"{url}/v1/health", headers={"Authorization": "Bearer t0ken"})
                break
            except httpx.ConnectError:
                time.sleep(0.05)
        assert health.json()["backend"] == "phrasebook"
        config = tmp_path / "client.yaml"
        config.write_text(f"client:\n  url: {url}\n", encoding="utf-8")
        result = chacha("--config", str(config), "ask", "배고파", "--json", env_extra=env)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["backend"] == "phrasebook"
        wrong = chacha(
            "--config", str(config), "ask", "배고파", env_extra={**env, "CHACHA_API_TOKEN": "nope"}
        )
        assert_one_line_error(wrong, "rejected the token", "CHACHA_API_TOKEN")
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=15)
    assert proc.returncode in (0, -15), stderr  # uvicorn re-raises the SIGTERM it handled
    assert "t0ken" not in stderr, "the token must never be logged"


# --- bad input: one line that says what to do, non-zero exit, no traceback ------------------------


def test_port_already_in_use():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = chacha("serve", "--port", str(port), env_extra={"CHACHA_API_TOKEN": "x"})
    assert_one_line_error(result, f"port {port}", "already in use", "server.port")


def test_serve_without_a_token():
    assert_one_line_error(chacha("serve"), "CHACHA_API_TOKEN is not set", "export")


def test_a_bad_config_key(tmp_path):
    config = tmp_path / "chacha.yaml"
    config.write_text("tts:\n  engin: piper\n", encoding="utf-8")
    result = chacha("--config", str(config), "talk", "--text", "안녕")
    assert_one_line_error(result, "tts.engin: unknown key", "did you mean tts.engine")


def test_config_and_debug_are_taken_after_the_sub_command_too(tmp_path):
    config = tmp_path / "chacha.yaml"
    config.write_text("server:\n  port: 8799\n", encoding="utf-8")
    result = chacha("config", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert f"configuration from {config}" in result.stdout and "port: 8799" in result.stdout
    config.write_text("nope: 1\n", encoding="utf-8")
    result = chacha("config", "--config", str(config), "--debug")
    assert result.returncode != 0 and "Traceback" in result.stderr


@pytest.mark.parametrize("command", [["ask"], ["talk", "--text"]], ids=["ask", "talk"])
def test_text_over_the_limit_is_refused_before_it_is_sent(command):
    result = chacha(*command, "가" * 2500, env_extra={"CHACHA_API_TOKEN": "x"})
    line = assert_one_line_error(result, "2,500 characters", "at most 2,000")
    assert len(line) < 200 and "가" not in line


def test_a_missing_vosk_model(tmp_path):
    config = tmp_path / "chacha.yaml"
    config.write_text(f"stt:\n  vosk_model: {tmp_path / 'no-model'}\n", encoding="utf-8")
    result = chacha("--config", str(config), "transcribe", str(SAMPLE_WAV))
    assert_one_line_error(result, "Vosk model not found", "stt.vosk_model")


def test_a_missing_piper_voice(tmp_path):
    config = tmp_path / "chacha.yaml"
    config.write_text(
        f"tts:\n  engine: piper\n  piper:\n    model: {tmp_path / 'chacha.onnx'}\n", encoding="utf-8"
    )
    result = chacha("--config", str(config), "say", "안녕", "--output", str(tmp_path / "x.wav"))
    assert_one_line_error(result, str(tmp_path / "chacha.onnx"), "tts.piper.model")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["text-file", "missing", "empty"])
def test_an_unreadable_wav(tmp_path, kind):
    path = tmp_path / "her.wav"
    if kind == "text-file":
        path.write_text("not audio at all", encoding="utf-8")
    elif kind == "empty":
        path.write_bytes(b"")
    result = chacha("talk", "--input", str(path), "--output", str(tmp_path / "out.wav"))
    assert_one_line_error(result, str(path))
    assert not (tmp_path / "out.wav").exists()


def test_an_unreachable_server(tmp_path):
    config = tmp_path / "chacha.yaml"
    config.write_text(f"client:\n  url: http://127.0.0.1:{free_port()}\n", encoding="utf-8")
    result = chacha("--config", str(config), "ask", "안녕", env_extra={"CHACHA_API_TOKEN": "x"})
    assert_one_line_error(result, "not reachable", "chacha serve")


def test_debug_shows_the_traceback(tmp_path):
    config = tmp_path / "chacha.yaml"
    config.write_text("nope: 1\n", encoding="utf-8")
    result = chacha("--debug", "--config", str(config), "config")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_config_prints_the_configuration_in_use(tmp_path):
    result = chacha("config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "built-in defaults" in result.stdout and "gemini-flash-latest" in result.stdout


# --- speech recognition engines, the accuracy bench, the doctor ---------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["vosk", "whisper", "hybrid"])
def test_transcribe_with_each_engine(engine):
    result = chacha("transcribe", str(SAMPLE_WAV), "--engine", engine, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["engine"] == engine and "피하면서" in report["text"]
    assert (report["vosk_text"] is not None) == (engine == "hybrid")


@pytest.mark.slow
def test_bench_stt_reports_cer_latency_and_memory(tmp_path):
    out = tmp_path / "stt.json"
    result = chacha(
        "bench",
        "stt",
        str(ROOT / "samples"),
        "--engines",
        "vosk,whisper",
        "--cores",
        "1",
        "--output",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert "pooled" in result.stdout and "peak RSS" in result.stdout
    report = json.loads(out.read_text())
    assert report["cores"] == 1 and report["peak_rss_mb"] > 100
    cer = {e["engine"]: e["pooled_cer"] for e in report["engines"]}
    assert cer["whisper"] < cer["vosk"] <= 0.4


def test_bench_stt_on_a_folder_without_transcripts(tmp_path):
    result = chacha("bench", "stt", str(tmp_path))
    assert_one_line_error(result, "transcripts.tsv")


@pytest.mark.slow
def test_doctor_says_what_is_wrong_and_how_to_fix_it():
    result = chacha("doctor")
    lines = result.stdout.splitlines()
    assert any(line.startswith("OK") and "speech recognition" in line for line in lines)
    assert any(line.startswith("OK") and "speech synthesis" in line for line in lines)
    assert any("Gemini key" in line and "GEMINI_API_KEY" in line for line in lines)
    failed = [line for line in lines if line.startswith("FAIL")]
    # this machine has no sound card: the doctor must say so, with what to do, and exit 1
    assert (result.returncode == 1) == bool(failed)
    assert all(
        "aplay" in line or "arecord" in line or "apt-get" in line
        for line in failed
        if "microphone" in line or "speaker" in line or "audio" in line
    )


# --- the brain from the command line -------------------------------------------------------------


def test_status_shows_backend_cooldown_and_quota_on_one_screen(tmp_path):
    result = chacha("status", env_extra={"XDG_DATA_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Answers:  phrasebook" in out
    assert "gemini" in out and "GEMINI_API_KEY is not set" in out
    assert "20 of 20 requests left today" in out and "no cooldown" in out and "resets in" in out


def test_status_says_whether_the_doll_listens_by_itself(tmp_path):
    env = {"XDG_DATA_HOME": str(tmp_path)}
    listens = chacha("status", env_extra=env)
    assert listens.returncode == 0, listens.stderr
    assert (
        "Doll:     listens while the button is held, and 5 s after each reply (loop.follow_up_s)"
        in listens.stdout
    )
    (tmp_path / "chachaping" / "doll.json").write_text(
        '{"muted": true}', encoding="utf-8"
    )  # as the doll keeps it
    muted = chacha("status", env_extra=env)
    assert "Doll:     muted: it listens only while the button is held" in muted.stdout
    (tmp_path / "chachaping" / "doll.json").write_text('{"muted": false}', encoding="utf-8")
    config = tmp_path / "chacha.yaml"
    config.write_text("loop:\n  wake:\n    enabled: true\n", encoding="utf-8")
    waking = chacha("--config", str(config), "status", env_extra=env)
    assert (
        "reply (loop.follow_up_s), and after her wake phrase (none enrolled: `chacha wake enroll`)"
        in waking.stdout
    ), waking.stdout


def test_persona_set_show_and_reload(tmp_path):
    env = {"XDG_DATA_HOME": str(tmp_path)}
    shown = chacha("persona", "show", env_extra=env)
    assert shown.returncode == 0 and "name: 차차" in shown.stdout
    mine = tmp_path / "mine.yaml"
    mine.write_text(shown.stdout.split("\n", 1)[1].replace("name: 차차", "name: 차돌이"), encoding="utf-8")
    saved = chacha("persona", "set", str(mine), env_extra=env)
    assert saved.returncode == 0, saved.stderr
    assert "차돌이" in saved.stdout and str(tmp_path / "chachaping" / "persona.yaml") in saved.stdout
    assert "name: 차돌이" in chacha("persona", "show", env_extra=env).stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: 차차\n", encoding="utf-8")
    assert_one_line_error(chacha("persona", "set", str(bad), env_extra=env), "the new persona: partner")
    assert chacha("persona", "reload", env_extra=env).returncode == 0


@pytest.mark.slow
def test_talk_in_audio_mode_sends_her_recording_to_gemini(tmp_path):
    import base64

    from device.bench.fake_gemini import FakeGemini, Reply

    with FakeGemini() as fake:
        fake.push(Reply.stream(["⟦그는 이리저리 피하면서⟧ 무슨 책 읽고 있어?"]))
        config = tmp_path / "chacha.yaml"
        config.write_text(
            "client:\n  send_audio: true\n"
            f"llm:\n  gemini:\n    send_audio: true\n    base_url: {fake.base_url}\n",
            encoding="utf-8",
        )
        result = chacha(
            "--config",
            str(config),
            "talk",
            "--input",
            str(SAMPLE_WAV),
            "--json",
            env_extra={"GEMINI_API_KEY": "test-key", "XDG_DATA_HOME": str(tmp_path)},
        )
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["backend"] == "gemini" and report["reply"] == "무슨 책 읽고 있어?"
        parts = fake.requests[-1].body["contents"][-1]["parts"]
        inline = [p.get("inlineData") or p.get("inline_data") for p in parts if len(p) and "text" not in p]
        assert (inline[0].get("mimeType") or inline[0].get("mime_type")) == "audio/flac"
        assert base64.urlsafe_b64decode(inline[0]["data"])[:4] == b"fLaC"
