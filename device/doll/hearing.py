# SPDX-License-Identifier: GPL-3.0-or-later
"""The doll's hearing part: :class:`Ears` (the microphone, the VAD and the recogniser on the
doll's one STT thread) and :class:`Hearing`, one utterance being heard.

A turn listens by subscribing to the microphone's stream (``mic.listen()``) while she may talk
and closing its listener after; other listeners (a wake word, an echo canceller) are not
affected by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from device.doll.barge_in import VoiceBargeIn
from device.doll.protocols import Listener, Microphone, StreamingRecogniser
from device.doll.settings import LoopSettings
from device.doll.talk import encode_utterance
from device.doll.vad import (
    EndpointDetector,
    PauseBegan,
    SpeechEnded,
    SpeechResumed,
    SpeechStarted,
    TentativeEnd,
    VoiceActivity,
    create_vad,
)
from device.doll.wake import WakeDetector
from device.stt.transcript import Transcript
from hardware.clock import Clock, deadline

_LOGGER = logging.getLogger(__name__)

_LISTEN_GRACE_S = 2.0  # wall-clock slack over max_utterance_s before a silent microphone is given up


class Ears:
    """The microphone, the VAD and the recogniser; ``hear`` feeds one utterance to them."""

    def __init__(
        self,
        mic: Microphone,
        transcriber: StreamingRecogniser,
        settings: LoopSettings,
        *,
        chunk_ms: int,
        keep: bool,
        vad: VoiceActivity | None,
        clock: Clock,
    ) -> None:
        self._mic = mic
        self._transcriber = transcriber
        self._settings = settings
        self._chunk_ms = chunk_ms
        self._keep = keep
        self._vad = vad
        self._clock = clock
        self._stt = ThreadPoolExecutor(1, thread_name_prefix="chacha-stt")

    def open(self) -> None:
        """Open the microphone unless it is open."""
        if not self._mic.active:
            self._mic.start()

    async def load(self) -> None:
        """Load the VAD ``loop.vad`` names (the first time)."""
        if self._vad is None:
            self._vad = await self.on_stt(create_vad, self._settings, self._mic.sample_rate)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._mic.stop()

    def close(self) -> None:
        self.stop()
        self._stt.shutdown(wait=False)  # queued clean-ups still run: they free the recogniser

    def reopen_if_stopped(self) -> None:
        """Open the microphone again if its stream stopped (a USB card unplugged and back)."""
        if not self._mic.active:
            _LOGGER.warning("the microphone stopped; opening it again")
            self._mic.restart()

    def listen(self) -> Listener:
        """A listener of the microphone: every block from now on, until it is closed."""
        return self._mic.listen()

    def hearing(self, *, lead_s: float = 0.0) -> Hearing:
        """A new utterance to hear (not yet open); ``lead_s``: she may begin that late and still
        have all of ``max_utterance_s`` (a follow-up window)."""
        rate = self._mic.sample_rate
        settings = self._settings
        if lead_s:
            settings = settings.model_copy(update={"max_utterance_s": settings.max_utterance_s + lead_s})
        detector = EndpointDetector.from_settings(settings, self._vad, rate)
        return Hearing(self._transcriber, detector, rate * self._chunk_ms // 1000, keep=self._keep)

    def barge_in(self) -> VoiceBargeIn:
        """A detector of her voice over his (``loop.barge_in``), on the loaded VAD."""
        return VoiceBargeIn(self._vad, self._mic.sample_rate, self._settings.barge_in)

    def wake(self, templates: Sequence[np.ndarray]) -> WakeDetector:
        """A detector of her wake phrase (``loop.wake``) from her enrolled ``templates``, with the
        loaded VAD to check that what matched is speech."""
        return WakeDetector(templates, self._settings.wake.threshold, speech=self._vad)

    async def until_heard(self, ears: Listener, detector: VoiceBargeIn | WakeDetector):
        """Feed ``ears`` to ``detector`` (on the STT thread) from a fresh start until it hears what
        it listens for (she has begun talking over him; her wake phrase); returns what it said."""
        await self.on_stt(detector.reset)
        while True:
            block = await ears.read()
            blocks = ([] if block is None else [block]) + ears.read_pending()
            if blocks and (heard := await self.on_stt(detector.push, blocks)):
                return heard

    async def hear(
        self,
        hearing: Hearing,
        ears: Listener,
        released: Callable[[], bool],
        *,
        start_within_s: float | None = None,
    ) -> str:
        """Feed ``ears`` to ``hearing`` until the release, the end of speech, or the length limit;
        returns why it ended: release, silence, max_length (the detector's), timeout, or quiet
        (``start_within_s`` seconds of audio went by and she had not begun to speak); with
        ``loop.tentative_end``, also tentative (her turn is probably over) and resumed (she went
        on after that): call again to go on hearing her."""
        limit_s = self._settings.max_utterance_s + (start_within_s or 0.0) + _LISTEN_GRACE_S
        detector = hearing.detector
        try:
            async with deadline(self._clock, limit_s):
                while not released():
                    if hearing.unheard:  # the blocks after the event the last call returned on
                        blocks, hearing.unheard = hearing.unheard, []
                    else:
                        block = await ears.read()
                        blocks = ([] if block is None else [block]) + ears.read_pending()
                    if blocks and (ended := await self.on_stt(hearing.hear, blocks)) is not None:
                        return _reason(ended)
                    if (
                        start_within_s is not None
                        and not detector.started
                        and detector.elapsed_s >= start_within_s
                    ):
                        return "quiet"
        except TimeoutError:
            _LOGGER.warning("the microphone gave too little audio in %.0f s: is it still there?", limit_s)
            return "timeout"
        rest = hearing.unheard + ears.read_pending()  # what was captured up to the release
        while rest and not hearing.detector.ended:
            await self.on_stt(hearing.hear, rest)
            rest, hearing.unheard = hearing.unheard, []
        return "release"

    def on_stt(self, fn, *args):
        """Run ``fn`` on the STT thread (awaitable)."""
        return asyncio.get_running_loop().run_in_executor(self._stt, fn, *args)

    def later(self, fn) -> None:
        """Queue ``fn`` on the STT thread, not waiting for it."""
        with contextlib.suppress(RuntimeError):  # shut down: the process is ending anyway
            self._stt.submit(fn)


def _reason(event: SpeechEnded | TentativeEnd | SpeechResumed) -> str:
    if isinstance(event, SpeechEnded):
        return event.reason
    return "tentative" if isinstance(event, TentativeEnd) else "resumed"


class Hearing:
    """One utterance being heard: the endpoint detector and the recogniser.

    Every method runs on the doll's single STT thread, one after another, so the
    recogniser (which holds a lock while an utterance is open) is always released in order.
    """

    def __init__(
        self, transcriber, detector: EndpointDetector, chunk_samples: int, *, keep: bool = False
    ) -> None:
        self._transcriber = transcriber
        self.detector = detector
        self._chunk_samples = max(1, chunk_samples)
        self._kept: list[np.ndarray] | None = [] if keep else None
        self._pending: list[np.ndarray] = []
        self._pending_samples = 0
        self._utterance = None
        self._partial = ""
        self.pauses = 0  # pauses long enough to start reading ahead
        self.resumptions = 0  # of those, how many she went on after
        self.unheard: list[np.ndarray] = []  # blocks after the event the last hear() returned
        self._paused = False
        self._tentative = False

    @property
    def heard_speech(self) -> bool:
        return self.detector.heard_speech

    def open(self) -> None:
        self.detector.reset()
        self._utterance = self._transcriber.stream()

    def hear(self, blocks: list[np.ndarray]) -> SpeechEnded | TentativeEnd | SpeechResumed | None:
        """Feed blocks to the VAD and (in ``stt.chunk_ms`` pieces) to the recogniser; returns the
        end of her speech, a tentative end, or (after a tentative end) her going on, the first of
        these in ``blocks`` (the blocks after it are not heard yet: they are returned to
        :attr:`unheard`)."""
        ended = None
        self.unheard = []
        for n, block in enumerate(blocks):
            if self.detector.ended:
                break
            if ended is not None:  # a tentative end or her going on: the rest waits for the caller
                self.unheard = blocks[n:]
                break
            self._pending.append(block)
            self._pending_samples += len(block)
            if self._kept is not None:
                self._kept.append(block)
            if self._pending_samples >= self._chunk_samples or self.detector.pausing:
                self._feed()  # in a pause, every block: her last word reaches the text sooner
            match self.detector.push(block):
                case SpeechStarted(at_s=at_s):
                    _LOGGER.debug("speech started %.2f s into the utterance", at_s)
                case PauseBegan(last_speech_s=last_speech_s):
                    self._feed()
                    if self._utterance is not None:
                        self._utterance.pause(last_speech_s)
                    self.pauses += 1
                    self._paused = True
                case SpeechResumed() as event:
                    if self._utterance is not None and self._paused:
                        self._utterance.resume()
                    self.resumptions += self._paused
                    self._paused = False
                    if self._tentative:
                        self._tentative = False
                        ended = event
                case TentativeEnd() as event:
                    self._feed()
                    self._tentative = True
                    ended = event
                case SpeechEnded() as event:
                    ended = event
        return ended

    def _feed(self) -> None:
        if not self._pending or self._utterance is None:
            return
        chunk = np.concatenate(self._pending)
        self._pending, self._pending_samples = [], 0
        partial = self._utterance.feed(chunk)
        self.detector.hear_text(partial)
        if partial != self._partial:
            self._partial = partial
            _LOGGER.debug("hearing: %s", partial)

    def finish(self) -> tuple[Transcript, Future[Transcript] | None]:
        """The recogniser's quick text now, and its final text as a future (None: already final)."""
        self._feed()
        utterance, self._utterance = self._utterance, None
        if utterance is None:
            raise RuntimeError("this utterance was cancelled")
        return utterance.finish_later()

    def cancel(self) -> None:
        utterance, self._utterance = self._utterance, None
        if utterance is not None:
            utterance.cancel()

    def recording(self) -> tuple[str, bytes]:
        """Her utterance as heard, encoded for a server in audio mode (``keep=True`` only)."""
        kept = self._kept or [np.zeros(0, np.int16)]
        return encode_utterance(np.concatenate(kept), self.detector.sample_rate)
