# SPDX-License-Identifier: GPL-3.0-or-later
"""The doll, live: press, speak, hear 차차 answer; one explicit state machine on one asyncio loop.

States are :class:`hardware.DollState`, and the status light shows each one::

    IDLE ──press──► LISTENING ──release / silence_ms / max_utterance_s──► THINKING
      ▲                  │ (less than min_speech_ms of speech: back, quietly)   │ first audio
      └──── drained ◄── SPEAKING ◄────────────────────────────────────────────┘
    ERROR: the server is unreachable (or a turn or a part failed); a background task asks its
           health with exponential backoff and the doll returns to IDLE by itself when it answers.
    WAITING (instead of IDLE, with ``loop.wake.enabled`` and her phrase enrolled): it rests and
           listens, on the doll, for her wake phrase; MUTED (``loop.long_press: mute``): it rests
           and listens only while the button is held.

The loop composes four parts, each in its own module with a narrow interface:

- :class:`~device.doll.hearing.Ears` (``hearing.py``): the microphone, the VAD and the recogniser
  on the ``chacha-stt`` thread. A turn listens by subscribing to the microphone's stream while
  she may talk and closing its listener after; other listeners are not affected.
- :class:`~device.doll.playback.Voice` (``playback.py``): the speaker, synthesis on the
  ``chacha-tts`` thread, the earcons, and the streamed reply's playback.
- :class:`~device.doll.status.StatusShow` (``status.py``): the state, the light, the log line.
- :class:`~device.doll.server_watch.ServerWatch` (``server_watch.py``): the client, the health
  checks with backoff, and the errands sent in the background.

- **Press** (IDLE or ERROR): the ``listening`` earcon plays, then the turn's hearing listens
  until she releases the button, stops talking for ``silence_ms``, or reaches ``max_utterance_s``.
- **THINKING**: the recogniser's final text. Nothing readable: the doll says ``NOTHING_HEARD``
  (synthesised at start-up) without asking the server. Otherwise ``client.chat`` streams the
  reply; each sentence is synthesised as it arrives and queued to the speaker. SPEAKING begins
  with the first audio. With ``loop.barge_in.by: voice`` and an echo canceller, a listener then
  watches the cleaned microphone: her voice over his interrupts him as a press does, and her
  turn is heard from her first words on; otherwise nobody listens while he speaks.
  After the last audio, the ``done`` earcon; then a follow-up window (``loop.follow_up_s``):
  LISTENING with no press, her silence ending it; she speaks, and it is her next turn; she does
  not, and IDLE. No window after a goodbye, or while the doll is muted (then MUTED, not IDLE).
- **Press while THINKING or SPEAKING** interrupts: the speaker is silenced at once, the
  request and pending synthesis are cancelled, and a new turn starts listening. Audio plays
  only for the current turn, so nothing of the old reply can play afterwards.
- **The wake phrase** (WAITING): a listener feeds the microphone to
  :class:`~device.doll.wake.WakeDetector` on the STT thread. When her enrolled phrase matches,
  a turn begins with no press: the ``listening`` earcon plays while the same listener goes on
  capturing, so what she says right after the phrase is her turn, ended by her silence (or by
  ``loop.wake.listen_s`` without speech). Any turn takes the microphone from the wake listener;
  it listens again once the doll rests.
- **Long press** (held ``hardware.hold_s`` while IDLE, or while listening before any speech
  was heard): ``loop.long_press: repeat`` says the last reply again (or that there is none
  yet); ``status`` says whether the server answers and which brain gave the last reply;
  ``mute`` turns the follow-up windows off (MUTED instead of IDLE: the doll listens only while
  the button is held) and, the next time, on again, kept across restarts (``DollOptions.mute_file``).
- **Server unreachable** (``ServerUnavailable``, which includes timeouts): the error earcon and
  the offline line, the light shows ERROR, and the health check retries from
  ``server_retry_initial_s`` doubling up to ``server_retry_max_s``. A press in ERROR still tries.
- **A part that fails to start** (no sound card, a VAD that does not load): logged, the light
  shows ERROR (with the error earcon if the speaker works), and the start is tried again with
  backoff (``DollOptions.retry_initial_s`` doubling up to ``retry_max_s``); ``chacha run`` goes on.

Each turn's measurements are one :class:`~device.doll.turn.TurnReport`, published in
``Doll.reports`` when the turn is over.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Sequence

import numpy as np

from device.doll.conversation import Conversation
from device.doll.hearing import Ears
from device.doll.playback import OFFLINE_LINE, Voice
from device.doll.protocols import (
    Button,
    ChatClient,
    EchoCanceller,
    Light,
    Listener,
    Microphone,
    Speaker,
    StreamingRecogniser,
)
from device.doll.server_watch import ServerWatch
from device.doll.states import DollState
from device.doll.status import StatusShow
from device.doll.turn import DollOptions, Turn, TurnReport, TurnSlot
from tts.engines import SpeechEngine

__all__ = ["OFFLINE_LINE", "Doll", "DollOptions", "TurnReport"]

_LOGGER = logging.getLogger(__name__)

_AUDIO_CHECK_S = 2.0  # how often the audio streams are checked


class Doll:
    """The live loop. Parts come in ready-made (tests pass fakes); ``run_forever()`` drives them.

    ``mic``/``speaker``: :class:`device.doll.audio_io.Microphone`/``Speaker`` (not yet started);
    ``transcriber``: from ``create_transcriber`` (``.stream()``); ``engine``: a TTS engine;
    ``client``: an ``InferenceClient``; ``light``/``button``: ``hardware.StatusLight`` and
    ``PushToTalkButton`` (the doll sets the button's callbacks, and turns the light off when
    it stops; closing both is the caller's); ``options``: :class:`DollOptions`.
    """

    def __init__(
        self,
        *,
        mic: Microphone,
        speaker: Speaker,
        transcriber: StreamingRecogniser,
        engine: SpeechEngine,
        client: ChatClient,
        light: Light,
        button: Button,
        options: DollOptions | None = None,
        canceller: EchoCanceller | None = None,
        wake: Sequence[np.ndarray] | None = None,
    ) -> None:
        self._options = options = options or DollOptions()
        clock, settings = options.clock, options.settings
        self._ears = Ears(
            mic,
            transcriber,
            settings,
            chunk_ms=options.stt_chunk_ms,
            keep=options.send_audio != "off",
            vad=options.vad,
            clock=clock,
        )
        self._voice = Voice(
            speaker,
            engine,
            volume=options.tts_volume,
            gap_ms=options.sentence_gap_ms,
            earcons=settings.earcons,
            clock=clock,
        )
        self._show = StatusShow(light, clock)
        self._server = ServerWatch(client, settings, on_back=self._server_back, clock=clock)
        self._talk = Conversation(
            self._ears, self._voice, self._show, self._server, options, self._last_backend
        )
        if settings.barge_in.by == "voice":
            if canceller is None:
                _LOGGER.info("no echo canceller: only the button stops him while he speaks")
            else:
                mic.clean_with(canceller)
                self._talk.on_voice = lambda ears, blocks: self._barged(ears, blocks)
        self._wake = wake if settings.wake.enabled and wake else None
        if settings.wake.enabled and not wake:
            _LOGGER.warning(
                "loop.wake.enabled, but no wake phrase is enrolled: only the button starts a turn"
            )
        self._waiting: asyncio.Task | None = None
        self._button = button
        self.ready = asyncio.Event()
        """Set once the doll runs: listening for the button, or showing ERROR while it tries a
        part that failed to start again."""
        self.reports: collections.deque[TurnReport] = collections.deque(maxlen=100)
        """Every finished turn's report, oldest first (the last 100)."""
        self._turns = TurnSlot()
        self._stopping: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- what others may read ---------------------------------------------------------------

    @property
    def state(self) -> DollState:
        return self._show.state

    @property
    def history(self) -> collections.deque[tuple[float, DollState]]:
        """The last state changes, with the doll's clock."""
        return self._show.history

    @property
    def turns(self) -> int:
        """How many turns (presses, long presses and follow-up windows) have begun."""
        return self._turns.count

    @property
    def server_down(self) -> bool:
        """Whether the server failed and has not answered since."""
        return self._server.down

    @property
    def current(self) -> TurnReport | None:
        """The current turn's report so far (None between turns)."""
        return None if self._turns.current is None else self._turns.current.snapshot()

    @property
    def awaiting_release(self) -> bool:
        """Whether the current turn still waits for the button's release."""
        return self._turns.current is not None and not self._turns.current.released

    async def settle(self) -> None:
        """Wait for what the doll still sends the server in the background."""
        await self._server.settle()

    # -- lifetime ------------------------------------------------------------------------

    async def run_forever(self) -> None:
        """Start the parts (again and again while one fails), wire the button, and run until
        :meth:`shutdown`."""
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        background: list[asyncio.Task] = []
        try:
            if await self._start():
                background.append(asyncio.create_task(self._keep_audio_open(), name="chacha-audio-watch"))
                background.append(
                    asyncio.create_task(self._check_server_at_start(), name="chacha-first-check")
                )
                await self._stopping.wait()
        finally:
            self._stopping.set()
            self._unwire_button()
            tasks = [
                t
                for t in (self._turns.task, self._waiting, *background, *self._server.close())
                if t is not None and not t.done()
            ]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=5)
            self._voice.close()
            self._ears.close()
            self._show.off()
            _LOGGER.info("stopped")

    def shutdown(self) -> None:
        """Ask :meth:`run_forever` to stop (call on the loop, e.g. from a signal handler)."""
        if self._stopping is not None:
            self._stopping.set()

    @property
    def _closing(self) -> bool:
        return self._stopping is None or self._stopping.is_set()

    async def _start(self) -> bool:
        """Start the parts; a failure is logged and shown and the start tried again with backoff.
        Returns False when the doll was asked to stop first."""
        delay = self._options.retry_initial_s
        while not self._closing:
            try:
                try:
                    self._ears.open()  # the microphone first, then the speaker (even if it failed)
                finally:
                    await self._voice.start()
                await self._ears.load()
            except Exception as exc:
                _LOGGER.error("starting the doll failed: %s", exc, exc_info=not _is_known(exc))
                self._show.show(
                    DollState.ERROR, f"error: a part failed to start; trying again in {delay:g} s"
                )
                self._voice.allow(self)
                with contextlib.suppress(Exception):  # the speaker may be what failed
                    await asyncio.wait_for(self._voice.earcon(self, "error"), 5)
                self._voice.allow(None)
                self.ready.set()
                await _sleep_unless(self._options.clock, delay, self._stopping)
                delay = min(delay * 2, self._options.retry_max_s)
                continue
            self._button.on_press = lambda: self._hand_over(self._pressed)
            self._button.on_release = lambda held_s: self._hand_over(self._released)
            self._button.on_long_press = lambda: self._hand_over(self._long_pressed)
            self._wait_for_wake()
            rest = self._talk.at_rest
            hint = (
                "say the wake phrase or press the button" if rest is DollState.WAITING else "press the button"
            )
            self._show.show(rest, f"{rest.value}: ready, {hint} to talk")
            self.ready.set()
            return True
        return False

    def _unwire_button(self) -> None:
        self._button.on_press = self._button.on_release = self._button.on_long_press = None

    def _hand_over(self, handler) -> None:
        """From the button's thread onto the loop, with the time it happened."""
        loop = self._loop
        if loop is None or self._closing:
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: the doll is stopping
            loop.call_soon_threadsafe(handler, self._options.clock.now())

    async def _keep_audio_open(self) -> None:
        """Reopen a microphone or speaker stream that stopped (a USB card unplugged and back)."""
        delay = _AUDIO_CHECK_S
        while True:
            await asyncio.sleep(delay)
            try:
                self._ears.reopen_if_stopped()
                self._voice.reopen_if_stopped()
                delay = _AUDIO_CHECK_S
            except Exception:
                delay = min(delay * 2, 60.0)
                _LOGGER.exception("reopening the audio failed; trying again in %g s", delay)

    # -- button events (on the loop) ----------------------------------------------------

    def _pressed(self, at: float) -> None:
        if self._closing:
            return
        if self.state is DollState.LISTENING and self.awaiting_release:
            _LOGGER.debug("pressed while already listening: ignored")
            return
        if self._turns.busy:
            self._interrupt()
        self._begin(self._talk.talk, at)

    def _released(self, at: float) -> None:
        turn = self._turns.current
        if turn is None or turn.released:
            return
        turn.released, turn.released_at = True, at
        if turn.ears is not None:
            turn.ears.wake()

    def _long_pressed(self, at: float) -> None:
        if self._closing:
            return
        turn = self._turns.current
        hearing = None if turn is None else turn.hearing
        silent = self.state is DollState.LISTENING and hearing is not None and not hearing.heard_speech
        if self._turns.busy and not silent:
            _LOGGER.debug("long press while %s: ignored", self.state.value)
            return
        if self._turns.busy:
            self._interrupt(quiet=True)
        self._begin(self._talk.long_press, at)

    def _barged(self, ears: Listener, blocks: list) -> None:
        """She talked over him (heard through the echo canceller): as a press, but her turn is
        heard from her first words on, and ends when she stops."""
        if self._closing or not self._turns.busy:
            ears.close()
            return
        self._interrupt()
        self._begin(
            lambda turn: self._talk.barged_in(turn, ears, blocks), self._options.clock.now(), hands_free=True
        )

    def _wait_for_wake(self) -> None:
        """Between turns, unless muted: listen on the doll for her wake phrase (``loop.wake``)."""
        waiting = self._wake is not None and not self._talk.mute.muted and not self._closing
        self._talk.waits_for_wake = waiting
        if waiting and (self._waiting is None or self._waiting.done()) and not self._turns.busy:
            self._waiting = asyncio.create_task(self._until_woken(), name="chacha-wake")

    def _stop_waiting(self) -> None:
        self._talk.waits_for_wake = False
        waiting, self._waiting = self._waiting, None
        if waiting is not None and waiting is not asyncio.current_task():
            waiting.cancel()

    async def _until_woken(self) -> None:
        """Feed the microphone to the wake detector until she says the phrase; then her turn,
        heard through the same listener (nothing she says after the phrase is lost)."""
        ears = self._ears.listen()
        try:
            heard = await self._ears.until_heard(ears, self._ears.wake(self._wake))
        except asyncio.CancelledError:
            ears.close()
            raise
        except Exception:  # a bug: said and shown (IDLE); the next rest listens again
            ears.close()
            _LOGGER.exception("listening for the wake phrase failed; the button still works")
            self._stop_waiting()
            if not self._turns.busy and not self.server_down:
                self._show.show(self._talk.at_rest)
            return
        if self._closing or self._turns.busy:
            ears.close()
            return
        _LOGGER.info("heard the wake phrase (distance %.3f)", heard.distance)
        self._begin(lambda turn: self._talk.woken(turn, ears), self._options.clock.now(), hands_free=True)

    def _interrupt(self, *, quiet: bool = False) -> None:
        """Drop the current turn now: silence, no more audio from it, its work cancelled."""
        turn = self._turns.drop()
        self._voice.silence()  # from here on, nothing of that turn plays
        if turn is not None and turn.ears is not None:
            turn.ears.close()  # its hearing stops at once: no block of it after the press
        if not quiet:
            _LOGGER.info("interrupted while %s", self.state.value)

    def _begin(self, work, at: float, *, hands_free: bool = False) -> None:
        self._stop_waiting()  # a turn has the microphone: the wake phrase is not listened for
        turn = self._turns.begin(at, lambda turn: self._guard(turn, work))
        turn.released = hands_free  # no button is held for a follow-up: a press starts a new turn
        self._voice.allow(turn)

    # -- one turn --------------------------------------------------------------------------

    async def _guard(self, turn: Turn, work) -> None:
        more = False
        try:
            more = bool(await work(turn))
        except asyncio.CancelledError:
            raise
        except Exception:
            _LOGGER.exception("turn %d failed", turn.number)
            if turn is self._turns.current:
                await self._talk.show_failure(turn)
        finally:
            if turn.final is None or turn.final.done():
                self.reports.append(turn.snapshot())
            else:  # audio mode: the report waits for the final text
                turn.final.add_done_callback(lambda _: self.reports.append(turn.snapshot()))
        if not self._turns.end(turn):
            return
        if more and self._options.settings.follow_up_s > 0 and not self._closing:
            self._begin(self._talk.follow_up, self._options.clock.now(), hands_free=True)
            return
        self._voice.allow(None)
        self._rest()

    def _last_backend(self) -> str | None:
        return next((r.backend for r in reversed(self.reports) if r.backend), None)

    def _rest(self) -> None:
        """Between turns: the light, and the wake phrase listened for unless the server is down
        (nothing could answer her; the light shows ERROR, not that the doll listens)."""
        if self.server_down:
            self._stop_waiting()
            self._show.show(DollState.ERROR)
            return
        self._wait_for_wake()
        self._show.show(self._talk.at_rest)

    # -- the server ---------------------------------------------------------------------

    def _server_back(self) -> None:
        if not self._turns.busy:
            self._rest()

    async def _check_server_at_start(self) -> None:
        failure = await self._server.check()
        if failure is not None and not self._turns.busy:
            self._stop_waiting()
            self._show.show(DollState.ERROR, f"error: {failure}; checking again in the background")


def _is_known(exc: Exception) -> bool:
    """A failure whose message says what to do (no traceback needed)."""
    from device.errors import AudioDeviceError

    return isinstance(exc, AudioDeviceError)


async def _sleep_unless(clock, seconds: float, stopping: asyncio.Event) -> None:
    """Sleep ``seconds`` on ``clock``, or less if ``stopping`` is set first."""
    sleeping = asyncio.ensure_future(clock.sleep_async(seconds))
    stopped = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait([sleeping, stopped], return_when=asyncio.FIRST_COMPLETED)
    finally:
        sleeping.cancel()
        stopped.cancel()
