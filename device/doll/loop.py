# SPDX-License-Identifier: GPL-3.0-or-later
"""The doll, live: press, speak, hear 차차 answer; one explicit state machine on one asyncio loop.

States are :class:`hardware.DollState`, and the status light shows each one::

    IDLE ──press──► LISTENING ──release / silence_ms / max_utterance_s──► THINKING
      ▲                  │ (less than min_speech_ms of speech: back, quietly)   │ first audio
      └──── drained ◄── SPEAKING ◄────────────────────────────────────────────┘
    ERROR: the server is unreachable (or a turn failed); a background task asks its health
           with exponential backoff and the doll returns to IDLE by itself when it answers.

- **Press** (IDLE or ERROR): the ``listening`` earcon plays with the microphone muted, then
  the microphone feeds the VAD and the recogniser (on the ``chacha-stt`` thread) until she
  releases the button, stops talking for ``silence_ms``, or reaches ``max_utterance_s``.
- **THINKING**: the recogniser's final text. Nothing readable: the doll says ``NOTHING_HEARD``
  (synthesised at start-up) without asking the server. Otherwise ``client.chat`` streams the
  reply; each sentence is synthesised (``chacha-tts`` thread) as it arrives and queued to the
  speaker. SPEAKING begins with the first audio; the microphone stays muted (one microphone,
  no echo cancellation). After the last audio, the ``done`` earcon, then IDLE.
- **Press while THINKING or SPEAKING** interrupts: the speaker is silenced at once, the
  request and pending synthesis are cancelled, and a new turn starts listening. Every piece
  of audio is checked against the current turn before it is queued, so nothing of the old
  reply can play afterwards.
- **Long press** (held ``hardware.hold_s`` while IDLE, or while listening before any speech
  was heard): ``loop.long_press: repeat`` says the last reply again (or that there is none
  yet); ``status`` says whether the server answers and which brain gave the last reply.
  A press that becomes long after she started talking is just a long utterance.
- **Server unreachable** (``ServerUnavailable``, which includes timeouts): the error earcon and
  the offline line (synthesised once at start-up), the light shows ERROR, and the health
  check retries from ``server_retry_initial_s`` doubling up to ``server_retry_max_s``. A press
  in ERROR still tries a whole turn.

Every state change is one INFO line ("listening", "heard: …", "thinking …", "speaking …").
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from device.doll.earcons import make_earcons
from device.doll.protocols import Button, ChatClient, Light, Microphone, Speaker, StreamingRecogniser
from device.doll.settings import LoopSettings
from device.doll.states import DollState
from device.doll.talk import NOTHING_HEARD, encode_utterance
from device.doll.vad import (
    EndpointDetector,
    PauseBegan,
    SpeechEnded,
    SpeechResumed,
    SpeechStarted,
    VoiceActivity,
    create_vad,
)
from device.stt.transcript import Transcript
from hardware.clock import MONOTONIC, Clock, deadline
from inference_server.api import ReplyFinal, ReplySentence, ServerUnavailable
from tts.engines import SpeechEngine, speak

_LOGGER = logging.getLogger(__name__)

OFFLINE_LINE = "지금은 차차 서버에 연결이 안 돼. 조금 있다가 다시 말해 줘."
"""Said when the server cannot be reached; synthesised once at start-up."""
NOTHING_TO_REPEAT = "아직 다시 들려줄 말이 없어."
"""A long press with ``repeat`` before 차차 has said anything."""

_BRAINS = {"gemini": "제미나이가", "phrasebook": "오프라인 말 모음이"}
_LISTEN_GRACE_S = 2.0  # wall-clock slack over max_utterance_s before a silent microphone is given up
_FAILURE_SHOW_S = 2.0  # how long an unexpected failure keeps the light on ERROR
_AUDIO_CHECK_S = 2.0  # how often the audio streams are checked


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

    @property
    def heard_speech(self) -> bool:
        return self.detector.heard_speech

    def open(self) -> None:
        self.detector.reset()
        self._utterance = self._transcriber.stream()

    def hear(self, blocks: list[np.ndarray]) -> SpeechEnded | None:
        """Feed blocks to the VAD and (in ``stt.chunk_ms`` pieces) to the recogniser."""
        ended = None
        for block in blocks:
            if self.detector.ended:
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
                case SpeechResumed():
                    if self._utterance is not None:
                        self._utterance.resume()
                    self.resumptions += 1
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


@dataclass(eq=False)
class Turn:
    """One press of the button and everything that follows from it."""

    number: int
    pressed_at: float  # the doll's clock at the press
    released: bool = False
    released_at: float | None = None
    stopped_at: float | None = None  # when listening ended (release or end of speech)
    hearing: Hearing | None = None
    health: asyncio.Future | None = None  # the server's health, asked at the press (send_audio auto)
    turn_id: asyncio.Future | None = None  # audio mode: the id the server stored her turn under
    marks: dict[str, float] = field(default_factory=dict)  # stage → the doll's clock, for benchmarks


class Doll:
    """The live loop. Components come in ready-made (tests pass fakes); ``run_forever()`` drives them.

    ``mic``/``speaker``: :class:`device.audio_io.Microphone`/``Speaker`` (not yet started);
    ``transcriber``: from ``create_transcriber`` (``.stream()``); ``engine``: a TTS engine;
    ``client``: an ``InferenceClient``; ``light``/``button``: ``hardware.StatusLight`` and
    ``PushToTalkButton`` (the doll sets the button's callbacks, and turns the light off when
    it stops; closing both is the caller's). ``conversation``, ``tts_volume``,
    ``sentence_gap_ms`` and ``stt_chunk_ms`` come from ``client.conversation``, ``tts.volume``,
    ``tts.sentence_gap_ms`` and ``stt.chunk_ms``; ``send_audio`` (``client.send_audio``) sends
    her recording with the text; ``vad`` defaults to the one ``loop.vad`` names.
    ``clock``: every time the doll notes or waits for (the button and light's clock, and the
    sound card's; a simulated one in tests).
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
        settings: LoopSettings | None = None,
        conversation: str = "jinju",
        tts_volume: float = 1.0,
        sentence_gap_ms: int = 120,
        stt_chunk_ms: int = 100,
        send_audio: Literal["auto", "on", "off"] | bool = "off",
        vad: VoiceActivity | None = None,
        clock: Clock = MONOTONIC,
    ) -> None:
        self._clock = clock
        self._mic, self._speaker = mic, speaker
        self._transcriber, self._engine, self._client = transcriber, engine, client
        self._light, self._button = light, button
        self._settings = settings or LoopSettings()
        self._conversation = conversation
        self._tts_volume = tts_volume
        self._gap_ms = sentence_gap_ms
        self._chunk_ms = stt_chunk_ms
        self._send_audio = {True: "on", False: "off"}.get(send_audio, send_audio)
        self._vad = vad
        self.state = DollState.IDLE
        self.history: collections.deque[tuple[float, DollState]] = collections.deque(maxlen=200)
        self.ready = asyncio.Event()
        """Set once the doll is listening for the button."""
        self.last_reply = ""
        self.last_backend: str | None = None
        self.last_listen_end: str | None = None
        self.last_marks: dict[str, float] = {}  # the last turn's stage times (see Turn.marks)
        """Why listening ended last: release, silence, max_length or timeout."""
        self.last_transcript: Transcript | None = None
        """The last turn's final transcript (in audio mode it may come after the reply began)."""
        self.last_draft: Transcript | None = None
        """The last turn's quick transcript (Vosk's, in hybrid hearing)."""
        self.last_audio_mode = False
        """Whether the last request carried her recording."""
        self.last_recording_s = 0.0
        """How long the last recording sent was (seconds)."""
        self._background: set[asyncio.Task] = set()
        self._server = ServerWatch(client, self._settings, on_back=self._server_back, clock=clock)
        self._last_audio: list[np.ndarray] = []
        self._lines: dict[str, list[np.ndarray]] = {}
        self._earcons: dict[str, np.ndarray] = {}
        self._turn: Turn | None = None
        self._task: asyncio.Task | None = None
        self._turns = 0
        self._stopping: asyncio.Event | None = None
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stt = ThreadPoolExecutor(1, thread_name_prefix="chacha-stt")
        self._tts = ThreadPoolExecutor(1, thread_name_prefix="chacha-tts")

    # -- lifetime ------------------------------------------------------------------------

    async def run_forever(self) -> None:
        """Start the audio, wire the button, and run until :meth:`shutdown`."""
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        background: list[asyncio.Task] = []
        try:
            await self._start()
            background.append(
                asyncio.create_task(keep_audio_open(self._mic, self._speaker), name="chacha-audio-watch")
            )
            background.append(asyncio.create_task(self._check_server_at_start(), name="chacha-first-check"))
            await self._stopping.wait()
        finally:
            self._closing = True
            self._unwire_button()
            self._server.close()
            tasks = [
                t for t in (self._task, *background, *self._background) if t is not None and not t.done()
            ]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=5)
            with contextlib.suppress(Exception):
                self._speaker.close()
            with contextlib.suppress(Exception):
                self._mic.stop()
            try:
                self._light.off()
            except Exception:
                _LOGGER.exception("turning the status light off failed")
            self._stt.shutdown(wait=False)  # queued clean-ups still run: they free the recogniser
            self._tts.shutdown(wait=False, cancel_futures=True)
            _LOGGER.info("stopped")

    def shutdown(self) -> None:
        """Ask :meth:`run_forever` to stop (call on the loop, e.g. from a signal handler)."""
        if self._stopping is not None:
            self._stopping.set()

    async def _start(self) -> None:
        self._mic.muted = True
        self._mic.start()
        self._speaker.start()
        if self._settings.earcons:
            self._earcons = make_earcons(self._speaker.sample_rate)
        if self._vad is None:
            self._vad = await self._on_stt(create_vad, self._settings, self._mic.sample_rate)
        self._lines["offline"] = await self._speak(OFFLINE_LINE)
        self._lines["nothing"] = await self._speak(NOTHING_HEARD)
        self._wire_button()
        self._set_state(DollState.IDLE, "idle: ready, press the button to talk")
        self.ready.set()

    def _wire_button(self) -> None:
        self._button.on_press = lambda: self._hand_over(self._pressed)
        self._button.on_release = lambda held_s: self._hand_over(self._released)
        self._button.on_long_press = lambda: self._hand_over(self._long_pressed)

    def _unwire_button(self) -> None:
        self._button.on_press = self._button.on_release = self._button.on_long_press = None

    def _hand_over(self, handler) -> None:
        """From the button's thread onto the loop, with the time it happened."""
        loop = self._loop
        if loop is None or self._closing:
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: the doll is stopping
            loop.call_soon_threadsafe(handler, self._clock.now())

    # -- button events (on the loop) ----------------------------------------------------

    def _pressed(self, at: float) -> None:
        if self._closing:
            return
        turn = self._turn
        if self.state is DollState.LISTENING and turn is not None and not turn.released:
            _LOGGER.debug("pressed while already listening: ignored")
            return
        if self._busy():
            self._interrupt()
        self._begin(self._converse, at)

    def _released(self, at: float) -> None:
        turn = self._turn
        if turn is None or turn.released:
            return
        turn.released, turn.released_at = True, at
        self._mic.wake()

    def _long_pressed(self, at: float) -> None:
        if self._closing:
            return
        turn = self._turn
        silent = (
            self.state is DollState.LISTENING
            and turn is not None
            and turn.hearing is not None
            and not turn.hearing.heard_speech
        )
        if self._busy() and not silent:
            _LOGGER.debug("long press while %s: ignored", self.state.value)
            return
        if self._busy():
            self._interrupt(quiet=True)
        self._begin(self._long_press_action, at)

    def _busy(self) -> bool:
        return self._task is not None and not self._task.done()

    def _interrupt(self, *, quiet: bool = False) -> None:
        """Drop the current turn now: silence, no more audio from it, its work cancelled."""
        self._turn = None  # from here on, nothing of that turn passes _play()
        self._speaker.stop()
        self._mic.muted = True
        if self._task is not None:
            self._task.cancel()
        if not quiet:
            _LOGGER.info("interrupted while %s", self.state.value)

    def _begin(self, work, at: float) -> None:
        self._turns += 1
        turn = Turn(self._turns, at)
        self._turn = turn
        self._task = asyncio.create_task(self._guard(turn, work), name=f"chacha-turn-{turn.number}")

    # -- one turn --------------------------------------------------------------------------

    async def _guard(self, turn: Turn, work) -> None:
        try:
            await work(turn)
        except asyncio.CancelledError:
            raise
        except Exception:
            _LOGGER.exception("turn %d failed", turn.number)
            if turn is self._turn:
                await self._show_failure(turn)
        finally:
            if turn is self._turn:
                self._mic.muted = True
        if turn is self._turn:
            self._turn = None
            self._rest()

    @property
    def turns(self) -> int:
        """How many turns (presses and long presses) have begun."""
        return self._turns

    @property
    def server_down(self) -> bool:
        """Whether the server failed and has not answered since."""
        return self._server.down

    def _rest(self) -> None:
        self._set_state(DollState.ERROR if self.server_down else DollState.IDLE)

    async def _converse(self, turn: Turn) -> None:
        heard = await self._listen(turn)
        if heard is None:
            return
        draft, final = heard
        if draft.text and await self._audio_mode(turn):
            # Gemini hears her recording now, with the quick text; the final text follows into
            # the history when it is ready. It is not on the way to the first word.
            recording = await self._on_stt(turn.hearing.recording)
            self.last_recording_s = turn.hearing.detector.elapsed_s
            if final is not None:
                self._keep_final(turn, draft, final)
            await self._answer(turn, draft.text, recording)
            return
        transcript = draft if final is None else await self._final(turn, final)
        if not transcript.text:
            await self._say(turn, self._lines["nothing"], "speaking: asking her to say it again")
            return
        await self._answer(turn, transcript.text, None)

    async def _audio_mode(self, turn: Turn) -> bool:
        """Whether this turn goes out as her recording with the quick text (``client.send_audio``)."""
        if self._send_audio != "auto" or turn.health is None:
            return self._send_audio == "on"
        try:
            health = await turn.health
        except Exception as exc:  # unreachable: the text path reports it
            _LOGGER.debug("no health before the request (%s): sending text", exc)
            return False
        return bool(getattr(health, "hears_audio", False))

    async def _final(self, turn: Turn, final: Future[Transcript]) -> Transcript:
        """Wait for the final text (dropped if the turn is)."""
        try:
            transcript = await asyncio.wrap_future(final)
        except asyncio.CancelledError:
            final.cancel()
            raise
        self._heard(turn, transcript)
        return transcript

    def _report_cut(self, said: _Said) -> None:
        """Tell the server which of his sentences she heard begin before she cut him off: those
        whose first sound the speaker had taken (the ones only queued, or only their lead-in
        silence played, are not kept)."""
        report = getattr(self._client, "interrupted", None)
        if said.heard_all or said.reply_id is None or not said.sentences or report is None:
            return
        played = self._speaker.handed
        heard = [sentence for sentence, at in zip(said.sentences, said.starts, strict=True) if at < played]

        async def tell() -> None:
            try:
                await report(self._conversation, said.reply_id, heard)
            except Exception as exc:
                _LOGGER.warning("could not tell the server where his reply was cut (%s)", exc)

        task = asyncio.create_task(tell(), name="chacha-cut")
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)

    def _keep_final(self, turn: Turn, draft: Transcript, final: Future[Transcript]) -> None:
        """When the final text is ready, log it and have it replace the draft in the history."""
        turn_id: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        turn.turn_id = turn_id

        async def keep() -> None:
            transcript = await asyncio.wrap_future(final)
            self._heard(turn, transcript)
            stored = await turn_id
            if stored is None or not transcript.text or transcript.text == draft.text:
                return
            try:
                await self._client.correct_turn(self._conversation, stored, transcript.text)
            except Exception as exc:
                _LOGGER.warning("could not put the final text into the history (%s)", exc)

        task = asyncio.create_task(keep(), name=f"chacha-final-{turn.number}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)

    def _heard(self, turn: Turn, transcript: Transcript) -> None:
        turn.marks["transcribed"] = self._clock.now()
        self.last_transcript = transcript
        # Her words go to the journal only at debug level: the journal is a copy of them that
        # "잊어줘" cannot reach (docs/memory.md).
        _LOGGER.info(
            "heard: %d characters [%s, final text %.0f ms after the last audio]",
            len(transcript.text),
            transcript.engine,
            transcript.final_latency_s * 1000,
        )
        _LOGGER.debug("heard: %s", transcript.text or "(nothing readable)")

    async def _listen(self, turn: Turn) -> tuple[Transcript, Future[Transcript] | None] | None:
        self._set_state(DollState.LISTENING, "listening")
        detector = EndpointDetector.from_settings(self._settings, self._vad, self._mic.sample_rate)
        chunk = self._mic.sample_rate * self._chunk_ms // 1000
        hearing = Hearing(self._transcriber, detector, chunk, keep=self._send_audio != "off")
        turn.hearing = hearing
        if self._send_audio == "auto":
            turn.health = asyncio.ensure_future(self._client.health())
            turn.health.add_done_callback(_quietly)
        try:
            await self._on_stt(hearing.open)
            await self._sound(turn, self._earcons.get("listening"))
            self._mic.clear()
            self._mic.muted = turn.released
            reason = await self._hear(turn, hearing)
        except BaseException:
            self._mic.muted = True
            self._stt_later(hearing.cancel)
            raise
        self._mic.muted = True
        self.last_listen_end = reason
        turn.stopped_at = turn.released_at if reason == "release" else self._clock.now()
        turn.marks["stopped"] = turn.stopped_at
        self.last_marks = turn.marks
        if detector.speech_s * 1000 < self._settings.min_speech_ms:
            self._stt_later(hearing.cancel)
            _LOGGER.info("heard no speech in %.1f s (%s): not answering", detector.elapsed_s, reason)
            return None
        self._set_state(
            DollState.THINKING,
            f"thinking: she stopped ({reason}) after {detector.elapsed_s:.1f} s, "
            f"{detector.speech_s:.1f} s of it speech",
        )
        draft, final = await self._on_stt(hearing.finish)
        turn.marks["drafted"] = self._clock.now()
        self.last_draft = draft
        if final is None:
            self._heard(turn, draft)
        else:
            _LOGGER.info("heard (quick): %d characters", len(draft.text))
            _LOGGER.debug("heard (quick): %s", draft.text or "(nothing readable)")
        return draft, final

    async def _hear(self, turn: Turn, hearing: Hearing) -> str:
        """Feed the microphone until the release, the end of speech, or the length limit."""
        limit_s = self._settings.max_utterance_s + _LISTEN_GRACE_S
        try:
            async with deadline(self._clock, limit_s):
                while not turn.released:
                    block = await self._mic.read()
                    blocks = ([] if block is None else [block]) + self._mic.read_pending()
                    if blocks and (ended := await self._on_stt(hearing.hear, blocks)) is not None:
                        return ended.reason
        except TimeoutError:
            _LOGGER.warning("the microphone gave too little audio in %.0f s: is it still there?", limit_s)
            return "timeout"
        rest = self._mic.read_pending()  # what was captured up to the release
        if rest:
            await self._on_stt(hearing.hear, rest)
        return "release"

    async def _answer(self, turn: Turn, text: str, recording: tuple[str, bytes] | None) -> None:
        turn.marks["asked"] = self._clock.now()
        self.last_audio_mode = recording is not None
        replies: asyncio.Queue = asyncio.Queue()
        asking = asyncio.create_task(
            ask(self._client, text, self._conversation, replies, recording), name=f"chacha-ask-{turn.number}"
        )
        said = _Said()
        try:
            await self._answer_stream(turn, replies, asking, said)
        except asyncio.CancelledError:
            self._report_cut(said)  # she talked over him: the history keeps what she heard
            raise

    async def _answer_stream(
        self, turn: Turn, replies: asyncio.Queue, asking: asyncio.Task, said: _Said
    ) -> None:
        sentences, spoken = 0, said.audio
        final: ReplyFinal | None = None
        failure: ServerUnavailable | None = None
        try:
            while True:
                match await replies.get():
                    case ReplySentence(text=sentence) as event:
                        said.reply_id = getattr(event, "reply_id", None) or said.reply_id
                        turn.marks.setdefault("first_sentence", self._clock.now())
                        audio = await self._speak(sentence, sentences > 0)
                        sentences += 1
                        if not audio:
                            continue
                        turn.marks.setdefault("first_audio_ready", self._clock.now())
                        starts_at = self._speaker.queued + _leading_silence(audio)
                        if not self._play(turn, audio):
                            return
                        said.sentences.append(sentence)
                        said.starts.append(starts_at)
                        turn.marks.setdefault("first_audio_queued", self._clock.now())
                        spoken.extend(audio)
                        if self.state is not DollState.SPEAKING:
                            since = self._clock.now() - (turn.stopped_at or turn.pressed_at)
                            self._set_state(
                                DollState.SPEAKING, f"speaking: first audio {since:.2f} s after she stopped"
                            )
                    case ReplyFinal() as final:
                        break
                    case ServerUnavailable() as failure:
                        break
                    case BaseException() as error:
                        raise error
                    case _:  # the stream ended without its summary
                        break
        finally:
            asking.cancel()
            if turn.turn_id is not None and not turn.turn_id.done():
                turn.turn_id.set_result(final.turn_id if final is not None else None)
        if final is not None:
            self._server.answered()
            self.last_reply, self.last_backend, self._last_audio = final.reply, final.backend, spoken
            skipped = "".join(f", {f.backend} skipped: {f.reason}" for f in final.fallbacks)
            _LOGGER.info("reply: %d sentence(s) from %s%s", sentences, final.backend, skipped)
            if final.heard:
                _LOGGER.debug("the model heard: %s", final.heard)
        await self._speaker.drain()
        said.heard_all = final is not None
        if failure is not None:
            await self._server_failed(turn, failure)
        elif spoken:
            await self._sound(turn, self._earcons.get("done"))

    async def _say(self, turn: Turn, audio: list[np.ndarray], message: str) -> None:
        if audio and self._play(turn, audio):
            self._set_state(DollState.SPEAKING, message)
            await self._speaker.drain()

    async def _long_press_action(self, turn: Turn) -> None:
        if self._settings.long_press == "repeat":
            if self._last_audio:
                await self._say(turn, self._last_audio, "speaking: the last reply again (long press)")
                return
            text = NOTHING_TO_REPEAT
        else:
            self._set_state(DollState.THINKING, "thinking: checking the server (long press)")
            text = await status_line(self._client, self.last_backend)
        audio = await self._speak(text)
        await self._say(turn, audio, f"speaking: {text} (long press)")

    async def _show_failure(self, turn: Turn) -> None:
        self._set_state(DollState.ERROR, "error: the turn failed (see above); back to idle shortly")
        await self._sound(turn, self._earcons.get("error"))
        await self._clock.sleep_async(_FAILURE_SHOW_S)

    # -- the server ---------------------------------------------------------------------

    async def _server_failed(self, turn: Turn, failure: ServerUnavailable) -> None:
        self._server.failed()
        self._set_state(
            DollState.ERROR,
            f"error: {failure}; checking again in {self._settings.server_retry_initial_s:g} s",
        )
        await self._sound(turn, self._earcons.get("error"), *self._lines["offline"])

    def _server_back(self) -> None:
        if not self._busy():
            self._rest()

    async def _check_server_at_start(self) -> None:
        failure = await self._server.check()
        if failure is not None and not self._busy():
            self._set_state(DollState.ERROR, f"error: {failure}; checking again in the background")

    # -- plumbing ------------------------------------------------------------------------

    def _set_state(self, state: DollState, message: str | None = None) -> None:
        if state is self.state and message is None:
            return
        self.state = state
        self.history.append((self._clock.now(), state))
        _LOGGER.info("%s", message or state.value)
        try:
            self._light.show(state)
        except Exception:
            _LOGGER.exception("the status light failed")

    def _play(self, turn: Turn, audio: list[np.ndarray]) -> bool:
        """Queue audio for ``turn`` unless it is no longer the current turn (then drop it)."""
        if turn is not self._turn or self._closing or not audio:
            return False
        for pcm in audio:
            self._speaker.play(pcm)
        return True

    async def _sound(self, turn: Turn, *audio: np.ndarray | None) -> None:
        """Play ``audio`` (None: an earcon that is switched off) for ``turn`` and wait for its end."""
        if self._play(turn, [pcm for pcm in audio if pcm is not None]):
            await self._speaker.drain()

    def _speak(self, text: str, gap_first: bool = False):
        """Synthesise ``text`` on the TTS thread, ready for the speaker."""
        return self._on_tts(
            synthesise, self._engine, self._speaker, text, self._tts_volume, self._gap_ms, gap_first
        )

    def _on_stt(self, fn, *args):
        return asyncio.get_running_loop().run_in_executor(self._stt, fn, *args)

    def _on_tts(self, fn, *args):
        return asyncio.get_running_loop().run_in_executor(self._tts, fn, *args)

    def _stt_later(self, fn) -> None:
        with contextlib.suppress(RuntimeError):  # shut down: the process is ending anyway
            self._stt.submit(fn)


class ServerWatch:
    """Whether the server answers; after a failure, asks its health with exponential backoff.

    ``on_back`` is called (on the loop) when a failed server answers its health check again.
    """

    def __init__(
        self, client, settings: LoopSettings, *, on_back: Callable[[], None], clock: Clock = MONOTONIC
    ) -> None:
        self._client = client
        self._clock = clock
        self._initial_s = settings.server_retry_initial_s
        self._max_s = settings.server_retry_max_s
        self._on_back = on_back
        self.down = False
        self._task: asyncio.Task | None = None

    async def check(self) -> ServerUnavailable | None:
        """Ask once now; a failure starts the background checks and is returned."""
        try:
            await self._client.health()
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

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _watch(self) -> None:
        delay = self._initial_s
        while True:
            await self._clock.sleep_async(delay)
            try:
                await self._client.health()
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


@dataclass
class _Said:
    """What of his reply went to the speaker this turn."""

    reply_id: int | None = None
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


async def ask(
    client, text: str, conversation: str, replies: asyncio.Queue, recording: tuple[str, bytes] | None = None
) -> None:
    """Stream 차차's reply into ``replies``: sentences, the summary or the failure, then None."""
    try:
        extra = {"audio": recording} if recording is not None else {}
        chat = client.chat(text, conversation=conversation, channel="doll", **extra)
        async with contextlib.aclosing(chat) as events:
            async for event in events:
                replies.put_nowait(event)
    except Exception as exc:  # ServerUnavailable, or a bug the turn re-raises and logs
        replies.put_nowait(exc)
    finally:
        replies.put_nowait(None)


def _quietly(future: asyncio.Future) -> None:
    """Take a background future's failure so asyncio does not log it as never retrieved."""
    if not future.cancelled():
        future.exception()


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        _LOGGER.error("keeping the final text failed", exc_info=error)


async def status_line(client, last_backend: str | None) -> str:
    """What a long press with ``loop.long_press: status`` says, in Korean."""
    try:
        health = await asyncio.wait_for(client.health(), 5.0)
    except (ServerUnavailable, TimeoutError) as exc:
        _LOGGER.info("status: the server is not reachable (%s)", exc)
        return "지금은 차차 서버에 연결이 안 돼."
    parts = ["차차 서버는 잘 연결돼 있어."]
    if last_backend:
        parts.append(f"마지막 대답은 {_BRAINS.get(last_backend, f'{last_backend}가')} 했어.")
    elif brain := health.backend:
        parts.append(f"지금은 {_BRAINS.get(brain, f'{brain}가')} 대답할 거야.")
    return " ".join(parts)


async def keep_audio_open(mic, speaker) -> None:
    """Reopen a microphone or speaker stream that stopped (a USB card unplugged and back)."""
    delay = _AUDIO_CHECK_S
    while True:
        await asyncio.sleep(delay)
        try:
            for name, part in (("microphone", mic), ("speaker", speaker)):
                if not part.active:
                    _LOGGER.warning("the %s stopped; opening it again", name)
                    part.restart()
            delay = _AUDIO_CHECK_S
        except Exception:
            delay = min(delay * 2, 60.0)
            _LOGGER.exception("reopening the audio failed; trying again in %g s", delay)


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
