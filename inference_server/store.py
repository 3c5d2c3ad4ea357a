"""Conversation history in SQLite (WAL), shared by the doll and Telegram."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from inference_server.errors import InferenceError
from inference_server.shared.sqlite import add_columns, open_database

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
CREATE TABLE IF NOT EXISTS summaries (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation TEXT    NOT NULL,
    through_id   INTEGER NOT NULL,
    text         TEXT    NOT NULL,
    created_at   REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS summaries_by_conversation ON summaries (conversation, id);
"""
# Columns added after the first release; older databases get them on open.
_ADDED_COLUMNS = {
    "source": "TEXT NOT NULL DEFAULT 'text'",
    "heard": "TEXT",
}
# PRAGMA user_version counts these; files from before it was used say 0 and may lack the columns.
MIGRATIONS = (_SCHEMA, add_columns("turns", _ADDED_COLUMNS))
_TURN_COLUMNS = "id, conversation, role, text, channel, backend, created_at, source, heard"


@dataclass(frozen=True)
class Turn:
    id: int
    conversation: str
    role: Role
    text: str  # as typed, or as speech recognition heard it (source "stt")
    channel: str
    backend: str | None
    created_at: float
    source: str = "text"  # text | stt
    heard: str | None = None  # in audio mode: what the model itself heard her say

    @property
    def for_model(self) -> str:
        """What the model is shown of this turn: its own hearing beats speech recognition's."""
        return self.heard or self.text


def _open_error(path: Path, exc: Exception) -> InferenceError:
    return InferenceError(
        f"cannot open the conversation database {path}: {exc} — set server.data_dir to a writable folder"
    )


class UnknownTurn(InferenceError):
    """No turn with that id in that conversation."""


class NotHerTurn(InferenceError):
    """The turn is 차차's reply: only her turns can be corrected."""


class ConversationStore:
    """One SQLite file; calls are short and serialised, so worker threads may share it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = open_database(path, migrations=MIGRATIONS, wrap_error=lambda exc: _open_error(path, exc))
        self._lock = threading.Lock()

    def add(
        self,
        conversation: str,
        role: Role,
        text: str,
        *,
        channel: str,
        backend: str | None = None,
        source: str = "text",
    ) -> int:
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO turns (conversation, role, text, channel, backend, created_at, source)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (conversation, role, text, channel, backend, time.time(), source),
            )
            return cursor.lastrowid

    def set_heard(self, turn_id: int, heard: str) -> None:
        with self._lock:
            self._db.execute("UPDATE turns SET heard = ? WHERE id = ?", (heard, turn_id))

    def correct(self, turn_id: int, conversation: str, text: str) -> Turn:
        """Replace the text of her turn `turn_id` of `conversation`, e.g. with a better transcript.

        What the model itself heard (`heard`, audio mode) stays, and still goes to the model first.
        Raises UnknownTurn when the conversation has no such turn, NotHerTurn for 차차's own.
        """
        with self._lock:
            row = self._db.execute(
                f"SELECT {_TURN_COLUMNS} FROM turns WHERE id = ? AND conversation = ?",
                (turn_id, conversation),
            ).fetchone()
            if row is None:
                raise UnknownTurn(
                    f"conversation {conversation!r} has no turn {turn_id}: "
                    "use the turn_id of the final event of a reply in this conversation"
                )
            turn = Turn(*row)
            if turn.role != "user":
                raise NotHerTurn(
                    f"turn {turn_id} of conversation {conversation!r} is 차차's reply, not hers: "
                    "only her turns (role user) can be corrected"
                )
            self._db.execute("UPDATE turns SET text = ? WHERE id = ?", (text, turn_id))
        return replace(turn, text=text)

    def recent(self, conversation: str, limit: int, *, before_id: int | None = None) -> list[Turn]:
        """The last `limit` turns of a conversation (before `before_id` if given), oldest first."""
        if limit <= 0:
            return []
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_TURN_COLUMNS} FROM turns WHERE conversation = ? AND id < ?"
                " ORDER BY id DESC LIMIT ?",
                (conversation, before_id if before_id is not None else 2**62, limit),
            ).fetchall()
        return [Turn(*row) for row in reversed(rows)]

    def between(self, conversation: str, after_id: int, before_id: int) -> list[Turn]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_TURN_COLUMNS} FROM turns WHERE conversation = ? AND id > ? AND id < ? ORDER BY id",
                (conversation, after_id, before_id),
            ).fetchall()
        return [Turn(*row) for row in rows]

    def latest_summary(self, conversation: str) -> tuple[int, str] | None:
        """(through which turn id, summary text) of the newest summary, if any."""
        with self._lock:
            row = self._db.execute(
                "SELECT through_id, text FROM summaries WHERE conversation = ? ORDER BY id DESC LIMIT 1",
                (conversation,),
            ).fetchone()
        return (row[0], row[1]) if row else None

    def save_summary(self, conversation: str, through_id: int, text: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO summaries (conversation, through_id, text, created_at) VALUES (?, ?, ?, ?)",
                (conversation, through_id, text, time.time()),
            )

    def count(self, conversation: str) -> int:
        with self._lock:
            return self._db.execute(
                "SELECT COUNT(*) FROM turns WHERE conversation = ?", (conversation,)
            ).fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
