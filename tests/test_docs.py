"""docs/architecture.md stays true to the code: every route of the server is in it, and every
file, folder and module it names exists."""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
from pathlib import Path

from fastapi.routing import APIRoute

from inference_server.app import create_app
from inference_server.backends.phrasebook import PhrasebookBackend
from inference_server.chat import ChatService
from inference_server.persona import PersonaBook
from inference_server.store import ConversationStore

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
PACKAGES = ("device", "inference_server", "tts", "hardware", "telegram_collector")
FILE = r"[\w.-]+\.(?:py|md|yaml|yml|toml|sh|txt|tsv|wav|lock)"
# Named in the doc but not files of the repository: her config file where the commands look for
# it, and files under the server's data folder.
NOT_IN_THE_REPO = ("chacha.yaml", "server.data_dir/")


def _text() -> str:
    return DOC.read_text(encoding="utf-8")


def _code_spans(text: str) -> list[str]:
    """`inline code` (it may wrap to the next line), outside ``` blocks."""
    prose = re.sub(r"(?ms)^```.*?^```", "", text)
    return [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose) if "\n\n" not in span]


def _repo_files() -> set[str]:
    """The names of every file in the packages, tests, docs and scripts (for a bare file name)."""
    names = {p.name for p in ROOT.iterdir()}
    for top in (*PACKAGES, "tests", "docs", "scripts", "systemd", "samples"):
        for _, dirs, files in os.walk(ROOT / top):
            dirs[:] = [d for d in dirs if not d.startswith((".", "__"))]
            names.update(files)
            names.update(dirs)
    return names


def _is_repo_path(span: str) -> bool:
    if span.startswith(("/", "~", "$", ".", "http")) or span.startswith(NOT_IN_THE_REPO):
        return False
    if re.fullmatch(r"(?:application|audio|text)/[\w.+-]+", span):
        return False  # a media type
    return bool(re.fullmatch(r"[\w.-]+(?:/[\w.-]+)*/?", span)) and ("/" in span or re.fullmatch(FILE, span))


def test_every_route_of_the_server_is_in_the_doc(tmp_path, phrasebook):
    chat = ChatService(
        PersonaBook(None, tmp_path),
        ConversationStore(tmp_path / "c.sqlite3"),
        [PhrasebookBackend(phrasebook)],
    )
    try:
        routes = [r for r in create_app(chat, token="listing-only").routes if isinstance(r, APIRoute)]
    finally:
        chat.store.close()
    assert len(routes) >= 15
    text = _text()
    missing = [
        f"{method} {route.path}"
        for route in routes
        for method in sorted(route.methods)
        if not re.search(rf"`{method} {re.escape(route.path)}[`?\s]", text)
    ]
    assert not missing, (
        f"routes of inference_server/app.py that docs/architecture.md does not name: {missing}"
    )


def test_every_path_the_doc_names_exists():
    text = _text()
    names = _repo_files()
    missing = []
    for span in _code_spans(text):
        if not _is_repo_path(span):
            continue
        if "/" in span:
            if not (ROOT / span).exists():
                missing.append(span)
        elif span not in names:
            missing.append(span)
    for target in re.findall(r"\]\(([^)#\s]+)", text):
        if not target.startswith("http") and not (DOC.parent / target).exists():
            missing.append(target)
    # file names in the package tree and the diagrams, backticked or not
    for name in set(re.findall(rf"(?<![\w/.-])({FILE})(?![\w/])", text)):
        if name not in names and not name.startswith(NOT_IN_THE_REPO):
            missing.append(name)
    assert not missing, f"docs/architecture.md names what does not exist: {sorted(set(missing))}"


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        module = ".".join(parts[:end])
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if found:
            value = importlib.import_module(module)
            for attribute in parts[end:]:
                if not hasattr(value, attribute):
                    return False
                value = getattr(value, attribute)
            return True
    return False


def test_every_module_the_doc_names_exists():
    dotted = {
        span
        for span in _code_spans(_text())
        if re.fullmatch(r"[a-z_]+(?:\.[A-Za-z_]+)+", span) and span.split(".")[0] in PACKAGES
    }
    assert dotted, "the doc names modules (inference_server.api.InferenceClient, …)"
    missing = sorted(name for name in dotted if not _resolves(name))
    assert not missing, f"docs/architecture.md names modules that do not exist: {missing}"
