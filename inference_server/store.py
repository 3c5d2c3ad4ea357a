"""Conversation history in SQLite (WAL), shared by the doll and Telegram."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from inference_server.errors import InferenceError
from inference_server.shared.sqlite import add_columns, open_database, open_fix, scrub
from inference_server.shared.text import mend_text, said_digest

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
# Long-term memory lives in the same file (inference_server/memory/store.py reads and writes it).
_MEMORY_SCHEMA = """
CREATE TABLE IF NOT EXISTS memories (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation TEXT    NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('turn', 'observation', 'insight')),
    text         TEXT    NOT NULL,
    importance   REAL    NOT NULL,
    channel      TEXT    NOT NULL,
    turn_ids     TEXT    NOT NULL DEFAULT '[]',
    reason_ids   TEXT    NOT NULL DEFAULT '[]',
    session_id   INTEGER,
    state        TEXT    NOT NULL CHECK (state IN ('buffer', 'long')),
    created_at   REAL    NOT NULL,
    embedding    BLOB,
    cues         TEXT    NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS memories_by_conversation ON memories (conversation, id);
CREATE INDEX IF NOT EXISTS memories_by_session ON memories (session_id);
CREATE TABLE IF NOT EXISTS memory_sessions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation TEXT    NOT NULL,
    started_at   REAL    NOT NULL,
    last_at      REAL    NOT NULL,
    first_turn   INTEGER NOT NULL,
    last_turn    INTEGER NOT NULL,
    closed_at    REAL,
    reflected_at REAL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_try_at  REAL    NOT NULL DEFAULT 0,
    outcome      TEXT
);
CREATE INDEX IF NOT EXISTS memory_sessions_by_conversation ON memory_sessions (conversation, id);
"""
# PRAGMA user_version counts these; files from before it was used say 0 and may lack the columns.
MIGRATIONS = (
    _SCHEMA,
    add_columns("turns", _ADDED_COLUMNS),
    _MEMORY_SCHEMA,
    add_columns("turns", {"forgotten": "INTEGER NOT NULL DEFAULT 0"}),
    # What was forgotten, for the other stores that keep her words (the Telegram collector):
    # digests of the erased turns and of a topic's words, never the words (docs/memory.md).
    """
CREATE TABLE IF NOT EXISTS forgets (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation TEXT    NOT NULL,
    created_at   REAL    NOT NULL,
    said         TEXT    NOT NULL DEFAULT '[]',
    words        TEXT    NOT NULL DEFAULT '[]'
);
""",
)
_TURN_COLUMNS = "id, conversation, role, text, channel, backend, created_at, source, heard"
_REMEMBERED = "forgotten = 0"


@dataclass(frozen=True)
class Turn:
    id: int
    conversation: str
    role: Role
    text: str  # as typed, or as speech recognition heard it (source "stt")
    channel: str
    backend: str | None
    created_at: float
    # hers: text | stt | forget (her request to forget, stored as a stand-in);
    # his: text (whole) | cut (what he had said when the reply was cut off: a crash, a hang-up)
    #      | interrupted (she stopped him: only the sentences she heard)
    source: str = "text"
    heard: str | None = None  # in audio mode: what the model itself heard her say

    @property
    def for_model(self) -> str:
        """What the model is shown of this turn: its own hearing beats speech recognition's, and
        a reply of his that was cut off ends with "…"."""
        if self.role == "model" and self.source in ("cut", "interrupted"):
            return f"{self.text} …".lstrip()
        return self.heard or self.text


def _open_error(path: Path, exc: Exception) -> InferenceError:
    return InferenceError(
        f"cannot open the conversation database {path}: {exc} — "
        + open_fix(exc, "set server.data_dir to a writable folder")
    )


class UnknownTurn(InferenceError):
    """No turn with that id in that conversation."""


class NotHerTurn(InferenceError):
    """The turn is 차차's reply: only her turns can be corrected."""


class NotHisTurn(InferenceError):
    """The turn is hers, or his words do not begin with what she says she heard."""


@dataclass(frozen=True)
class ForgetRecord:
    """One forgetting, as other stores apply it: digests only (inference_server.shared.text)."""

    id: int
    conversation: str
    created_at: float
    said: tuple[str, ...]
    """`said_digest` of every erased turn's words."""
    words: tuple[tuple[int, str], ...]
    """(length, `word_digest`) of each word of a forgotten topic."""


