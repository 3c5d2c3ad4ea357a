"""Memories and sessions in SQLite: the same file (and lock) as the conversation history.

A memory is a short sentence from 차차's side with its importance, channel, the turns it came
from and, for an insight, the memories it rests on (`reason_ids`). It is `buffer` while its
session is open (the session's memories always go into the prompt) and `long` after.
A session is a stretch of one conversation without a long pause; reflection runs on it once it
has ended.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import numpy as np

from inference_server.memory.embed import DIM
from inference_server.shared.text import mend_text
from inference_server.store import ConversationStore

Kind = Literal["turn", "observation", "insight"]
State = Literal["buffer", "long"]

_COLUMNS = (
    "id, conversation, kind, text, importance, channel, turn_ids, reason_ids, session_id, state, created_at,"
    " cues"
)
_SESSION_COLUMNS = (
    "id, conversation, started_at, last_at, first_turn, last_turn, closed_at, reflected_at, attempts,"
    " next_try_at, outcome"
)


@dataclass(frozen=True)
class Memory:
    id: int
    conversation: str
    kind: Kind  # turn: her words before reflection; observation; insight
    text: str
    importance: float  # 0–1
    channel: str  # doll | telegram | cli | reflection | developer
    turn_ids: tuple[int, ...]
    reason_ids: tuple[int, ...]
    session_id: int | None
    state: State
    created_at: float
    cues: tuple[str, ...] = ()  # words of the situations it should come to mind in (from reflection)

    @classmethod
    def from_row(cls, row: tuple) -> Memory:
        values = list(row)
        for position in (6, 7, 11):
            values[position] = tuple(json.loads(values[position]))
        return cls(*values)


@dataclass(frozen=True)
class Session:
    id: int
    conversation: str
    started_at: float
    last_at: float
    first_turn: int
    last_turn: int
    closed_at: float | None
    reflected_at: float | None
    attempts: int
    next_try_at: float
    outcome: str | None


@dataclass(frozen=True)
class NewMemory:
    kind: Kind
    text: str
    importance: float
    channel: str
    turn_ids: tuple[int, ...] = ()
    reason_ids: tuple[int, ...] = ()
    cues: tuple[str, ...] = ()


class MemoryStore:
    def __init__(self, conversations: ConversationStore) -> None:
        self.conversations = conversations
        self._db, self._lock = conversations.database

    # -- memories --------------------------------------------------------------------------------

    def add(
        self,
        conversation: str,
        memory: NewMemory,
        *,
        vector: np.ndarray,
        state: State,
        session_id: int | None,
        at: float,
    ) -> Memory:
        text, cues = mend_text(memory.text), tuple(mend_text(c) for c in memory.cues)
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO memories (conversation, kind, text, importance, channel, turn_ids, reason_ids,"
                " session_id, state, created_at, embedding, cues)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    conversation,
                    memory.kind,
                    text,
                    float(memory.importance),
                    memory.channel,
                    json.dumps(list(memory.turn_ids)),
                    json.dumps(list(memory.reason_ids)),
                    session_id,
                    state,
                    at,
                    np.asarray(vector, dtype=np.float32).tobytes(),
                    json.dumps(list(cues), ensure_ascii=False),
                ),
            )
            memory_id = cursor.lastrowid
        return Memory(
            memory_id,
            conversation,
            memory.kind,
            text,
            float(memory.importance),
            memory.channel,
            tuple(memory.turn_ids),
            tuple(memory.reason_ids),
            session_id,
            state,
            at,
            cues,
        )

    def get(self, memory_id: int) -> Memory | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM memories WHERE id = ?", (memory_id,)).fetchone()
        return Memory.from_row(row) if row else None

    def many(self, ids: list[int]) -> list[Memory]:
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM memories WHERE id IN ({marks})", ids).fetchall()
        return [Memory.from_row(row) for row in rows]

    def all(self, conversation: str, *, state: State | None = None) -> list[Memory]:
        """Oldest first."""
        query = f"SELECT {_COLUMNS} FROM memories WHERE conversation = ?"
        params: list = [conversation]
        if state is not None:
            query += " AND state = ?"
            params.append(state)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY created_at, id", params).fetchall()
        return [Memory.from_row(row) for row in rows]

    def vectors(self, conversation: str) -> list[tuple[Memory, np.ndarray | None]]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS}, embedding FROM memories WHERE conversation = ? ORDER BY id",
                (conversation,),
            ).fetchall()
        out = []
        for row in rows:
            blob = row[-1]
            vector = np.frombuffer(blob, dtype=np.float32) if blob and len(blob) == DIM * 4 else None
            out.append((Memory.from_row(row[:-1]), vector))
        return out

    def of_session(self, session_id: int) -> list[Memory]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM memories WHERE session_id = ? ORDER BY id", (session_id,)
            ).fetchall()
        return [Memory.from_row(row) for row in rows]

    def delete(self, ids: list[int]) -> int:
        if not ids:
            return 0
        marks = ",".join("?" * len(ids))
        with self._lock:
            return self._db.execute(f"DELETE FROM memories WHERE id IN ({marks})", ids).rowcount

    def delete_all(self, conversation: str) -> list[int]:
        with self._lock:
            ids = [
                r[0]
                for r in self._db.execute("SELECT id FROM memories WHERE conversation = ?", (conversation,))
            ]
            self._db.execute("DELETE FROM memories WHERE conversation = ?", (conversation,))
            self._db.execute("DELETE FROM memory_sessions WHERE conversation = ?", (conversation,))
        return ids

    def settle_session(self, session_id: int) -> None:
        """Everything of an ended session becomes long-term memory."""
        with self._lock:
            self._db.execute("UPDATE memories SET state = 'long' WHERE session_id = ?", (session_id,))

    def set_importance(self, memory_id: int, importance: float) -> None:
        with self._lock:
            self._db.execute("UPDATE memories SET importance = ? WHERE id = ?", (importance, memory_id))

    def count(self, conversation: str | None = None) -> int:
        with self._lock:
            if conversation is None:
                return self._db.execute("SELECT COUNT(*) FROM memories").fetchone()[0]
            return self._db.execute(
                "SELECT COUNT(*) FROM memories WHERE conversation = ?", (conversation,)
            ).fetchone()[0]

    def status(self) -> tuple[int, int, str | None]:
        """(memories, ended sessions waiting for reflection, the newest session outcome)."""
        with self._lock:
            memories = self._db.execute("SELECT COUNT(*) FROM memories").fetchone()[0]
            waiting = self._db.execute(
                "SELECT COUNT(*) FROM memory_sessions WHERE closed_at IS NOT NULL AND reflected_at IS NULL"
            ).fetchone()[0]
            row = self._db.execute(
                "SELECT outcome FROM memory_sessions WHERE outcome IS NOT NULL ORDER BY id DESC LIMIT 1"
            ).fetchone()
        return memories, waiting, row[0] if row else None

    def conversations_with_memories(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT DISTINCT conversation FROM memories")]

    # -- sessions --------------------------------------------------------------------------------

    def open_session(self, conversation: str) -> Session | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_SESSION_COLUMNS} FROM memory_sessions WHERE conversation = ? AND closed_at IS NULL"
                " ORDER BY id DESC LIMIT 1",
                (conversation,),
            ).fetchone()
        return Session(*row) if row else None

    def open_sessions(self) -> list[Session]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_SESSION_COLUMNS} FROM memory_sessions WHERE closed_at IS NULL ORDER BY id"
            ).fetchall()
        return [Session(*row) for row in rows]

    def start_session(self, conversation: str, turn_id: int, at: float) -> Session:
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO memory_sessions (conversation, started_at, last_at, first_turn, last_turn)"
                " VALUES (?, ?, ?, ?, ?)",
                (conversation, at, at, turn_id, turn_id),
            )
            return Session(cursor.lastrowid, conversation, at, at, turn_id, turn_id, None, None, 0, 0.0, None)

    def extend_session(self, session_id: int, turn_id: int, at: float) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE memory_sessions SET last_at = ?, last_turn = MAX(last_turn, ?) WHERE id = ?",
                (at, turn_id, session_id),
            )

    def close_session(self, session_id: int, at: float) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE memory_sessions SET closed_at = ? WHERE id = ? AND closed_at IS NULL",
                (at, session_id),
            )
            self._db.execute("UPDATE memories SET state = 'long' WHERE session_id = ?", (session_id,))

    def unreflected(self, now: float, *, due_only: bool = True) -> list[Session]:
        """Ended sessions still waiting for reflection, oldest first (those due by `now`)."""
        query = (
            f"SELECT {_SESSION_COLUMNS} FROM memory_sessions"
            " WHERE closed_at IS NOT NULL AND reflected_at IS NULL"
        )
        params: tuple = ()
        if due_only:
            query += " AND next_try_at <= ?"
            params = (now,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY id", params).fetchall()
        return [Session(*row) for row in rows]

    def postpone(self, session_id: int, until: float, outcome: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE memory_sessions SET next_try_at = ?, outcome = ? WHERE id = ?",
                (until, mend_text(outcome), session_id),
            )

    def attempted(self, session_id: int) -> int:
        with self._lock:
            self._db.execute("UPDATE memory_sessions SET attempts = attempts + 1 WHERE id = ?", (session_id,))
            return self._db.execute(
                "SELECT attempts FROM memory_sessions WHERE id = ?", (session_id,)
            ).fetchone()[0]

    def reflected(self, session_id: int, at: float, outcome: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE memory_sessions SET reflected_at = ?, outcome = ? WHERE id = ?",
                (at, mend_text(outcome), session_id),
            )
