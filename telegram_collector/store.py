"""The collector: every message of the allowed chats in SQLite (WAL), from the bot and from imports.

This is 차차's raw material for the offline phrasebook and for fine-tuning. It is separate from
the server's conversation history, which holds what the model saw; this holds what was said,
with who said it, when, and where it came from.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from inference_server.shared.sqlite import open_database, open_fix, scrub
from inference_server.shared.text import holds_words, mend_text, said_digest
from telegram_collector.errors import TelegramError

Speaker = Literal["she", "he", "other"]
Source = Literal["bot", "import"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id      INTEGER NOT NULL,
    message_id   INTEGER NOT NULL,
    source       TEXT    NOT NULL CHECK (source IN ('bot', 'import')),
    sender_id    INTEGER,
    sender_name  TEXT    NOT NULL DEFAULT '',
    role         TEXT    NOT NULL CHECK (role IN ('she', 'he', 'other')),
    date         REAL    NOT NULL,
    text         TEXT    NOT NULL DEFAULT '',
    reply_to     INTEGER,
    kind         TEXT    NOT NULL DEFAULT 'text',
    edited       INTEGER NOT NULL DEFAULT 0,
    backend      TEXT,
    UNIQUE (chat_id, message_id, source)
);
CREATE INDEX IF NOT EXISTS messages_by_chat ON messages (chat_id, date, message_id);
"""
# What the server forgot at her request (GET /v1/forgets): digests, never the words. Kept so
# that a message forgotten never comes back, from the bot or from a later import.
_FORGETS = """
CREATE TABLE IF NOT EXISTS forgets (
    server_id    INTEGER PRIMARY KEY,
    conversation TEXT    NOT NULL,
    created_at   REAL    NOT NULL,
    said         TEXT    NOT NULL DEFAULT '[]',
    words        TEXT    NOT NULL DEFAULT '[]'
);
"""
# PRAGMA user_version counts these; files from before it was used say 0 and already hold the table.
MIGRATIONS = (_SCHEMA, _FORGETS)

_COLUMNS = (
    "chat_id, message_id, source, sender_id, sender_name, role, date, text, reply_to, kind, edited, backend"
)


@dataclass(frozen=True)
class CollectedMessage:
    """One message as the collector keeps it."""

    chat_id: int
    message_id: int
    source: Source
    sender_id: int | None
    sender_name: str
    role: Speaker
    """'she' (진주), 'he' (차차, also the bot's replies) or 'other' (e.g. the developer)."""
    date: float
    """Unix time (seconds)."""
    text: str
    """What was said; for a voice note, what was heard."""
    reply_to: int | None = None
    kind: str = "text"
    """'text', 'voice', or the media type of a captioned photo, video, … ."""
    edited: bool = False
    backend: str | None = None
    """For the bot's replies: which brain made it (gemini, phrasebook, none)."""


@dataclass(frozen=True)
class AddResult:
    added: int
    updated: int
    unchanged: int
    forgotten: int = 0
    """Messages not kept because she asked 차차 to forget them (the forget log)."""


@dataclass(frozen=True)
class Forget:
    """One forgetting of the server's log (inference_server.api.models.ForgetEntry)."""

    server_id: int
    conversation: str
    created_at: float
    said: tuple[str, ...] = ()
    words: tuple[tuple[int, str], ...] = ()

    def covers(self, text: str, date: float, digest: str) -> bool:
        """Whether a message (its text, date and `said_digest`) is one this forgetting erases: the
        same words as an erased turn, or, said before it, words of the forgotten topic."""
        return digest in self.said or (date <= self.created_at and holds_words(text, list(self.words)))


def _open_error(path: Path, exc: Exception) -> TelegramError:
    return TelegramError(
        f"cannot open the Telegram collector database {path}: {exc} — "
        + open_fix(exc, "set telegram.database (or server.data_dir) to a writable place")
    )


