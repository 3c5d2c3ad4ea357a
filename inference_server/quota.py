"""The quota ledger: every Gemini request counted before it is sent, kept across restarts.

Free-tier Gemini allows a handful of requests a minute and a few dozen a day. The ledger
enforces those limits *before* a call (so the doll never burns the day in a burst and never
provokes a 429 by itself), keeps a share of the day for the doll that Telegram cannot spend,
and puts a model in cooldown after a 429 for as long as Google asked (RetryInfo), or with
growing backoff when it did not say.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from inference_server.api.models import QuotaStatus
from inference_server.errors import InferenceError
from inference_server.settings import QuotaSettings
from inference_server.shared.sqlite import add_columns, open_database, open_fix
from inference_server.shared.text import mend_text

_LOGGER = logging.getLogger(__name__)

PACIFIC = ZoneInfo("America/Los_Angeles")
"""Google's daily quotas reset at midnight Pacific time."""

_LONGEST_COOLDOWN_S = 86_400.0 + 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    model   TEXT NOT NULL,
    at      REAL NOT NULL,
    day     TEXT NOT NULL,
    channel TEXT NOT NULL,
    tokens  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS requests_by_model_day ON requests (model, day);
CREATE INDEX IF NOT EXISTS requests_by_model_at ON requests (model, at);
CREATE TABLE IF NOT EXISTS cooldowns (
    model   TEXT PRIMARY KEY,
    until   REAL NOT NULL,
    reason  TEXT NOT NULL,
    strikes INTEGER NOT NULL DEFAULT 0
);
"""

# PRAGMA user_version counts these; files from before it was used say 0 and already hold the tables.
MIGRATIONS = (
    _SCHEMA,
    # A request made before NTP set the clock: `boot` is the kernel's boot id, so that the
    # request can be charged again to the right day once the clock is synchronised.
    add_columns("requests", {"unsynced_boot": "TEXT"}),
)

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str:
    """This boot of the machine (the kernel's boot id), or "unknown" where it cannot be read."""
    try:
        return _BOOT_ID.read_text(encoding="ascii").strip() or "unknown"
    except OSError:
        return "unknown"


def _open_error(path: Path, exc: Exception) -> InferenceError:
    return InferenceError(
        f"cannot open the quota ledger {path}: {exc} — "
        + open_fix(exc, "set server.data_dir to a writable folder")
    )


@dataclass(frozen=True)
class Admission:
    """The ledger's answer to "may I call this model now?"."""

    request_id: int | None  # set when admitted: the request is counted from now on
    wait_s: float = 0.0  # > 0: try again after this long (a per-minute slot frees up)
    reason: str = ""  # why not, when neither admitted nor worth waiting for

    @property
    def admitted(self) -> bool:
        return self.request_id is not None


def pacific_day(at: float) -> str:
    return datetime.fromtimestamp(at, PACIFIC).date().isoformat()


def next_reset(at: float) -> float:
    """The next midnight Pacific time after `at` (epoch seconds)."""
    local = datetime.fromtimestamp(at, PACIFIC)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), PACIFIC)
    return midnight.timestamp()


def quota_short(backend: object, *, reserve: int, now: float) -> tuple[str, float] | None:
    """(why, until when) background work must wait for this backend's quota; None if it may go.

    Background work (history summaries, memory reflection) is charged to the ledger like
    Telegram and keeps `reserve` requests of Telegram's share of the day for conversation: it
    waits while the model cools down after a 429 (until the cooldown is over, at least a minute)
    and while fewer than `reserve` requests (at least one) are left to Telegram today (until
    Google's day resets). A backend without a quota ledger may always go. `now` is epoch seconds.
    """
    status = getattr(backend, "quota_status", lambda: None)()
    if status is None:
        return None
    name = getattr(backend, "name", "the backend")
    if status.cooldown_s:
        return f"{name} is cooling down", now + max(status.cooldown_s, 60.0)
    if status.left_today_for_telegram < max(reserve, 1):
        return (
            f"{status.left_today_for_telegram} {name} request(s) left today, {reserve} kept for conversation",
            next_reset(now) + 60.0,
        )
    return None


