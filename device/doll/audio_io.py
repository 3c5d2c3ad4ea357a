# SPDX-License-Identifier: GPL-3.0-or-later
"""The doll's microphone and speaker, live, through sounddevice (PortAudio).

Both run PortAudio callback streams: the callback runs on PortAudio's own thread and
only moves samples; everything else happens on the asyncio loop that called ``start()``.

- :class:`Microphone` is a stream of int16 mono blocks of ``audio.block_ms`` at
  ``audio.capture_rate`` with any number of listeners: ``mic.listen()`` gives one a
  :class:`Listener` that gets every block from then on (``await listener.read()``) until it is
  closed, whatever the others do. The turn's hearing listens only while she may talk; with no
  listener the blocks are dropped in the callback, or, with an echo canceller
  (``clean_with``), once it has taken them in.
- :class:`Speaker` plays int16 mono at the device's rate: ``play()`` queues, ``stop()``
  silences within one block, ``await drain()`` waits until everything queued has sounded.
  ``speaker.reference()`` gives a listener every block the card played (silence too) as
  :class:`Played`, with its sample position: the far-end reference an echo canceller needs.

Each takes its ``backend`` (the ``sounddevice`` module from ``device.audio.load_portaudio``,
or a simulated sound card).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

import numpy as np

from device import audio
from device.doll.settings import AudioSettings
from device.errors import AudioDeviceError
from tts.audio import clip_int16, scale_volume

_LOGGER = logging.getLogger(__name__)

_QUEUE_LIMIT_S = 30.0  # the most microphone audio kept unread before the oldest is dropped


_T = TypeVar("_T")


@dataclass(frozen=True, eq=False)
class Played:
    """A block the speaker handed the sound card: ``samples`` (int16 mono at ``rate``) are the
    samples ``position`` to ``position + len(samples)`` of everything the card played since the
    speaker first started, silence included."""

    position: int
    samples: np.ndarray
    rate: int


class Listener(Generic[_T]):
    """One consumer of a stream (the microphone's blocks, the speaker's :class:`Played`): every
    item from its subscription until :meth:`close`, on the asyncio loop, in order.

    Listeners are independent: one that reads slowly, clears or closes takes nothing from the
    others. At most ``limit`` unread items are kept (the oldest are dropped and counted).
    """

    def __init__(self, unsubscribe, limit: int) -> None:
        self._unsubscribe = unsubscribe
        self._limit = limit
        self._queue: asyncio.Queue[_T | None] = asyncio.Queue()
        self._readers = 0
        self.dropped = 0
        self.closed = False

    @property
    def caught_up(self) -> bool:
        """Whether everything delivered has been read and a reader waits for more."""
        return self._queue.empty() and self._readers > 0

    async def read(self) -> _T | None:
        """The next item; ``None`` when :meth:`wake` was called (nothing to read)."""
        self._readers += 1
        try:
            return await self._queue.get()
        finally:
            self._readers -= 1

    def read_pending(self) -> list[_T]:
        """Every item already waiting, without waiting for more."""
        items = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None:
                items.append(item)
        return items

    def wake(self) -> None:
        """Make a pending (or the next) :meth:`read` return ``None`` at once."""
        self._queue.put_nowait(None)

    def clear(self) -> None:
        """Drop every item not yet read (and any pending wake-up)."""
        while not self._queue.empty():
            self._queue.get_nowait()

    def close(self) -> None:
        """Stop listening (safe to call twice); what is queued can still be read."""
        if not self.closed:
            self.closed = True
            self._unsubscribe(self)

    def __enter__(self) -> Listener[_T]:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _put(self, item: _T) -> None:
        if self._queue.qsize() >= self._limit:
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(item)


class _Listeners(Generic[_T]):
    """The listeners of one stream; PortAudio's thread reads ``active`` without a lock (a tuple
    is replaced whole)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self.active: tuple[Listener[_T], ...] = ()

    def add(self) -> Listener[_T]:
        listener: Listener[_T] = Listener(self._remove, self._limit)
        self.active = (*self.active, listener)
        return listener

    def _remove(self, listener: Listener[_T]) -> None:
        self.active = tuple(each for each in self.active if each is not listener)

    def put(self, item: _T) -> None:
        for listener in self.active:
            listener._put(item)


