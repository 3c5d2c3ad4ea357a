"""The disk of the data folder: a full SD card is a known state, said once, not a traceback per request.

The server keeps everything it writes (history, memories, the quota ledger) under
`server.data_dir`. When the disk there has less than `server.min_free_mb` free, or a write has
just failed because there was no room (SQLite's "database or disk is full", ENOSPC), the
`DiskGuard` says the disk is full: turns are answered with one honest sentence and store nothing,
writing endpoints answer 507, health says "degraded". The log says it once when the disk becomes
full and once when it has room again.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from inference_server.api.models import DiskStatus
from inference_server.shared.sqlite import is_disk_full

if TYPE_CHECKING:
    from inference_server.store import ConversationStore

_LOGGER = logging.getLogger(__name__)

MB = 2**20
DEFAULT_MIN_FREE_MB = 50.0
"""server.min_free_mb's default: a day of talking takes far less (docs/reliability.md)."""
ROOM_PROBE_BYTES = 8192
"""What the room test asks the conversation database for: a few pages, never kept."""


def _describe(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)) or type(exc).__name__


def free_bytes(folder: Path) -> int:
    """Bytes free for an ordinary user on the disk of `folder` (or of the nearest folder above it
    that exists)."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def megabytes(count: int) -> str:
    return f"{count / MB:.1f} MB"


def store_has_room(store: ConversationStore) -> None:
    """Raise the error SQLite gives when the conversation database cannot grow by a few pages now
    (its own page limit, or the disk when it must spill); nothing is kept."""
    db, lock = store.database
    with lock:
        db.execute("BEGIN")
        try:
            db.execute("CREATE TABLE room_probe (filler BLOB)")
            db.execute("INSERT INTO room_probe VALUES (zeroblob(?))", (ROOM_PROBE_BYTES,))
        finally:
            if db.in_transaction:  # SQLITE_FULL may have rolled the transaction back already
                db.execute("ROLLBACK")


def drop_turn(store: ConversationStore, turn_id: int) -> bool:
    """Take back her turn `turn_id` that has no reply, because the reply could not be stored; False
    when even that could not be written."""
    db, lock = store.database
    try:
        with lock:
            db.execute("DELETE FROM turns WHERE id = ? AND role = 'user'", (turn_id,))
    except (sqlite3.Error, OSError) as exc:
        if not is_disk_full(exc):
            raise
        return False
    return True


class DiskGuard:
    """Whether the data folder's disk has room: its free space against `min_free_mb`, and the last
    write that failed for want of room (until a write, or the room test, succeeds again).

    `probe` gives the free bytes of a folder (default: `free_bytes`, from the file system); tests
    give their own. `attach` gives it the conversation store, whose room test (`store_has_room`)
    tells, after a failed write, when there is room again.
    """

    def __init__(
        self,
        folder: Path,
        min_free_mb: float = DEFAULT_MIN_FREE_MB,
        *,
        probe: Callable[[Path], int] = free_bytes,
    ) -> None:
        self.folder = folder
        self.min_free_bytes = round(min_free_mb * MB)
        self._probe = probe
        self._room: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._failed: str | None = None  # the last write's error, while no write has succeeded since
        self._full: bool | None = None  # as the log last said it (None: not looked yet)

    def attach(self, store: ConversationStore) -> None:
        """Test the store for room (`store_has_room`) before saying a failed write is over."""
        self._room = lambda: store_has_room(store)

    def _free(self) -> int:
        try:
            return self._probe(self.folder)
        except OSError:
            return -1  # unknown: the writes themselves will tell

    def check(self) -> DiskStatus:
        """The disk now (a file-system call; after a failed write, also the room test)."""
        free = self._free()
        if self._failed is not None and self._room is not None and (free < 0 or free >= self.min_free_bytes):
            try:
                self._room()
            except (sqlite3.Error, OSError):
                pass  # still no room (or no telling: a locked file): the next check tries again
            else:
                with self._lock:
                    self._failed = None
        return self._settle(free)

    def failed(self, exc: BaseException) -> DiskStatus:
        """A write failed for want of room (`is_disk_full(exc)`): the disk is full until one succeeds."""
        with self._lock:
            self._failed = _describe(exc)
        return self._settle(self._free())

    def succeeded(self) -> None:
        """A write went through: a failed one before it is over."""
        if self._failed is None:
            return
        with self._lock:
            self._failed = None
        self._settle(self._free())

    def _settle(self, free: int) -> DiskStatus:
        low = 0 <= free < self.min_free_bytes
        with self._lock:
            failed = self._failed
            reason = None
            if low:
                reason = (
                    f"{megabytes(free)} free on the disk of {self.folder}, below server.min_free_mb "
                    f"({megabytes(self.min_free_bytes)})"
                )
            elif failed is not None:
                room = "free space unknown" if free < 0 else f"{megabytes(free)} free"
                reason = f"writing to {self.folder} failed: {failed} ({room})"
            full = reason is not None
            was, self._full = self._full, full
        if full and was is not True:
            _LOGGER.warning(
                "the data folder's disk is full: %s. Nothing new is stored and 차차 says his notebook is"
                " full until there is room: free space under %s or elsewhere on its disk",
                reason,
                self.folder,
            )
        elif not full and was is True:
            room = "free space unknown" if free < 0 else f"{megabytes(free)} free"
            _LOGGER.warning("the data folder's disk has room again (%s): turns are stored again", room)
        return DiskStatus(
            path=str(self.folder),
            free_bytes=free,
            min_free_bytes=self.min_free_bytes,
            full=full,
            reason=reason,
        )

    def refusal(self, status: DiskStatus) -> str:
        """The one line a writing endpoint answers (507) while the disk is full."""
        return (
            f"the disk of the server's data folder is full ({status.reason}): free space under "
            f"{self.folder} or elsewhere on its disk, then try again"
        )
