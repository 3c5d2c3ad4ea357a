"""The server's wall clock, made safe for a computer without a real-time clock.

A Raspberry Pi keeps no time while it is off. At boot its clock reads the last time saved
(systemd-timesyncd's /var/lib/systemd/timesync/clock), or worse, until NTP answers; without a
network it may never be right that day. Every stamp the server writes (turns, memories, the
quota ledger) and every window it counts (requests in the last minute, cooldowns, idle
sessions) read this clock, so it never runs backwards:

- It starts from the newest stamp the stores hold (:meth:`WallClock.seen`) and the release's
  floor (:data:`CLOCK_FLOOR`), and from there moves with the monotonic clock. When the wall
  clock reads earlier than that, the later time is the answer: a clock set back cannot put a
  request "in the future" of the per-minute window, or a memory decades in the past.
- A wall clock that reads later is taken as it is (NTP setting the time right after boot).
- The one exception: when NTP has synchronised the clock (:func:`clock_synchronized`) and it reads
  more than :data:`TRUST_SYNCED_S` earlier than the stores' newest stamp, those stamps came from
  a clock that ran ahead, and the synchronised clock is believed.

:meth:`WallClock.synchronized` says whether NTP has set the time, for the quota ledger, which
charges requests made before that to the day NTP then says (see inference_server.quota).
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

_LOGGER = logging.getLogger(__name__)

CLOCK_FLOOR = datetime(2026, 12, 1, tzinfo=UTC).timestamp()
"""No clock that this release runs under reads earlier than its own release month."""

TRUST_SYNCED_S = 60.0
"""A synchronised clock this much behind the newest stored stamp is believed over the stamps."""

_TIME_ERROR = 5
"""adjtimex's answer while the kernel's clock is not synchronised (STA_UNSYNC)."""


TIMESYNC_FLAG = Path("/run/systemd/timesync/synchronized")
"""systemd-timesyncd (Raspberry Pi OS, Debian) creates it once NTP has set the clock."""


def clock_synchronized(flag: Path = TIMESYNC_FLAG) -> bool | None:
    """Whether NTP has set the clock: systemd-timesyncd's flag file where timesyncd runs, else
    the kernel's own state (adjtimex, as `timedatectl` reads it); None where neither can say.

    The flag comes first: the server's unit has ProtectClock=yes, whose system call filter
    refuses adjtimex even to read.
    """
    if flag.parent.is_dir():
        return flag.exists()
    try:
        timex = ctypes.create_string_buffer(512)  # struct timex with modes 0: read only
        state = ctypes.CDLL(None).adjtimex(timex)  # the process's own libc
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != _TIME_ERROR


class WallClock:
    """Epoch seconds that never run backwards; call it like ``time.time``."""

    def __init__(
        self,
        *,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        synchronized: Callable[[], bool | None] = clock_synchronized,
        floor: float = CLOCK_FLOOR,
    ) -> None:
        self._wall = wall
        self._monotonic = monotonic
        self._synchronized = synchronized
        self._lock = threading.Lock()
        self._anchor = (floor, monotonic())  # (a time known to have passed, monotonic then)
        self._behind_s = 0.0
        self._warned = False

    def seen(self, stamp: float | None) -> None:
        """A stamp the stores hold: the clock will not read earlier than it from now on."""
        if stamp is None:
            return
        with self._lock:
            if stamp > self._projected(self._monotonic()):
                self._anchor = (float(stamp), self._monotonic())

    def synchronized(self) -> bool:
        """Whether NTP has set the time; True where the kernel cannot say (not a Linux clock)."""
        return self._synchronized() is not False

    @property
    def behind_s(self) -> float:
        """How far the wall clock read behind this clock last time (0 when it is right)."""
        return self._behind_s

    def _projected(self, mono: float) -> float:
        at, then = self._anchor
        return at + max(0.0, mono - then)

    def __call__(self) -> float:
        wall, mono = self._wall(), self._monotonic()
        with self._lock:
            projected = self._projected(mono)
            if wall >= projected or (wall < projected - TRUST_SYNCED_S and self._synchronized() is True):
                if wall < projected:
                    _LOGGER.warning(
                        "the synchronised clock reads %.0f s before the newest stored stamp: "
                        "those stamps came from a clock that ran ahead; the synchronised time is used",
                        projected - wall,
                    )
                self._anchor = (wall, mono)
                self._behind_s = 0.0
                self._warned = False
                return wall
            self._behind_s = projected - wall
            if not self._warned and self._behind_s > TRUST_SYNCED_S:
                self._warned = True
                _LOGGER.warning(
                    "the system clock reads %s, %.0f s before what the server has already stored "
                    "(a Raspberry Pi has no real-time clock; NTP has not set it yet): counting on from %s",
                    _iso(wall),
                    self._behind_s,
                    _iso(projected),
                )
            return projected


def _iso(at: float) -> str:
    try:
        return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return f"{at:.0f} s since 1970"