def _hint(kind: Literal["input", "output"]) -> str:
    if kind == "input":
        return "plug in the microphone, check `arecord -l`, and set audio.input_device in chacha.yaml"
    return "plug in the speaker, check `aplay -l`, and set audio.output_device in chacha.yaml"


def _describe(devices: list[dict], key: str) -> str:
    found = [f"{d.get('index', i)} {d['name']!r}" for i, d in enumerate(devices) if d.get(key, 0) > 0]
    return ", ".join(found) or "none"


def find_device(
    backend, wanted: str | int | None, kind: Literal["input", "output"]
) -> tuple[int | None, dict]:
    """Resolve ``audio.input_device``/``output_device`` (name part, index, or None = default).

    Returns (index for PortAudio or None for its default, the device's description).
    Raises AudioDeviceError saying which devices exist when none fits.
    """
    what = "microphone" if kind == "input" else "speaker"
    key = f"max_{kind}_channels"
    try:
        devices = [dict(d) for d in backend.query_devices()]
    except backend.PortAudioError as exc:
        raise AudioDeviceError(f"cannot list sound devices ({exc}): {_hint(kind)}") from None
    for i, device in enumerate(devices):
        device.setdefault("index", i)
    usable = [d for d in devices if d.get(key, 0) > 0]
    if not usable:
        raise AudioDeviceError(
            f"no sound card with a{'n' if kind == 'input' else ''} {kind} found: {_hint(kind)}"
        )
    if wanted is None:
        try:
            return None, dict(backend.query_devices(kind=kind))
        except (backend.PortAudioError, ValueError) as exc:
            raise AudioDeviceError(
                f"there is no default {what} ({exc}): set audio.{kind}_device to one of "
                f"{_describe(devices, key)} (see `{'arecord' if kind == 'input' else 'aplay'} -l`)"
            ) from None
    if isinstance(wanted, int):
        matches = [d for d in usable if d["index"] == wanted]
    else:
        matches = [d for d in usable if wanted.lower() in str(d["name"]).lower()]
        exact = [d for d in matches if str(d["name"]).lower() == wanted.lower()]
        matches = exact or matches
    if len(matches) == 1:
        return int(matches[0]["index"]), matches[0]
    problem = "matches several" if matches else "matches no"
    tool = "arecord" if kind == "input" else "aplay"
    raise AudioDeviceError(
        f"audio.{kind}_device {wanted!r} {problem} {kind} device: choose one of "
        f"{_describe(usable if matches else devices, key)} (see `{tool} -l`)"
    )


