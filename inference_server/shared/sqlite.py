"""Opening the project's SQLite files: one way, with schema versions in PRAGMA user_version.

Every store opens its file with `open_database`: WAL (readers never wait for the writer),
synchronous=NORMAL (safe under WAL), a 5 s busy timeout, secure_delete (what is deleted is
overwritten with zeros, whatever SQLite's build default), and connections that worker threads
may share (the stores serialise their calls with a lock). After deleting words she asked to have
forgotten, a store calls `scrub`: the WAL still holds the pages as they were until a checkpoint.

A store's schema is a list of migrations; the file's `PRAGMA user_version` says how many of them
it has had. Files made before user_version was used say 0 but already hold their tables, so the
first migration must be `CREATE TABLE IF NOT EXISTS …`, and a later one that adds a column must
look at `PRAGMA table_info` first (`add_columns`).
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

Migration = str | Callable[[sqlite3.Connection], None]
"""A script of SQL statements, or a function given the connection (inside the transaction)."""


def open_database(
    path: Path,
    *,
    migrations: Sequence[Migration],
    wrap_error: Callable[[Exception], Exception],
) -> sqlite3.Connection:
    """Open (creating folder and file) and migrate; OSError and sqlite3.Error become `wrap_error(exc)`."""
    db: sqlite3.Connection | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("PRAGMA secure_delete=ON")
        migrate(db, migrations)
    except (OSError, sqlite3.Error) as exc:
        if db is not None:
            db.close()
        raise wrap_error(exc) from None
    return db


SQLITE_FULL = 13
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc` is a write that failed for want of room: SQLite's SQLITE_FULL ("database or
    disk is full": the disk, or the file's own page limit) or an OSError ENOSPC, EDQUOT or EFBIG."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return (code is not None and code & 0xFF == SQLITE_FULL) or "database or disk is full" in str(exc)
    return isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS


def open_fix(exc: BaseException, otherwise: str) -> str:
    """What to do when a store cannot be opened: free space when its disk is full, else `otherwise`."""
    if is_disk_full(exc):
        return "its disk is full: free space on it (see `df -h` and docs/reliability.md)"
    return otherwise


def scrub(db: sqlite3.Connection) -> bool:
    """Write the WAL into the file and empty it, so that deleted words are nowhere on disk.

    With secure_delete the file's freed space is zeroed; the WAL, until this, still holds the
    pages as they were before the delete. False when a reader kept the WAL from being emptied
    (the next scrub, or SQLite's own checkpoint after 1000 pages, finishes it).
    """
    busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return busy == 0


def migrate(db: sqlite3.Connection, migrations: Sequence[Migration]) -> None:
    """Run the migrations the file has not had yet, all in one transaction."""
    if db.execute("PRAGMA user_version").fetchone()[0] >= len(migrations):
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        # Read again under the write lock: another process may have migrated the file meanwhile.
        version = db.execute("PRAGMA user_version").fetchone()[0]
        for step in migrations[version:]:
            if callable(step):
                step(db)
            else:
                for statement in _statements(step):
                    db.execute(statement)
        db.execute(f"PRAGMA user_version = {len(migrations):d}")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def add_columns(table: str, columns: Mapping[str, str]) -> Callable[[sqlite3.Connection], None]:
    """A migration adding each column (name → its definition) that the table does not have yet."""

    def step(db: sqlite3.Connection) -> None:
        present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        for column, definition in columns.items():
            if column not in present:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")

    return step


def _statements(script: str) -> list[str]:
    """Split a script into statements (executescript would commit the open transaction)."""
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if pending.strip():
                statements.append(pending.strip())
            pending = ""
    if pending.strip():
        statements.append(pending.strip())
    return statements