def background_wait(
    backend: object, breaker: object | None, *, reserve: int, now: float
) -> tuple[str, float] | None:
    """(why, until when) background work (summaries, reflection) must wait for this backend; None
    if it may go now. Not while its circuit breaker is open or half-open: a sick backend is tried
    again by the breaker's own probe, not by background work; then as :func:`quota_short` says."""
    if breaker is not None and breaker.state != "closed":
        status = breaker.status()
        name = getattr(backend, "name", "the backend")
        return f"{name}'s breaker is {status.state}", status.until or now + 60.0
    return quota_short(backend, reserve=reserve, now=now)


class QuotaLedger:
    """The ledger in one SQLite file.

    `clock` is epoch seconds; the server gives it a :class:`~inference_server.shared.clock.WallClock`,
    which never runs backwards, so a clock set back at boot cannot put stored requests "in the
    future" of the per-minute window. `synchronized` says whether NTP has set the clock: a
    request counted before it did is charged, once it has, to the day NTP says (it was made
    in this boot, minutes earlier), never left on the day the unset clock read.
    """

    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], float] = time.time,
        synchronized: Callable[[], bool] = lambda: True,
        boot: str | None = None,
    ) -> None:
        self.path = path
        self._clock = clock
        self._synchronized = synchronized
        self._boot = boot_id() if boot is None else boot
        self._db = open_database(path, migrations=MIGRATIONS, wrap_error=lambda exc: _open_error(path, exc))
        self._lock = threading.Lock()

    def newest(self) -> float | None:
        """The newest stamp the ledger holds (epoch seconds), for the clock's floor."""
        with self._lock:
            return self._db.execute("SELECT MAX(at) FROM requests").fetchone()[0]

    def _resettle(self, now: float) -> None:
        """Once NTP has set the clock: this boot's requests made before it go to today."""
        if not self._synchronized():
            return
        cursor = self._db.execute(
            "UPDATE requests SET day = ?, unsynced_boot = NULL WHERE unsynced_boot = ?",
            (pacific_day(now), self._boot),
        )
        if cursor.rowcount:
            _LOGGER.info(
                "the clock is synchronised: %d request(s) made before it are charged to %s",
                cursor.rowcount,
                pacific_day(now),
            )

    # -- admission -----------------------------------------------------------------------------

    def admit(
        self, model: str, limits: QuotaSettings, *, channel: str, tokens: int, tentative: bool = False
    ) -> Admission:
        """Count a request now if every limit allows it; otherwise say how long to wait or why not.

        The doll's reserve is for the doll's turns: Telegram, and a tentative request of the doll's
        (which she may never hear), spend only the rest of the day."""
        now = self._clock()
        with self._lock:
            self._resettle(now)
            cooldown = self._cooldown(model, now)
            if cooldown:
                return Admission(None, reason=f"cooling down for {cooldown[0] - now:.0f} s ({cooldown[1]})")
            day = pacific_day(now)
            today = self._count_day(model, day)
            if today >= limits.requests_per_day:
                return Admission(None, reason=f"today's {limits.requests_per_day} requests are spent")
            if channel != "doll" or tentative:
                share = int(limits.requests_per_day * (1.0 - limits.doll_reserve))
                if today >= share:
                    return Admission(
                        None,
                        reason=f"the rest of today's requests is kept for the doll's turns ({today}/{share})",
                    )
            # Only the minute before now: a stamp after it (from a clock that ran ahead) is no slot.
            window = self._db.execute(
                "SELECT at, tokens FROM requests WHERE model = ? AND at > ? AND at <= ? ORDER BY at",
                (model, now - 60.0, now),
            ).fetchall()
            wait = 0.0
            if len(window) >= limits.requests_per_minute:
                wait = window[len(window) - limits.requests_per_minute][0] + 60.0 - now
            used = sum(t for _, t in window)
            if used + tokens > limits.tokens_per_minute:
                freed, need = 0, used + tokens - limits.tokens_per_minute
                for at, spent in window:
                    freed += spent
                    if freed >= need:
                        wait = max(wait, at + 60.0 - now)
                        break
                else:
                    return Admission(None, reason="the request is larger than the per-minute tokens")
            if wait > 0:
                return Admission(None, wait_s=wait, reason=f"per-minute limit: a slot frees in {wait:.1f} s")
            cursor = self._db.execute(
                "INSERT INTO requests (model, at, day, channel, tokens, unsynced_boot)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (model, now, day, channel, tokens, None if self._synchronized() else self._boot),
            )
            return Admission(cursor.lastrowid)

    def settle(self, request_id: int, tokens: int) -> None:
        """Replace the estimate with the tokens the model reported (usage_metadata)."""
        with self._lock:
            self._db.execute("UPDATE requests SET tokens = ? WHERE id = ?", (tokens, request_id))

    # -- cooldowns -----------------------------------------------------------------------------

    def cool_down(
        self, model: str, limits: QuotaSettings, *, retry_after_s: float | None, reason: str
    ) -> float:
        """Put a model in cooldown after a 429; returns the cooldown in seconds."""
        now = self._clock()
        with self._lock:
            row = self._db.execute("SELECT strikes FROM cooldowns WHERE model = ?", (model,)).fetchone()
            strikes = (row[0] if row else 0) + 1
            if retry_after_s is None:
                seconds = min(limits.backoff_max_s, limits.backoff_s * 2 ** (strikes - 1))
            else:
                seconds = min(max(retry_after_s, 1.0), max(limits.backoff_max_s, retry_after_s))
            if "per day" in reason.lower() or "perday" in reason.lower().replace("_", ""):
                seconds = max(seconds, next_reset(now) - now)
            self._db.execute(
                "INSERT INTO cooldowns (model, until, reason, strikes) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(model) DO UPDATE SET until = excluded.until, reason = excluded.reason,"
                " strikes = excluded.strikes",
                (model, now + seconds, mend_text(reason), strikes),  # the API's words
            )
        return seconds

    def succeeded(self, model: str) -> None:
        """A call went through: the backoff starts small again next time."""
        with self._lock:
            self._db.execute("UPDATE cooldowns SET strikes = 0 WHERE model = ?", (model,))

    # -- reporting -----------------------------------------------------------------------------

    def _cooldown(self, model: str, now: float) -> tuple[float, str] | None:
        """(until, reason) of the model's cooldown now. A cooldown is never longer than a day
        and a minute: one set by a clock that ran ahead does not hold the model for days."""
        return self._db.execute(
            "SELECT until, reason FROM cooldowns WHERE model = ? AND until > ? AND until <= ?",
            (model, now, now + _LONGEST_COOLDOWN_S),
        ).fetchone()

    def _count_day(self, model: str, day: str) -> int:
        return self._db.execute(
            "SELECT COUNT(*) FROM requests WHERE model = ? AND day = ?", (model, day)
        ).fetchone()[0]

    def status(self, model: str, limits: QuotaSettings) -> QuotaStatus:
        now = self._clock()
        with self._lock:
            self._resettle(now)
            today = self._count_day(model, pacific_day(now))
            minute = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(tokens), 0) FROM requests"
                " WHERE model = ? AND at > ? AND at <= ?",
                (model, now - 60.0, now),
            ).fetchone()
            cooldown = self._cooldown(model, now)
        telegram_share = int(limits.requests_per_day * (1.0 - limits.doll_reserve))
        return QuotaStatus(
            model=model,
            requests_today=today,
            requests_per_day=limits.requests_per_day,
            left_today=max(0, limits.requests_per_day - today),
            left_today_for_telegram=max(0, telegram_share - today),
            requests_last_minute=minute[0],
            requests_per_minute=limits.requests_per_minute,
            tokens_last_minute=minute[1],
            tokens_per_minute=limits.tokens_per_minute,
            cooldown_s=round(cooldown[0] - now, 1) if cooldown else 0.0,
            cooldown_reason=cooldown[1] if cooldown else None,
            resets_in_s=round(next_reset(now) - now),
        )

    def requests_today(self, model: str) -> int:
        with self._lock:
            return self._count_day(model, pacific_day(self._clock()))

    def close(self) -> None:
        with self._lock:
            self._db.close()
