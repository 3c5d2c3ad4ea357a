"""Shared fixtures: a real server on loopback, the shipped persona and phrasebook, clean env."""

from __future__ import annotations

import importlib.util
import random
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from inference_server.backends.base import LLMBackend
from inference_server.backends.gemini import GeminiBackend
from inference_server.backends.phrasebook import Phrasebook, PhrasebookBackend
from inference_server.chat import ChatService
from inference_server.persona import Persona, PersonaBook
from inference_server.runtime import BackgroundServer
from inference_server.settings import GeminiSettings, ServerSettings
from inference_server.store import ConversationStore

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_WAV = ROOT / "samples" / "ko-read-sentence.wav"


VOICE_TRAIN_MISSING = (
    "the voice-train extra (Piper's trainer, PyTorch) is not installed: `make test-voice` installs it"
    " and runs these tests"
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked voice_train skip, with one line saying why, where the extra is missing."""
    if importlib.util.find_spec("piper.train") is not None and importlib.util.find_spec("torch") is not None:
        return
    skip = pytest.mark.skip(reason=VOICE_TRAIN_MISSING)
    for item in items:
        if item.get_closest_marker("voice_train"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder for the whole run: the Whisper model is assembled into it once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _no_real_secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, shared_cache: Path) -> None:
    """No test may reach Google with a developer's real key, or read their config/history."""
    for name in (
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
        "CHACHA_API_TOKEN",
        "CHACHA_CONFIG",
        "GOOGLE_GEMINI_BASE_URL",
        "TELEGRAM_BOT_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(shared_cache))


@pytest.fixture(scope="session")
def persona() -> Persona:
    return Persona.load()


@pytest.fixture(scope="session")
def phrasebook() -> Phrasebook:
    shipped = Phrasebook.load()
    return Phrasebook(
        shipped.pairs, shipped.not_understood, min_similarity=shipped.min_similarity, rng=random.Random(7)
    )


@pytest.fixture
def token() -> str:
    return secrets.token_urlsafe(16)


def gemini_backend(base_url: str, *, api_key: str | None = "test-key", **overrides) -> GeminiBackend:
    """The real Gemini backend (real SDK) pointed at a fake Gemini server (``api_key=None``: as
    with GEMINI_API_KEY unset)."""
    settings = GeminiSettings(base_url=base_url, model="gemini-test-flash", **overrides)
    return GeminiBackend(settings, api_key=api_key)


@pytest.fixture
def start_server(
    tmp_path: Path, persona: Persona, phrasebook: Phrasebook, token: str
) -> Iterator[Callable[..., BackgroundServer]]:
    """Start real servers on 127.0.0.1; all are stopped when the test ends."""
    started: list[BackgroundServer] = []

    def start(
        *backends: LLMBackend,
        data_dir: Path | None = None,
        history_turns: int = 12,
        settings: ServerSettings | None = None,
        port: int = 0,
        **options,
    ):
        folder = data_dir or tmp_path / "data"
        store = ConversationStore(folder / "conversations.sqlite3")
        chat = ChatService(
            PersonaBook(None, folder),
            store,
            list(backends) or [PhrasebookBackend(phrasebook)],
            history_turns=history_turns,
            **options,
        )
        server = BackgroundServer(chat, token, settings, port=port).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


# --- the live doll's parts (module-scoped: the models load once per test module) ---------------


@pytest.fixture(scope="module")
def transcriber():
    """Vosk, the doll's live recogniser."""
    from device.stt.auto import create_transcriber
    from device.stt.settings import STTSettings

    return create_transcriber(STTSettings(engine="vosk"))


@pytest.fixture(scope="module")
def engine():
    """The default voice."""
    from tts.engines import create_engine
    from tts.settings import TTSSettings

    return create_engine(TTSSettings())


@pytest.fixture(scope="module")
def speech():
    """Her Korean sentence, 16 kHz int16 samples."""
    import soundfile as sf

    samples, rate = sf.read(SAMPLE_WAV, dtype="int16")
    assert rate == 16000
    return samples
