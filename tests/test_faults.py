"""Faults on loopback: the real server process killed with SIGKILL in the middle of 차차's reply.

What was acknowledged — her turn, and every sentence of his that reached her — is in the history
when the server comes back, his reply marked as cut off, and the next turn's history alternates
truthfully (her, his cut reply, her).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from fakes.chat import ChatEvent, chat, stream_chat

from device.bench.fake_gemini import FakeGemini, Reply
from inference_server.api.models import SentenceEvent
from inference_server.store import ConversationStore

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "fault-token"


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(tmp_path: Path, fake: FakeGemini) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    config = tmp_path / "chacha.yaml"
    config.write_text(
        f"server:\n  data_dir: {tmp_path / 'data'}\n  summarize_history: false\n"
        f"llm:\n  gemini:\n    base_url: {fake.base_url}\n    model: gemini-test-flash\n",
        encoding="utf-8",
    )
    env = {**os.environ, "CHACHA_API_TOKEN": TOKEN, "GEMINI_API_KEY": "test-key"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "device.cli", "--config", str(config), "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):  # generous: a loaded CI machine starts Python slowly
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/v1/health", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("the server did not start")


def test_a_server_killed_mid_reply_keeps_what_she_said_and_what_she_heard(tmp_path: Path) -> None:
    gate = threading.Event()
    with FakeGemini() as fake:
        fake.push(
            Reply.stream(["진주야, 오늘 ", "어땠어? 나는 ", "너 생각만 했지."], gate=gate, gate_after=2)
        )
        proc, url = _start(tmp_path, fake)
        heard: list[ChatEvent] = []
        try:
            turn = stream_chat(url, TOKEN, "나 오늘 면접 봤어", conversation="jinju", channel="doll")
            for event in turn:
                heard.append(event)
                break  # the first sentence has reached her: now the server dies
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            turn.close()
        finally:
            gate.set()
            if proc.poll() is None:
                proc.kill()
        reply_id = heard[0].reply_id
        assert heard == [SentenceEvent(index=0, text="진주야,", reply_id=reply_id)]

        store = ConversationStore(tmp_path / "data" / "conversations.sqlite3")
        try:
            turns = store.recent("jinju", 10)
        finally:
            store.close()
        assert [(t.role, t.source) for t in turns] == [("user", "text"), ("model", "cut")]
        assert turns[0].text == "나 오늘 면접 봤어"
        # Everything she heard is on record (a sentence already on its way may be too), and
        # nothing the model had not yet written: his reply is marked as cut off.
        said = turns[1].text
        assert said.startswith("진주야,") and "너 생각만" not in said

        fake.push(Reply.stream(["괜찮아, 잘했을 거야."]))
        proc, url = _start(tmp_path, fake)
        try:
            chat(url, TOKEN, "아까 말하다 끊겼어", conversation="jinju", channel="doll")
        finally:
            proc.terminate()
            proc.wait(timeout=15)
        history = fake.requests[-1].history
        assert history == [
            ("user", "나 오늘 면접 봤어"),
            ("model", f"{said} …"),
            ("user", "아까 말하다 끊겼어"),
        ]
