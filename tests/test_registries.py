"""A new speech recogniser or LLM backend is one module plus one registration.

The toy engine and the toy backend below are registered from this test alone, touching no other
module, and are then chosen by the config and the command line like the built-in ones: the toy
backend answers a real chat request through the real server, the toy engine transcribes the
sample recording through create_transcriber and `chacha transcribe`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest

from device.audio import load_audio
from device.cli.main import main
from device.config import ConfigError, load_config
from device.stt import registry as stt_registry
from device.stt.auto import create_transcriber
from device.stt.transcript import Transcript
from inference_server.backends import registry as backend_registry
from inference_server.backends.base import LLMRequest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "ko-read-sentence.wav"
TOY_REPLY = "토이가 대답했어."
TOY_HEARD = "토이가   들었어"


class ToyBackend:
    """An LLM backend that always gives the same sentence."""

    name = "toy"
    unavailable_reason = None

    async def stream(self, request: LLMRequest) -> AsyncIterator[str]:
        yield TOY_REPLY


class ToyTranscriber:
    """A speech recogniser that hears the same words in any audio."""

    engine = "toy"

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate

    def transcribe(self, samples: np.ndarray) -> Transcript:
        seconds = len(samples) / self.sample_rate
        return Transcript(TOY_HEARD, 1.0, seconds, 0.0, 0.0, engine=self.engine)

    def transcribe_file(self, path: Path) -> Transcript:
        return self.transcribe(load_audio(path, sample_rate=self.sample_rate))


@pytest.fixture
def toys() -> Iterator[None]:
    """The toy backend and the toy engine, registered for one test."""
    backend_registry.register(
        backend_registry.BackendSpec(
            "toy", lambda context: ToyBackend(), label="the toy brain", spoken="장난감이", background=False
        )
    )
    stt_registry.register(
        stt_registry.EngineSpec(
            "toy", lambda context: ToyTranscriber(context.settings.sample_rate), label="the toy ear"
        )
    )
    try:
        yield
    finally:
        backend_registry.unregister("toy")
        stt_registry.unregister("toy")


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "chacha.yaml"
    path.write_text(text, encoding="utf-8")
    return path


TOY_CONFIG = """
server:
  data_dir: {data}
llm:
  backends: [toy, phrasebook]
memory:
  enabled: false
stt:
  engine: toy
telegram:
  stt_engine: toy
"""


def test_a_toy_backend_is_chosen_by_the_config_and_answers_a_real_chat_request(toys, tmp_path, capsys):
    path = _config(tmp_path, TOY_CONFIG.format(data=tmp_path / "data"))
    config, _ = load_config(path)
    assert config.llm.backends == ["toy", "phrasebook"]
    # `chacha ask` starts the real server in this process, built from the config, and asks it.
    assert main(["--config", str(path), "ask", "안녕", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["backend"] == "toy" and answer["reply"] == TOY_REPLY, answer
    assert backend_registry.label("toy") == "the toy brain"
    assert backend_registry.spoken_name("toy") == "장난감이"


def test_a_toy_engine_is_chosen_by_the_config_and_the_command_line(toys, tmp_path, capsys):
    config, _ = load_config(_config(tmp_path, TOY_CONFIG.format(data=tmp_path / "data")))
    assert config.stt.engine == "toy" and config.telegram.stt_engine == "toy"
    heard = create_transcriber(config.stt).transcribe_file(SAMPLE)
    assert heard.engine == "toy" and heard.text == "토이가 들었어"  # cleaned: whitespace only
    assert heard.audio_s > 1
    with create_transcriber(config.stt).stream() as utterance:  # not streaming: heard at the end
        assert utterance.feed(np.zeros(1600, np.int16)) == ""
        assert utterance.finish().text == "토이가 들었어"
    defaults = _config(tmp_path, f"server:\n  data_dir: {tmp_path / 'data'}\n")
    assert main(["--config", str(defaults), "transcribe", "--engine", "toy", str(SAMPLE), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["engine"] == "toy" and printed["text"] == "토이가 들었어", printed


def test_a_name_registered_twice_is_an_error():
    with pytest.raises(backend_registry.RegistryError, match="'gemini' is already registered"):
        backend_registry.register(backend_registry.BackendSpec("gemini", lambda c: None, label="", spoken=""))
    with pytest.raises(stt_registry.RegistryError, match="'vosk' is already registered"):
        stt_registry.register(stt_registry.EngineSpec("vosk", lambda c: None, label=""))
    with pytest.raises(stt_registry.RegistryError, match="'auto' is already registered"):
        stt_registry.register(stt_registry.EngineSpec("auto", lambda c: None, label=""))


@pytest.mark.parametrize(
    ("section", "named"),
    [
        ("llm:\n  backends: [nope]\n", "unknown LLM backend 'nope': choose from gemini, openai, phrasebook"),
        (
            "stt:\n  engine: nope\n",
            "unknown speech recogniser 'nope': choose from auto, hybrid, whisper, vosk",
        ),
        ("telegram:\n  stt_engine: nope\n", "choose from auto, hybrid, whisper, vosk, off"),
    ],
    ids=["backend", "engine", "telegram-engine"],
)
def test_an_unknown_name_in_the_config_is_an_error_naming_the_registered_ones(tmp_path, section, named):
    with pytest.raises(ConfigError) as error:
        load_config(_config(tmp_path, section))
    assert named in str(error.value)


def test_the_toys_are_gone_after_their_test(tmp_path):
    assert "toy" not in backend_registry.names() and "toy" not in stt_registry.names()
    with pytest.raises(ConfigError, match="choose from gemini, openai, phrasebook"):
        load_config(_config(tmp_path, "llm:\n  backends: [toy]\n"))
