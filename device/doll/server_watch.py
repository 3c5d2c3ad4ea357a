# SPDX-License-Identifier: GPL-3.0-or-later
"""The doll's server part: asking 차차 (:func:`ask`), whether the server answers
(:class:`ServerWatch`, which retries its health with backoff after a failure), the errands the
doll sends it in the background, and what a long press with ``status`` says (:func:`status_line`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from device.doll.settings import LoopSettings
from hardware.clock import MONOTONIC, Clock
from inference_server.api import ServerUnavailable
from inference_server.backends.registry import spoken_name

_LOGGER = logging.getLogger(__name__)


class ServerWatch:
    """The doll's server part: the client, whether the server answers, and the errands sent to it
    in the background (the final text, where his reply was cut).

    After a failure it asks the server's health with exponential backoff; ``on_back`` is called
    (on the loop) when a failed server answers its health check again.
    """

    def __init__(
        self, client, settings: LoopSettings, *, on_back: Callable[[], None], clock: Clock = MONOTONIC
    ) -> None:
        self.client = client
        self._clock = clock
        self._errands: set[asyncio.Task] = set()
        self._initial_s = settings.server_retry_initial_s
        self._max_s = settings.server_retry_max_s
        self._on_back = on_back
        self.down = False
        self._task: asyncio.Task | None = None

    async def check(self) -> ServerUnavailable | None:
        """Ask once now; a failure starts the background checks and is returned."""
        try:
            await self.client.health()
        except ServerUnavailable as exc:
            self.failed()
            return exc
        except Exception:
            _LOGGER.exception("the health check failed")
        return None

    def failed(self) -> None:
        self.down = True
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._watch(), name="chacha-server-watch")

    def answered(self) -> None:
        """The server answered (a turn went through): stop checking."""
        if self.down:
            _LOGGER.info("the server answers again")
        self.down = False
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def errand(self, coro, name: str) -> asyncio.Task:
        """Run ``coro`` in the background (it logs its own failures; a bug is logged here)."""
        task = asyncio.create_task(coro, name=name)
        self._errands.add(task)
        task.add_done_callback(self._errands.discard)
        task.add_done_callback(_log_failure)
        return task

    async def settle(self) -> None:
        """Wait for the errands under way (e.g. what a stopping doll still tells the server)."""
        await asyncio.gather(*self._errands, return_exceptions=True)

    def close(self) -> list[asyncio.Task]:
        """Stop checking; returns the errands still running, cancelled."""
        if self._task is not None:
            self._task.cancel()
        errands = [task for task in self._errands if not task.done()]
        for task in errands:
            task.cancel()
        return errands

    async def _watch(self) -> None:
        delay = self._initial_s
        while True:
            await self._clock.sleep_async(delay)
            try:
                await self.client.health()
            except ServerUnavailable as exc:
                delay = min(delay * 2, self._max_s)
                _LOGGER.debug("the server is still unreachable (%s); next check in %g s", exc, delay)
                continue
            except Exception:
                delay = min(delay * 2, self._max_s)
                _LOGGER.exception("checking the server's health failed; next check in %g s", delay)
                continue
            self.answered()
            self._on_back()
            return


async def ask(
    client,
    text: str,
    conversation: str,
    replies: asyncio.Queue,
    recording: tuple[str, bytes] | None = None,
    *,
    tentative: str | None = None,
) -> None:
    """Stream 차차's reply into ``replies``: sentences, the summary or the failure, then None.
    ``tentative``: the id of a reply asked for before she has surely finished."""
    try:
        extra: dict = {"audio": recording} if recording is not None else {}
        if tentative is not None:
            extra["tentative"] = tentative
        chat = client.chat(text, conversation=conversation, channel="doll", **extra)
        async with contextlib.aclosing(chat) as events:
            async for event in events:
                replies.put_nowait(event)
    except Exception as exc:  # ServerUnavailable, or a bug the turn re-raises and logs
        replies.put_nowait(exc)
    finally:
        replies.put_nowait(None)


async def status_line(client, last_backend: str | None) -> str:
    """What a long press with ``loop.long_press: status`` says, in Korean."""
    try:
        health = await asyncio.wait_for(client.health(), 5.0)
    except (ServerUnavailable, TimeoutError) as exc:
        _LOGGER.info("status: the server is not reachable (%s)", exc)
        return "지금은 차차 서버에 연결이 안 돼."
    parts = ["차차 서버는 잘 연결돼 있어."]
    if last_backend:
        parts.append(f"마지막 대답은 {spoken_name(last_backend)} 했어.")
    elif brain := health.backend:
        parts.append(f"지금은 {spoken_name(brain)} 대답할 거야.")
    return " ".join(parts)


def quietly(future: asyncio.Future) -> None:
    """Take a background future's failure so asyncio does not log it as never retrieved."""
    if not future.cancelled():
        future.exception()


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        _LOGGER.error("%s failed", task.get_name(), exc_info=error)
