"""The backend chain: the backends in ``llm.backends`` order, each with its circuit breaker.

Replies, history summaries and memory reflection all choose their backend here:
:meth:`BackendChain.for_reply` walks the chain for a reply (an unavailable backend or one whose
breaker is open is skipped with its reason); :meth:`BackendChain.for_background` answers which
backends may do background work now, or why none may and until when (a breaker that is not
closed, a quota that must keep requests for conversation). What a backend can do is read from
its registration (``inference_server.backends.registry``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from inference_server.backends import registry
from inference_server.backends.base import LLMBackend, LLMRequest, StreamEnd
from inference_server.breaker import CircuitBreaker, Decision, Gate
from inference_server.quota import background_wait, quota_short

_LOGGER = logging.getLogger(__name__)


def hears_audio(backend: LLMBackend) -> bool:
    """Whether it listens to her recording now: its registration says it may, and it does.

    A backend that was never registered (a test's double) says so itself, or hears no audio.
    """
    spec = registry.find(backend.name)
    if spec is not None and not spec.hears_audio:
        return False
    return bool(getattr(backend, "hears_audio", False))


def does_background_work(backend: LLMBackend) -> bool:
    """Whether it can write summaries and reflections (its registration's ``background``).

    A backend that was never registered (a test's double) can when it has ``complete``.
    """
    spec = registry.find(backend.name)
    if spec is not None:
        return spec.background
    return hasattr(backend, "complete")


def reply_pieces(backend: LLMBackend, request: LLMRequest) -> AsyncIterator[str | StreamEnd]:
    """The backend's reply as it comes: its stream, or for a backend registered as not streaming
    its whole reply (``complete``) as one piece."""
    spec = registry.find(backend.name)
    if spec is not None and not spec.streaming:
        return _whole(backend, request)
    return backend.stream(request)


async def _whole(backend: LLMBackend, request: LLMRequest) -> AsyncIterator[str | StreamEnd]:
    yield await backend.complete(request)


@dataclass(frozen=True)
class Attempt:
    """One backend of a reply's walk: to ask (``skip`` None), or skipped with (reason, detail)."""

    backend: LLMBackend
    breaker: CircuitBreaker | None
    trial: bool = False  # its breaker's trial: the caller must settle it
    skip: tuple[str, str] | None = None


@dataclass(frozen=True)
class Background:
    """Which backends may do background work now, and why the others may not."""

    ready: tuple[LLMBackend, ...]  # in chain order
    waits: tuple[tuple[str, float], ...]  # (why, until when) of each that must wait
    unavailable: tuple[str, ...]  # "name: why" of each that cannot be asked at all

    @property
    def backend(self) -> LLMBackend | None:
        """The backend to ask now, or None."""
        return self.ready[0] if self.ready else None

    def why_not(self, why: str, until: float, *more: tuple[str, float]) -> tuple[str, float]:
        """Why the work waits and until when: the wait that ends first (of these and ``more``,
        the caller's own, such as a failed request's); else the last unavailable backend's reason
        until ``until``; else (``why``, ``until``)."""
        waits = [*self.waits, *more]
        if waits:
            return min(waits, key=lambda wait: wait[1])
        if self.unavailable:
            return self.unavailable[-1], until
        return why, until


class BackendChain:
    """The backends in order with their breakers (by name; a backend may have none)."""

    def __init__(
        self,
        backends: Sequence[LLMBackend],
        breakers: Mapping[str, CircuitBreaker] | None = None,
        *,
        now: Callable[[], float] = time.time,
        probe: Callable[[LLMBackend, CircuitBreaker], None] | None = None,
    ) -> None:
        self.backends = list(backends)
        self.breakers = dict(breakers or {})
        self._now = now
        self._probe = probe  # starts a breaker's trial in the background

    def sharing(self, other: BackendChain) -> BackendChain:
        """This chain's backends with ``other``'s breakers and clock: a sick backend is skipped
        by the background work as by the replies."""
        return BackendChain(self.backends, other.breakers, now=other._now)

    async def aclose(self) -> None:
        """Close the running loop's connections of each backend that keeps some (an optional
        ``aclose`` of the backend's own)."""
        for backend in self.backends:
            closer = getattr(backend, "aclose", None)
            if closer is not None:
                await closer()

    # -- replies ---------------------------------------------------------------------------------

    def for_reply(self) -> Iterator[Attempt]:
        """The backends to try for a reply, in order, each decided when the walk reaches it."""
        for backend in self.backends:
            breaker = self.breakers.get(backend.name)
            reason = backend.unavailable_reason
            if reason is not None:
                yield Attempt(backend, breaker, skip=("unavailable", reason))
                continue
            if breaker is None:
                yield Attempt(backend, None)
                continue
            decision = self._gate(backend, breaker)
            if decision.gate is Gate.SKIP:
                yield Attempt(backend, breaker, skip=("circuit_open", decision.detail))
                continue
            yield Attempt(backend, breaker, trial=decision.gate is Gate.TRIAL)

    def _gate(self, backend: LLMBackend, breaker: CircuitBreaker) -> Decision:
        """Whether this turn asks `backend`: its breaker decides; a half-open breaker's trial is a
        probe in the background when the quota can spare one (the turn then skips the backend and
        keeps fast), else this turn itself (it waits for the backend, once per cooling period)."""
        decision = breaker.decide()
        if decision.gate is not Gate.TRIAL or self._probe is None:
            return decision
        short = quota_short(backend, reserve=1, now=self._now())
        if short is not None:
            _LOGGER.info(
                "%s: no request to spare for a probe (%s); this turn is its trial", backend.name, short[0]
            )
            return decision
        self._probe(backend, breaker)
        return Decision(
            Gate.SKIP,
            f"its cooling period is over; probing it in the background after {breaker.status().last_failure}",
        )

    def preferred(self) -> LLMBackend | None:
        """The backend that would answer now: available, its breaker closed, and not out of quota or
        cooling down."""
        for b in self.backends:
            quota = getattr(b, "quota_status", lambda: None)()
            breaker = self.breakers.get(b.name)
            if (
                b.unavailable_reason is None
                and (breaker is None or breaker.state == "closed")
                and not (quota and (quota.cooldown_s or not quota.left_today))
            ):
                return b
        return None

    # -- background work -------------------------------------------------------------------------

    def background_backends(self) -> list[LLMBackend]:
        """The backends that can do background work at all, in order."""
        return [b for b in self.backends if does_background_work(b)]

    def for_background(self, *, reserve: int, now: float) -> Background:
        """Which backends may do background work (summaries, reflection) now, keeping `reserve`
        requests of Telegram's share of the day for conversation; see quota.background_wait."""
        ready, waits, unavailable = [], [], []
        for backend in self.background_backends():
            if backend.unavailable_reason:
                unavailable.append(f"{backend.name}: {backend.unavailable_reason}")
                continue
            wait = background_wait(backend, self.breakers.get(backend.name), reserve=reserve, now=now)
            if wait is not None:
                waits.append(wait)
                continue
            ready.append(backend)
        return Background(tuple(ready), tuple(waits), tuple(unavailable))
