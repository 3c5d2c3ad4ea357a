"""One circuit breaker per backend: a backend that keeps failing is skipped for a while.

Without it a sick Gemini (no first text within `first_token_timeout_s`, or 5xx answers) costs
every turn: each one waits the whole timeout (6 s) before the next backend answers. With it,
after `llm.breaker.failures` such failures in a row the backend is skipped at once, and she
hears the next backend's reply as fast as it can give one.

The three states:

- closed: the backend is asked every turn. Timeouts, server errors (5xx) and network errors
  count; `failures` of them in a row open the breaker. Anything the backend answered (text, or a
  refusal, an empty answer, a 400: the server is there and quick) sets the count back to 0.
- open: the backend is skipped. The turn's `fallbacks` name it with reason `circuit_open` and
  say until when. The cooling period is `open_s` the first time and doubles each time the
  breaker opens again without having closed, up to `open_max_s`.
- half_open: the cooling period is over and ONE trial decides: an answer closes the breaker,
  another timeout, 5xx or network error opens it again for twice as long.

The trial (the chat service runs it, see `ChatService`): by preference a small probe in the
background, so that her turn never waits for a backend that may still be sick. The first turn
that finds the breaker half-open starts the probe and is answered at once by the next backend;
when the probe has answered, the turns after it go to the backend again. Probes are started by
turns, never by a timer, so a sick Gemini costs at most one request per cooling period, and only
while she is talking: fewer than the turns themselves would have spent. A probe is charged to the
quota ledger on its own channel ("probe"), like other background work, so it never takes the
doll's reserve. When the quota cannot spare a request for it (Telegram's share of the day is
spent) the turn itself is the trial: that one turn waits for the backend as before the breaker
existed, once per cooling period.

What does not count: a 429 (`rate_limited`) and a refusal by the quota ledger (`quota`) are the
ledger's business: its cooldown already skips the backend without sending a request, and the
ledger refuses a probe during it too. A rejected key (`auth`) turns the backend off on its own.

State lives in memory only: a restart starts every breaker closed, so a Gemini that is still
sick costs `failures` slow turns again before its breaker opens.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo

from inference_server.api.models import BreakerStatus
from inference_server.settings import BreakerSettings

_LOGGER = logging.getLogger(__name__)

SICK = frozenset({"timeout", "server_error", "network"})
"""Failure reasons that count towards opening the breaker."""

ANSWERED = frozenset({"blocked", "empty", "bad_request"})
"""Failure reasons that still prove the backend is there and quick: they close the breaker."""


class Gate(enum.Enum):
    ASK = "ask"  # closed: ask the backend
    TRIAL = "trial"  # half-open: the caller holds the one trial and must settle it
    SKIP = "skip"  # open, or half-open with the trial already under way


@dataclass(frozen=True)
class Decision:
    gate: Gate
    detail: str = ""  # why it is skipped (the fallback's detail)


class CircuitBreaker:
    """The breaker of one backend; every method is quick and safe to call from any thread.

    A caller given `Gate.TRIAL` must settle it: `succeeded`, `failed` or, when the trial ended
    without a verdict (cancelled, refused by the quota), `release`.
    """

    def __init__(
        self,
        name: str,
        settings: BreakerSettings,
        *,
        clock: Callable[[], float],
        zone: tzinfo | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self._clock = clock
        self._zone = zone
        self._lock = threading.Lock()
        self._failures = 0
        self._opened = 0
        self._until: float | None = None
        self._trial = False
        self._last: str | None = None

    # -- state -------------------------------------------------------------------------------------

    def _state(self, now: float) -> str:
        if self._until is None:
            return "closed"
        return "open" if now < self._until else "half_open"

    @property
    def state(self) -> str:
        """closed, open or half_open."""
        with self._lock:
            return self._state(self._clock())

    def _clock_text(self, at: float) -> str:
        return datetime.fromtimestamp(at, self._zone).strftime("%H:%M:%S")

    def status(self) -> BreakerStatus:
        with self._lock:
            now = self._clock()
            state = self._state(now)
            return BreakerStatus(
                state=state,
                failures=self._failures,
                until=self._until if state == "open" else None,
                retry_in_s=round(self._until - now, 1) if state == "open" else 0.0,
                last_failure=self._last,
                opened=self._opened,
            )

    # -- the turn asks ----------------------------------------------------------------------------

    def decide(self) -> Decision:
        """May the backend be asked now? Half-open, the first caller gets the trial."""
        with self._lock:
            now = self._clock()
            state = self._state(now)
            if state == "closed":
                return Decision(Gate.ASK)
            if state == "open":
                return Decision(
                    Gate.SKIP,
                    f"skipped until {self._clock_text(self._until)} "
                    f"(in {self._until - now:.0f} s) after {self._last}",
                )
            if self._trial:
                return Decision(Gate.SKIP, f"a trial is under way after {self._last}")
            self._trial = True
            return Decision(Gate.TRIAL)

    # -- outcomes ---------------------------------------------------------------------------------

    def succeeded(self, *, trial: bool = False) -> None:
        """The backend answered: the breaker closes and the count starts again."""
        with self._lock:
            was = self._state(self._clock())
            self._failures, self._opened, self._until = 0, 0, None
            if trial:
                self._trial = False
        if was != "closed":
            _LOGGER.info("%s answered again; its breaker is closed", self.name)

    def failed(self, reason: str, detail: str, *, trial: bool = False) -> None:
        """The backend failed with `reason` (BackendError.reason)."""
        if reason in ANSWERED:
            self.succeeded(trial=trial)
            return
        if reason not in SICK:
            if trial:
                self.release()
            return
        with self._lock:
            now = self._clock()
            state = self._state(now)
            self._last = f"{reason}: {detail}"
            if trial:
                self._trial = False
                self._open(now, "its trial failed")
            elif state == "closed":
                self._failures += 1
                if self._failures >= self.settings.failures:
                    self._open(now, f"{self._failures} failures in a row")
            # open or half-open, a call that began before the breaker opened tells nothing new

    def release(self) -> None:
        """The trial ended without a verdict: the next caller may try."""
        with self._lock:
            self._trial = False

    def _open(self, now: float, why: str) -> None:
        self._opened += 1
        seconds = min(self.settings.open_max_s, self.settings.open_s * 2 ** (self._opened - 1))
        self._until = now + seconds
        _LOGGER.warning(
            "%s breaker open: %s (last %s); skipped for %.0f s, until %s",
            self.name,
            why,
            self._last,
            seconds,
            self._clock_text(self._until),
        )