class Microphone:
    """Blocks of int16 mono audio from the sound card, delivered to every listener on the asyncio
    loop (:meth:`listen`)."""

    def __init__(self, settings: AudioSettings | None = None, *, backend=None) -> None:
        self.settings = settings or AudioSettings()
        self._backend = backend
        self.sample_rate = self.settings.capture_rate
        self.block_samples = self.sample_rate * self.settings.block_ms // 1000
        self.device_rate = self.sample_rate
        self.status_flags = 0  # callbacks that reported an overflow or another problem
        self._listeners: _Listeners[np.ndarray] = _Listeners(
            max(1, round(_QUEUE_LIMIT_S * 1000 / self.settings.block_ms))
        )
        self._sent = 0  # blocks handed to the loop (PortAudio's thread writes it)
        self._arrived = 0  # ... and arrived there (the loop writes it)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stream = None
        self._resampler = None
        self._cleaner = None

    def clean_with(self, cleaner) -> None:
        """Hand every block to ``cleaner.clean(block)`` (an echo canceller) on the loop before
        the listeners get it; None: the blocks as captured. The cleaner gets every block while
        the stream is open, listened to or not (it stays in step with the speaker and converged);
        a block nobody listens to is dropped after it."""
        self._cleaner = cleaner

    @property
    def active(self) -> bool:
        """Whether the stream is open and delivering."""
        return self._stream is not None and bool(self._stream.active)

    @property
    def listeners(self) -> int:
        """How many listeners get the blocks now."""
        return len(self._listeners.active)

    def listen(self) -> Listener[np.ndarray]:
        """A new listener: every block captured from now on, until its ``close()`` (on the loop)."""
        return self._listeners.add()

    @property
    def caught_up(self) -> bool:
        """Whether every listener has read everything captured and waits for more (or none listens).

        Read it on the loop. A simulated sound card in lockstep waits for this before each
        block, so a busy machine slows simulated time down instead of the doll falling behind.
        """
        listeners = self._listeners.active
        if not listeners:
            return True
        return self._sent == self._arrived and all(listener.caught_up for listener in listeners)

    def start(self) -> None:
        """Open and start the input stream; call it from the loop that will read."""
        self._loop = asyncio.get_running_loop()
        backend = self._backend if self._backend is not None else audio.load_portaudio()
        self._backend = backend
        index, info = find_device(backend, self.settings.input_device, "input")
        name = info.get("name", "the default microphone")
        try:
            self._stream = self._open(index, self.sample_rate)
        except (backend.PortAudioError, ValueError) as exc:
            native = int(info.get("default_samplerate") or 0)
            if not native or native == self.sample_rate or "sample rate" not in str(exc).lower():
                raise AudioDeviceError(
                    f"cannot open the microphone {name!r} ({exc}): {_hint('input')}"
                ) from None
            _LOGGER.info(
                "microphone %r records at %d Hz; resampling to %d Hz", name, native, self.sample_rate
            )
            import soxr

            try:
                self._stream = self._open(index, native)
            except (backend.PortAudioError, ValueError) as exc2:
                raise AudioDeviceError(
                    f"cannot open the microphone {name!r} ({exc2}): {_hint('input')}"
                ) from None
            self._resampler = soxr.ResampleStream(native, self.sample_rate, 1, dtype="int16")
            self.device_rate = native
        try:
            self._stream.start()
        except backend.PortAudioError as exc:
            self._close_stream()
            raise AudioDeviceError(
                f"cannot start the microphone {name!r} ({exc}): {_hint('input')}"
            ) from None
        _LOGGER.debug(
            "microphone %r open: %d Hz, %d ms blocks", name, self.device_rate, self.settings.block_ms
        )

    def _open(self, index: int | None, rate: int):
        return self._backend.RawInputStream(
            samplerate=rate,
            blocksize=rate * self.settings.block_ms // 1000,
            device=index,
            channels=1,
            dtype="int16",
            latency="low",
            callback=self._on_audio,
        )

    def stop(self) -> None:
        """Stop and close the stream (safe to call twice)."""
        self._close_stream()
        self._resampler = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        try:
            stream.stop()
            stream.close()
        except Exception as exc:  # a vanished USB device fails here too; nothing left to do
            _LOGGER.debug("closing the microphone: %s", exc)

    # -- PortAudio's thread --------------------------------------------------------------

    def _on_audio(self, indata, frames: int, time_info, status) -> None:
        if status:
            self.status_flags += 1
        if not self._listeners.active and self._cleaner is None:
            return
        block = np.frombuffer(indata, dtype=np.int16).copy()
        if self._resampler is not None:
            block = self._resampler.resample_chunk(block)
            if not len(block):
                return
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: the doll is shutting down
            loop.call_soon_threadsafe(self._put, block)
            self._sent += 1

    # -- the loop's side ---------------------------------------------------------------

    def _put(self, block: np.ndarray) -> None:
        self._arrived += 1
        if self._cleaner is not None:
            try:
                block = self._cleaner.clean(block)
            except Exception:  # the listeners still get her voice, with his in it
                _LOGGER.exception("the echo canceller failed: the microphone goes on without it")
                self._cleaner = None
            if not len(block):
                return
        self._listeners.put(block)  # a listener that closed after the block was captured: not it