class ConversationStore:
    """One SQLite file; calls are short and serialised, so worker threads may share it.

    `clock` stamps turns and summaries (epoch seconds); the server gives it a
    :class:`~inference_server.shared.clock.WallClock`, which never runs backwards.
    """

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock
        self._db = open_database(path, migrations=MIGRATIONS, wrap_error=lambda exc: _open_error(path, exc))
        self._lock = threading.Lock()

    def newest(self) -> float | None:
        """The newest stamp the file holds (turns, memories), for the clock's floor."""
        with self._lock:
            return self._db.execute(
                "SELECT MAX(at) FROM (SELECT MAX(created_at) AS at FROM turns"
                " UNION ALL SELECT MAX(created_at) FROM memories)"
            ).fetchone()[0]

    @property
    def database(self) -> tuple[sqlite3.Connection, threading.Lock]:
        """The connection and the lock that serialises its use (for the memory store in the same file)."""
        return self._db, self._lock

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
                (conversation, role, mend_text(text), channel, backend, self.clock(), source),
            )
            return cursor.lastrowid

    def extend_reply(self, turn_id: int, text: str) -> None:
        """His reply so far, as it grows sentence by sentence (still marked cut)."""
        with self._lock:
            self._db.execute(
                "UPDATE turns SET text = ? WHERE id = ? AND role = 'model' AND source != 'interrupted'",
                (mend_text(text), turn_id),
            )

    def finish_reply(self, turn_id: int, text: str, *, backend: str) -> None:
        """His reply is whole: its final text, no longer marked cut (unless she interrupted it:
        then what she heard stays)."""
        with self._lock:
            self._db.execute(
                "UPDATE turns SET text = ?, backend = ?, source = 'text'"
                " WHERE id = ? AND role = 'model' AND source != 'interrupted'",
                (mend_text(text), backend, turn_id),
            )

    def _turn(self, turn_id: int, conversation: str, use: str) -> Turn:
        """One turn of the conversation (the caller holds the lock); UnknownTurn says what to use."""
        row = self._db.execute(
            f"SELECT {_TURN_COLUMNS} FROM turns WHERE id = ? AND conversation = ?", (turn_id, conversation)
        ).fetchone()
        if row is None:
            raise UnknownTurn(
                f"conversation {conversation!r} has no turn {turn_id}: use {use} in this conversation"
            )
        return Turn(*row)

    def interrupt_reply(self, turn_id: int, conversation: str, heard: list[str]) -> Turn:
        """She stopped his reply `turn_id` after hearing the sentences `heard`: only those stay,
        marked `interrupted`, and the rest of the reply, even if it is still being written, is
        not stored. Raises UnknownTurn when the conversation has no such turn, NotHisTurn when it
        is hers or his words do not begin with `heard`."""
        text = mend_text(" ".join(sentence.strip() for sentence in heard))
        with self._lock:
            turn = self._turn(turn_id, conversation, "the reply_id of a sentence of a reply")
            if turn.role != "model":
                raise NotHisTurn(f"turn {turn_id} of conversation {conversation!r} is hers, not 차차's reply")
            if not turn.text.startswith(text):
                raise NotHisTurn(
                    f"turn {turn_id} of conversation {conversation!r} does not begin with the "
                    f"{len(heard)} sentence(s) sent: send the sentences as the server sent them"
                )
            self._db.execute(
                "UPDATE turns SET text = ?, source = 'interrupted' WHERE id = ?", (text, turn_id)
            )
        return replace(turn, text=text, source="interrupted")

    def set_heard(self, turn_id: int, heard: str) -> None:
        with self._lock:
            self._db.execute("UPDATE turns SET heard = ? WHERE id = ?", (mend_text(heard), turn_id))

    def correct(self, turn_id: int, conversation: str, text: str) -> Turn:
        """Replace the text of her turn `turn_id` of `conversation`, e.g. with a better transcript.

        What the model itself heard (`heard`, audio mode) stays, and still goes to the model first.
        Raises UnknownTurn when the conversation has no such turn, NotHerTurn for 차차's own.
        """
        with self._lock:
            turn = self._turn(turn_id, conversation, "the turn_id of the final event of a reply")
            if turn.role != "user":
                raise NotHerTurn(
                    f"turn {turn_id} of conversation {conversation!r} is 차차's reply, not hers: "
                    "only her turns (role user) can be corrected"
                )
            if turn.source == "forget":  # her request to forget keeps its neutral stand-in
                return turn
            text = mend_text(text)
            self._db.execute("UPDATE turns SET text = ? WHERE id = ?", (text, turn_id))
        return replace(turn, text=text)

    def recent(self, conversation: str, limit: int, *, before_id: int | None = None) -> list[Turn]:
        """The last `limit` turns of a conversation (before `before_id` if given), oldest first."""
        if limit <= 0:
            return []
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_TURN_COLUMNS} FROM turns WHERE conversation = ? AND id < ? AND {_REMEMBERED}"
                " ORDER BY id DESC LIMIT ?",
                (conversation, before_id if before_id is not None else 2**62, limit),
            ).fetchall()
        return [Turn(*row) for row in reversed(rows)]

    def between(self, conversation: str, after_id: int, before_id: int) -> list[Turn]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_TURN_COLUMNS} FROM turns"
                f" WHERE conversation = ? AND id > ? AND id < ? AND {_REMEMBERED} ORDER BY id",
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
                (conversation, through_id, mend_text(text), self.clock()),
            )

    def forget_turns(self, conversation: str, turn_ids: list[int]) -> list[str]:
        """Keep these turns out of every prompt from now on, and drop the summaries that may hold them.

        The turns stay as rows (the history's order is kept) but their words are erased: what
        she asked to be forgotten must not come back through the history or a summary. Returns
        the `said_digest` of every text erased (for the forget log).
        """
        if not turn_ids:
            return []
        marks = ",".join("?" * len(turn_ids))
        with self._lock:
            rows = self._db.execute(
                f"SELECT text, heard FROM turns WHERE conversation = ? AND id IN ({marks})",
                (conversation, *turn_ids),
            ).fetchall()
            said = sorted({said_digest(t) for row in rows for t in row if t and t.strip()})
            self._db.execute(
                f"UPDATE turns SET forgotten = 1, text = '', heard = NULL"
                f" WHERE conversation = ? AND id IN ({marks})",
                (conversation, *turn_ids),
            )
            self._db.execute(
                "DELETE FROM summaries WHERE conversation = ? AND through_id >= ?",
                (conversation, min(turn_ids)),
            )
        return said

    def log_forget(self, conversation: str, said: list[str], words: list[tuple[int, str]]) -> int | None:
        """Keep the digests of one forgetting for the other stores; its id (None if nothing to log)."""
        if not said and not words:
            return None
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO forgets (conversation, created_at, said, words) VALUES (?, ?, ?, ?)",
                (conversation, self.clock(), json.dumps(sorted(set(said))), json.dumps(words)),
            )
            return cursor.lastrowid

    def forgets(self, after: int = 0, *, limit: int = 1000) -> list[ForgetRecord]:
        """The forget log after id `after`, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, conversation, created_at, said, words FROM forgets WHERE id > ?"
                " ORDER BY id LIMIT ?",
                (after, limit),
            ).fetchall()
        return [
            ForgetRecord(i, c, at, tuple(json.loads(said)), tuple((int(n), d) for n, d in json.loads(words)))
            for i, c, at, said, words in rows
        ]

    def scrub(self) -> bool:
        """After a forget: empty the WAL, so that the erased words are nowhere in the files."""
        with self._lock:
            return scrub(self._db)

    def replies_to(self, conversation: str, turn_ids: list[int]) -> list[int]:
        """The ids of 차차's replies that came right after each of these turns of hers."""
        replies = []
        with self._lock:
            for turn_id in turn_ids:
                row = self._db.execute(
                    "SELECT id, role FROM turns WHERE conversation = ? AND id > ? ORDER BY id LIMIT 1",
                    (conversation, turn_id),
                ).fetchone()
                if row and row[1] == "model":
                    replies.append(row[0])
        return replies

    def mentioning(self, conversation: str, words: list[str], *, last: int) -> list[int]:
        """The ids among the last `last` remembered turns whose text holds any of `words`."""
        if not words:
            return []
        with self._lock:
            rows = self._db.execute(
                f"SELECT id, text, heard FROM turns WHERE conversation = ? AND {_REMEMBERED}"
                " ORDER BY id DESC LIMIT ?",
                (conversation, last),
            ).fetchall()
        return [i for i, text, heard in rows if any(w in text or (heard and w in heard) for w in words)]

    def delete_conversation(self, conversation: str) -> tuple[int, int]:
        """Delete a conversation's whole history: (turns deleted, summaries deleted).

        Long-term memories are not touched (`chacha memory forget --all` deletes those).
        """
        with self._lock:
            turns = self._db.execute("DELETE FROM turns WHERE conversation = ?", (conversation,)).rowcount
            summaries = self._db.execute(
                "DELETE FROM summaries WHERE conversation = ?", (conversation,)
            ).rowcount
            scrub(self._db)
        return turns, summaries

    def count(self, conversation: str) -> int:
        with self._lock:
            return self._db.execute(
                "SELECT COUNT(*) FROM turns WHERE conversation = ?", (conversation,)
            ).fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
