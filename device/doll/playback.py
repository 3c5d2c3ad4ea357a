# SPDX-License-Identifier: GPL-3.0-or-later
"""The doll's voice part: the speaker, the TTS engine on the doll's one TTS thread, the earcons
and the lines synthesised at start-up, and the playback of 차차's streamed reply.

Audio is played for an *owner* (a turn): only the owner :meth:`Voice.allow` last named may
queue audio, so after :meth:`Voice.silence` nothing of an interrupted turn can sound again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from device.doll.earcons import make_earcons
from device.doll.protocols import Speaker
from device.doll.talk import NOTHING_HEARD
from hardware.clock import Clock
from inference_server.api import ReplyFinal, ReplySentence, ServerUnavailable
from tts.engines import SpeechEngine, speak

_LOGGER = logging.getLogger(__name__)

OFFLINE_LINE = "지금은 차차 서버에 연결이 안 돼. 조금 있다가 다시 말해 줘."
"""Said when the server cannot be reached; synthesised once at start-up."""


class Voice:
    """What the doll says: ``speak`` synthesises, ``play``/``sound`` queue for an owner,
    ``reply`` speaks a streamed reply sentence by sentence as it arrives."""

    def __init__(
        self,
        speaker: Speaker,
        engine: SpeechEngine,
        *,
        volume: float,
        gap_ms: int,
        earcons: bool,
        clock: Clock,
    ) -> None:
        self._speaker = speaker
        self._engine = engine
        self._volume = volume
        self._gap_ms = gap_ms
        self._with_earcons = earcons
        self._clock = clock
        self._tts = ThreadPoolExecutor(1, thread_name_prefix="chacha-tts")
        self._owner: object | None = None
        self.earcons: dict[str, np.ndarray] = {}
        self.lines: dict[str, list[np.ndarray]] = {}
        self.last_reply: list[np.ndarray] = []
        """The audio of his last whole reply (a long press with ``repeat`` says it again)."""

    async def start(self) -> None:
        """Open the speaker (unless it is); make the earcons and the lines said at start-up once."""
        if not self._speaker.active:  # tried again after another part failed: still open
            self._speaker.start()
        if self._with_earcons and not self.earcons:
            self.earcons = make_earcons(self._speaker.sample_rate)
        if not self.lines:
            self.lines = {
                "offline": await self.speak(OFFLINE_LINE),
                "nothing": await self.speak(NOTHING_HEARD),
            }

    def stop(self) -> None:
        self._owner = None
        try:
            self._speaker.close()
        except Exception as exc:
            _LOGGER.debug("closing the speaker: %s", exc)

    def close(self) -> None:
        self.stop()
        self._tts.shutdown(wait=False, cancel_futures=True)

    def reopen_if_stopped(self) -> None:
        """Open the speaker again if its stream stopped (a USB card unplugged and back)."""
        if not self._speaker.active:
            _LOGGER.warning("the speaker stopped; opening it again")
            self._speaker.restart()

    def allow(self, owner: object | None) -> None:
        """From now on only ``owner`` may play (None: nobody)."""
        self._owner = owner

    def silence(self) -> None:
        """Nobody may play, and what is queued stops within one block."""
        self._owner = None
        self._speaker.stop()

    def speak(self, text: str, gap_first: bool = False):
        """Synthesise ``text`` on the TTS thread, ready for the speaker (awaitable)."""
        return asyncio.get_running_loop().run_in_executor(
            self._tts, synthesise, self._engine, self._speaker, text, self._volume, self._gap_ms, gap_first
        )

    def play(self, owner: object, audio: list[np.ndarray]) -> bool:
        """Queue ``audio`` for ``owner`` unless someone else owns the speaker now (then drop it)."""
        if owner is not self._owner or not audio:
            return False
        for pcm in audio:
            self._speaker.play(pcm)
        return True

    async def drain(self) -> None:
        """Wait until everything queued has sounded."""
        await self._speaker.drain()

    async def sound(self, owner: object, *audio: np.ndarray | None) -> bool:
        """Play ``audio`` (None: an earcon that is switched off) for ``owner`` and wait for its end."""
        if self.play(owner, [pcm for pcm in audio if pcm is not None]):
            await self._speaker.drain()
            return True
        return False

    async def earcon(self, owner: object, name: str, *then: np.ndarray) -> None:
        """The earcon ``name`` (if earcons are on), then ``then``, to the end."""
        await self.sound(owner, self.earcons.get(name), *then)

    async def reply(
        self,
        owner: object,
        replies: asyncio.Queue,
        said: Said,
        marks: dict[str, float],
        on_first_audio: Callable[[], None],
        on_end: Callable[[ReplyFinal | ServerUnavailable | None], None],
        gate: Callable[[], Awaitable[bool]] | None = None,
    ) -> ReplyFinal | ServerUnavailable | None:
        """Speak the sentences arriving on ``replies`` (see :func:`device.doll.server_watch.ask`)
        as they come, noting in ``said`` what was queued; returns how the stream ended (the
        summary, the failure, or None: it ended without one, or ``owner`` lost the speaker).

        ``marks`` gets the first sentence's and first audio's times; ``on_first_audio`` is called
        when the first audio is queued, ``on_end`` when the stream ended, before the wait for the
        last audio to sound; ``gate``, when the first audio is ready and before it is played: if
        it answers False, nothing is played and None is returned. A bug in the stream is raised."""
        end: ReplyFinal | ServerUnavailable | None = None
        while True:
            match await replies.get():
                case ReplySentence(text=sentence) as event:
                    said.reply_id = getattr(event, "reply_id", None) or said.reply_id
                    marks.setdefault("first_sentence", self._clock.now())
                    audio = await self.speak(sentence, said.arrived > 0)
                    said.arrived += 1
                    if not audio:
                        continue
                    marks.setdefault("first_audio_ready", self._clock.now())
                    if not said.sentences and gate is not None and not await gate():
                        return None
                    starts_at = self._speaker.queued + _leading_silence(audio)
                    if not self.play(owner, audio):
                        return None
                    said.sentences.append(sentence)
                    said.starts.append(starts_at)
                    marks.setdefault("first_audio_queued", self._clock.now())
                    said.audio.extend(audio)
                    if len(said.sentences) == 1:
                        on_first_audio()
                case ReplyFinal() | ServerUnavailable() as end:
                    break
                case BaseException() as error:
                    raise error
                case _:  # the stream ended without its summary
                    break
        if isinstance(end, ReplyFinal):
            self.last_reply = said.audio
        on_end(end)
        await self._speaker.drain()
        said.heard_all = isinstance(end, ReplyFinal)
        return end

    def heard(self, said: Said) -> list[str]:
        """The sentences of ``said`` whose first sound the card has taken (the ones only queued,
        or only their lead-in silence played, are not heard)."""
        played = self._speaker.handed
        return [sentence for sentence, at in zip(said.sentences, said.starts, strict=True) if at < played]


@dataclass
class Said:
    """What of his reply went to the speaker this turn."""

    reply_id: int | None = None
    arrived: int = 0  # sentences that arrived (some may have had no audio)
    sentences: list[str] = field(default_factory=list)  # queued to the speaker, in order
    starts: list[int] = field(default_factory=list)  # where each one's first sound is (Speaker.queued)
    audio: list = field(default_factory=list)
    heard_all: bool = False  # the whole reply was played: nothing to report


def _leading_silence(audio: list[np.ndarray]) -> int:
    """Samples of digital silence before the first sound in ``audio`` (the gap between sentences)."""
    silent = 0
    for pcm in audio:
        sounding = np.flatnonzero(pcm)
        if len(sounding):
            return silent + int(sounding[0])
        silent += len(pcm)
    return silent


def synthesise(engine, speaker, text: str, volume: float, gap_ms: int, gap_first: bool) -> list[np.ndarray]:
    """``text`` sentence by sentence, converted for ``speaker``, ``gap_ms`` of silence between.

    ``gap_first``: the first sentence gets the gap too (it follows one already queued).
    """
    gap = np.zeros(round(speaker.sample_rate * gap_ms / 1000), dtype=np.int16)
    audio = []
    for sentence in speak(engine, text, volume=volume):
        if not len(sentence.samples):
            continue
        pcm = speaker.convert(sentence.samples, sentence.sample_rate)
        audio.append(np.concatenate([gap, pcm]) if (audio or gap_first) and len(gap) else pcm)
    return audio