class _PlayQueue:
    """The sounds queued for the speaker, taken block by block by PortAudio's thread (all its
    methods are thread-safe). Positions count queued samples, silence between sounds not."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._chunks: collections.deque[np.ndarray] = collections.deque()
        self._offset = 0  # samples of the first chunk already taken
        self.queued = 0  # where the next sample queued will be
        self.handed = 0  # samples handed to the device so far
        self.busy = False  # queued audio not all handed yet
        self._generation = 0  # changes with every add and clear

    def add(self, pcm: np.ndarray) -> None:
        with self._lock:
            self._chunks.append(pcm)
            self.queued += len(pcm)
            self.busy = True
            self._generation += 1

    def clear(self) -> None:
        with self._lock:
            self._chunks.clear()
            self._offset = 0
            self.queued = self.handed
            self.busy = False
            self._generation += 1

    def fill(self, outdata, frames: int) -> tuple[bool, int]:
        """Write the next `frames` samples into the device's block (silence where the queue runs
        out); whether the queue ran out with this block, and the generation it did so in."""
        written = 0
        finished = False
        with self._lock:
            while written < frames and self._chunks:
                chunk = self._chunks[0]
                take = min(frames - written, len(chunk) - self._offset)
                outdata[written : written + take] = chunk[self._offset : self._offset + take, np.newaxis]
                written += take
                self._offset += take
                if self._offset >= len(chunk):
                    self._chunks.popleft()
                    self._offset = 0
            self.handed += written
            if self.busy and not self._chunks:
                self.busy = False
                finished = True
            generation = self._generation
        if written < frames:
            outdata[written:] = 0
        return finished, generation

    def finished(self, generation: int) -> bool:
        """Whether the queue is still as empty as it was when it ran out in `generation`."""
        with self._lock:
            return generation == self._generation and not self.busy


class Speaker:
    """Int16 mono audio out, queued and played by a PortAudio callback at the device's rate."""

    def __init__(
        self, settings: AudioSettings | None = None, *, backend=None, sample_rate: int | None = None
    ) -> None:
        self.settings = settings or AudioSettings()
        self._backend = backend
        self._wanted_rate = sample_rate
        self.sample_rate = sample_rate or 0
        """Hertz the device plays at; known after :meth:`start` (None given: the device's default)."""
        self.latency_s = 0.0
        self.status_flags = 0
        self._queue = _PlayQueue()
        self._position = 0  # samples the card has taken since the first start, silence included
        self._references: _Listeners[Played] = _Listeners(
            max(1, round(_QUEUE_LIMIT_S * 1000 / self.settings.block_ms))
        )
        self._idle = asyncio.Event()
        self._idle.set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stream = None

    @property
    def active(self) -> bool:
        return self._stream is not None and bool(self._stream.active)

    @property
    def playing(self) -> bool:
        """Whether queued audio has not all been handed to the device yet."""
        return self._queue.busy

    @property
    def queued(self) -> int:
        """The position the next sample queued will have among the samples played (what
        :meth:`stop` dropped excepted): compare it with :attr:`handed` to know whether a sound
        queued at that position has begun."""
        return self._queue.queued

    @property
    def handed(self) -> int:
        """How many queued samples the device has taken so far (a block's worth ahead of the ear,
        plus its latency)."""
        return self._queue.handed

    def reference(self) -> Listener[Played]:
        """A new listener: every block the card plays from now on, as :class:`Played` with its
        sample position (the far-end reference for an echo canceller), until its ``close()``."""
        return self._references.add()

    def start(self) -> None:
        """Open and start the output stream (it plays silence until something is queued)."""
        self._loop = asyncio.get_running_loop()
        backend = self._backend if self._backend is not None else audio.load_portaudio()
        self._backend = backend
        index, info = find_device(backend, self.settings.output_device, "output")
        name = info.get("name", "the default speaker")
        rate = self._wanted_rate or int(info.get("default_samplerate") or 48000)
        stream = None
        problem: Exception | None = None
        for channels in (1, 2):  # some cards play stereo only
            try:
                stream = backend.OutputStream(
                    samplerate=rate,
                    blocksize=rate * self.settings.block_ms // 1000,
                    device=index,
                    channels=channels,
                    dtype="int16",
                    latency="low",
                    callback=self._on_output,
                )
                break
            except (backend.PortAudioError, ValueError) as exc:
                problem = exc
        if stream is None:
            raise AudioDeviceError(f"cannot open the speaker {name!r} ({problem}): {_hint('output')}")
        self.sample_rate = rate
        try:
            stream.start()
        except backend.PortAudioError as exc:
            stream.close()
            raise AudioDeviceError(f"cannot start the speaker {name!r} ({exc}): {_hint('output')}") from None
        self._stream = stream
        self.latency_s = float(getattr(stream, "latency", 0.0) or 0.0)
        _LOGGER.debug("speaker %r open: %d Hz, latency %.0f ms", name, rate, self.latency_s * 1000)

    def close(self) -> None:
        """Silence, stop and close the stream (safe to call twice)."""
        self.stop()
        stream, self._stream = self._stream, None
        if stream is None:
            return
        try:
            stream.stop()
            stream.close()
        except Exception as exc:
            _LOGGER.debug("closing the speaker: %s", exc)

    def restart(self) -> None:
        self.close()
        self.start()

    def convert(self, samples: np.ndarray, rate: int) -> np.ndarray:
        """``samples`` at ``rate`` as int16 at the device's rate, volume applied (any thread)."""
        pcm = np.asarray(samples).reshape(-1)
        if pcm.dtype != np.int16:
            pcm = clip_int16(pcm)
        if rate != self.sample_rate and len(pcm):
            import soxr

            pcm = soxr.resample(pcm, rate, self.sample_rate)
        return scale_volume(pcm, self.settings.volume)

    def play(self, samples: np.ndarray, rate: int | None = None) -> None:
        """Queue int16 mono ``samples`` at ``rate`` Hz after what is already queued.

        ``rate=None``: the samples are ready to play, as :meth:`convert` returns them (so the
        resampling can be done in a worker thread).
        """
        pcm = samples if rate is None else self.convert(samples, rate)
        pcm = np.ascontiguousarray(pcm, dtype=np.int16).reshape(-1)
        if not len(pcm):
            return
        self._queue.add(pcm)
        self._idle.clear()

    def stop(self) -> None:
        """Drop everything queued: the next block the device asks for is silence."""
        self._queue.clear()
        self._idle.set()

    async def drain(self) -> None:
        """Wait until everything queued has been played (or :meth:`stop` was called)."""
        if self._idle.is_set():
            return
        await self._idle.wait()
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)  # the device's own buffer is still sounding

    # -- PortAudio's thread --------------------------------------------------------------

    def _on_output(self, outdata, frames: int, time_info, status) -> None:
        if status:
            self.status_flags += 1
        finished, generation = self._queue.fill(outdata, frames)
        position, self._position = self._position, self._position + frames
        if self._references.active and self._loop is not None:
            played = Played(position, np.array(outdata[:frames, 0], dtype=np.int16), self.sample_rate)
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._references.put, played)
        if finished and self._loop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._went_idle, generation)

    def _went_idle(self, generation: int) -> None:
        if self._queue.finished(generation):
            self._idle.set()
