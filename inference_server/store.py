"""Conversation history in SQLite (WAL), shared by the doll and Telegram."""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from inference_server.errors import InferenceError

Role = Literal["user", "model"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS turns (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation TEXT    NOT NULL,
    role         TEXT    NOT NULL CHECK (role IN ('user', 'model')),
    text         TEXT    NOT NULL,
    channel      TEXT    NOT NULL,
    backend      TEXT,
    created_at   REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS turns_by_conversation ON turns (conversation, id);
"""


@dataclass(frozen=True)
class Turn:
    conversation: str
    role: Role
    text: str
    channel: str
    backend: str | None
    created_at: float


class ConversationStore:
    """One SQLite file; calls are short and serialised, so worker threads may share it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise InferenceError(
                f"cannot open the conversation database {path}: {exc} — "
                "set server.data_dir to a writable folder"
            ) from None
        self._lock = threading.Lock()

    def add(
        self,
        conversation: str,
        role: Role,
        text: str,
        *,
        channel: str,
        backend: str | None = None,
    ) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO turns (conversation, role, text, channel, backend, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (conversation, role, text, channel, backend, time.time()),
            )

    def recent(self, conversation: str, limit: int) -> list[Turn]:
        """The last `limit` turns of a conversation, oldest first."""
        if limit <= 0:
            return []
        with self._lock:
            rows = self._db.execute(
                "SELECT conversation, role, text, channel, backend, created_at FROM turns"
                " WHERE conversation = ? ORDER BY id DESC LIMIT ?",
                (conversation, limit),
            ).fetchall()
        return [Turn(*row) for row in reversed(rows)]

    def close(self) -> None:
        with self._lock:
            self._db.close()
