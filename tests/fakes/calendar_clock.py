"""The simulated wall clock that the chat service, its breakers, the quota ledger and memory all
read in a test: it moves only when the test says so."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

SEOUL = ZoneInfo("Asia/Seoul")


class Calendar:
    """A wall clock at ``start`` (default 2026-11-24 09:00 in Seoul) until :meth:`advance`."""

    def __init__(self, start: datetime | None = None) -> None:
        self.at = start or datetime(2026, 11, 24, 9, 0, tzinfo=SEOUL)

    def now(self) -> datetime:
        return self.at

    def timestamp(self) -> float:
        return self.at.timestamp()

    def advance(self, seconds: float = 0.0, **delta: float) -> None:
        """Move on by ``seconds`` and any other ``timedelta`` units (``hours=2``)."""
        self.at += timedelta(seconds=seconds, **delta)