class CollectorStore:
    """One SQLite file; calls are short and serialised, so worker threads may share it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._db = open_database(
            self.path, migrations=MIGRATIONS, wrap_error=lambda exc: _open_error(self.path, exc)
        )
        self._lock = threading.Lock()

    def add(self, message: CollectedMessage) -> bool:
        """Keep one message; False when it was already there (same chat, id and source)."""
        return self.add_many([message]).added == 1

    def add_many(self, messages: Iterable[CollectedMessage]) -> AddResult:
        """Keep many messages in one transaction; a message already there gets its newer text."""
        added = updated = unchanged = forgotten = 0
        with self._lock:
            forgets = self._forgets()
            answered: tuple | None = None  # as in apply_forgets: his answer goes with her words
            self._db.execute("BEGIN")
            try:
                for m in messages:
                    text = mend_text(m.text)
                    if (
                        forgets
                        and text.strip()
                        and any(f.covers(text, m.date, said_digest(text)) for f in forgets)
                    ):
                        forgotten += 1
                        answered = (m.chat_id, m.source) if m.role == "she" else answered
                        continue
                    if m.role == "he" and answered == (m.chat_id, m.source):
                        forgotten += 1
                        continue
                    answered = None
                    # Only the same message already there is passed over: a row that breaks any
                    # other rule (a NULL date, …) is an error, never counted as "already there".
                    cursor = self._db.execute(
                        f"INSERT INTO messages ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
                        " ON CONFLICT (chat_id, message_id, source) DO NOTHING",
                        (
                            m.chat_id,
                            m.message_id,
                            m.source,
                            m.sender_id,
                            mend_text(m.sender_name),
                            m.role,
                            m.date,
                            text,
                            m.reply_to,
                            mend_text(m.kind),
                            int(m.edited),
                            m.backend,
                        ),
                    )
                    if cursor.rowcount:
                        added += 1
                        continue
                    cursor = self._db.execute(
                        "UPDATE messages SET text = ?, edited = 1"
                        " WHERE chat_id = ? AND message_id = ? AND source = ? AND text != ?",
                        (text, m.chat_id, m.message_id, m.source, text),
                    )
                    if cursor.rowcount:
                        updated += 1
                    else:
                        unchanged += 1
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return AddResult(added, updated, unchanged, forgotten)

    def edit(self, chat_id: int, message_id: int, text: str, *, source: Source = "bot") -> bool:
        """Replace a message's text with its edited version; False if it was never collected."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE messages SET text = ?, edited = 1"
                " WHERE chat_id = ? AND message_id = ? AND source = ?",
                (mend_text(text), chat_id, message_id, source),
            )
        return cursor.rowcount > 0

    def recent(self, chat_id: int, limit: int = 10) -> list[CollectedMessage]:
        """The last ``limit`` messages of a chat (bot and imports), oldest first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE chat_id = ?"
                " ORDER BY date DESC, message_id DESC, id DESC LIMIT ?",
                (chat_id, limit),
            ).fetchall()
        return [_message(row) for row in reversed(rows)]

    def messages(self) -> Iterator[CollectedMessage]:
        """Every message, chat by chat and source by source, in the order they were said."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM messages ORDER BY chat_id, source, date, message_id, id"
            ).fetchall()
        for row in rows:
            yield _message(row)

    def count(self, chat_id: int | None = None, *, source: Source | None = None) -> int:
        query, params = "SELECT COUNT(*) FROM messages WHERE 1=1", []
        if chat_id is not None:
            query += " AND chat_id = ?"
            params.append(chat_id)
        if source is not None:
            query += " AND source = ?"
            params.append(source)
        with self._lock:
            return self._db.execute(query, params).fetchone()[0]

    def clear_chat(self, chat_id: int, *, source: Source = "bot") -> int:
        """Forget what was collected from one chat (by default only what the bot collected)."""
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM messages WHERE chat_id = ? AND source = ?", (chat_id, source)
            )
            scrub(self._db)
        return cursor.rowcount

    # --- forgetting ----------------------------------------------------------------------------

    def _forgets(self) -> list[Forget]:
        rows = self._db.execute(
            "SELECT server_id, conversation, created_at, said, words FROM forgets ORDER BY server_id"
        ).fetchall()
        return [
            Forget(i, c, at, tuple(json.loads(said)), tuple((int(n), str(d)) for n, d in json.loads(words)))
            for i, c, at, said, words in rows
        ]

    def forgotten_through(self) -> int:
        """The newest forgetting of the server's log this store has applied (0: none)."""
        with self._lock:
            return self._db.execute("SELECT COALESCE(MAX(server_id), 0) FROM forgets").fetchone()[0]

    def apply_forgets(self, forgets: Iterable[Forget]) -> int:
        """Keep these forgettings and delete every message they cover, in every chat and from
        every source (the bot and imports), with his messages answering her forgotten ones; the
        file is scrubbed after. Returns messages deleted."""
        new = list(forgets)
        if not new:
            return 0
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for f in new:
                    self._db.execute(
                        "INSERT OR IGNORE INTO forgets (server_id, conversation, created_at, said, words)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (f.server_id, f.conversation, f.created_at, json.dumps(f.said), json.dumps(f.words)),
                    )
                rows = self._db.execute(
                    "SELECT id, chat_id, source, role, text, date FROM messages"
                    " ORDER BY chat_id, source, date, message_id, id"
                ).fetchall()
                doomed = []
                answered: tuple | None = None  # (chat, source) where her forgotten words were last
                for row_id, chat_id, source, role, text, date in rows:
                    if text.strip() and any(f.covers(text, date, said_digest(text)) for f in new):
                        doomed.append(row_id)
                        answered = (chat_id, source) if role == "she" else answered
                    elif role == "he" and answered == (chat_id, source):
                        doomed.append(row_id)  # his answer to them goes with them
                    else:
                        answered = None
                for start in range(0, len(doomed), 500):
                    chunk = doomed[start : start + 500]
                    self._db.execute(
                        f"DELETE FROM messages WHERE id IN ({','.join('?' * len(chunk))})", chunk
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            scrub(self._db)
        return len(doomed)

    def delete(self, chat_id: int, message_id: int, *, source: Source = "bot") -> bool:
        """Delete one message (her request to forget, which is never kept); the file is scrubbed."""
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM messages WHERE chat_id = ? AND message_id = ? AND source = ?",
                (chat_id, message_id, source),
            )
            scrub(self._db)
        return cursor.rowcount > 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> CollectorStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _message(row: tuple) -> CollectedMessage:
    chat_id, message_id, source, sender_id, name, role, date, text, reply_to, kind, edited, backend = row
    return CollectedMessage(
        chat_id, message_id, source, sender_id, name, role, date, text, reply_to, kind, bool(edited), backend
    )
