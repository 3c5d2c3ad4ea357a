# SPDX-License-Identifier: GPL-3.0-or-later
"""A simulated sound card with the ``sounddevice`` module's interface, in memory.

The doll's audio code takes its sound backend through the constructor; this one stands in
for the real card where there is none: in the tests, and in ``chacha bench``, which replays a
recording as her voice and times what reaches the "speaker".

* Input (``RawInputStream``/``InputStream``): after ``start()``, one block every
  ``blocksize / samplerate`` seconds (divided by ``input_speed``: 4.0 delivers four times
  faster than real time). The audio comes from a script: what ``say(samples)`` queued,
  then silence (or quiet noise at ``noise_dbfs``). ``say`` assumes the stream's rate.
  ``input_log`` records when each block was delivered and how much of the script it held.
* Output (``OutputStream``): the callback is asked for one block every
  ``blocksize / samplerate`` seconds and each block is recorded with the time at which it
  was taken, in :attr:`SimulatedSoundCard.played`.

Two clocks:

* Real time (the default, ``clock=None``): each stream has its own thread, paced by
  ``time.monotonic()`` as a real card's are. ``chacha bench`` uses this: it measures speed.
* Simulated time (``clock=SimulatedClock()``): the card is the clock, as a real card's
  crystal is. One thread serves every stream in order of their due times and advances the
  clock to each block's time before handing it over; ``input_speed`` is then how many
  simulated seconds pass in one real second at most (4.0: four times real time). Before each
  microphone block it calls :attr:`settle` (see :meth:`lockstep`), so a consumer that falls
  behind makes time wait instead of falling behind; :meth:`frozen` stops time while a test
  does something that must happen at one instant. Timers on the same clock (the button's
  hold, the light's patterns) keep step with the audio. Tests assert on this time, never on
  how fast the machine ran.

``echo=EchoPath(...)`` puts the card in a room: what the speaker plays reaches the microphone
after a delay, with reverberation, a loudspeaker's distortion and a gain (``EchoPath``).

``SimulatedSoundCard(devices=False)`` is a machine with no sound card: listing works and is
empty, asking for a default device or opening a stream raises ``PortAudioError`` with the
messages real PortAudio gives. ``input_rates={48000}`` makes the microphone refuse any
other rate ("Invalid sample rate"), as many USB microphones opened as ``hw:`` do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from hardware.clock import MONOTONIC, Clock, SimulatedClock
from tts.audio import to_int16

_LOGGER = logging.getLogger(__name__)
_SETTLE_LIMIT_S = 30.0  # real seconds a lockstep consumer may take over one block before time moves on


class PortAudioError(Exception):
    """What sounddevice raises for PortAudio failures."""


class CallbackStop(Exception):  # noqa: N818 (sounddevice's name)
    pass


class CallbackAbort(Exception):  # noqa: N818
    pass


class _Flags:
    """Stand-in for sounddevice.CallbackFlags: false when no flag is set."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self.names = tuple(names)

    def __bool__(self) -> bool:
        return bool(self.names)

    def __str__(self) -> str:
        return ", ".join(self.names)


@dataclass(frozen=True)
class PlayedBlock:
    """One block the output callback filled: when it was taken and what it held."""

    time: float  # the card's clock just after the callback returned
    samples: np.ndarray  # int16, first channel
    rate: int

    @property
    def peak(self) -> int:
        return int(np.abs(self.samples.astype(np.int32)).max()) if len(self.samples) else 0


@dataclass(frozen=True)
class EchoPath:
    """How the doll's own speaker reaches its microphone in a simulated room: ``delay_ms`` from
    the speaker to the microphone, a room whose sound dies away 60 dB in ``rt60_s``, the echo
    ``gain_db`` relative to what was played, and a loudspeaker driven into ``distortion``
    (0: clean; 1: a hard ``tanh`` curve). As on a real card, a block the speaker's callback
    fills sounds after the one sounding then: one block after it was taken, plus ``delay_ms``."""

    delay_ms: float = 50.0
    gain_db: float = 0.0
    rt60_s: float = 0.4
    distortion: float = 0.0
    seed: int = 0

    def impulse_response(self, rate: int) -> np.ndarray:
        """The room: the direct sound, then exponentially decaying noise (unit energy)."""
        n = max(1, round(self.rt60_s * rate))
        t = np.arange(n) / rate
        rng = np.random.default_rng(self.seed)
        h = rng.standard_normal(n) * np.exp(-6.9 * t / self.rt60_s) * 0.3
        h[0] = 1.0
        return (h / np.sqrt(np.sum(h**2))).astype(np.float32)


class RoomEcho:
    """The echo on its way to the microphone: what the speaker plays, through the room, waiting
    (from the next input sample on) to be added to what the microphone hears."""

    def __init__(self, path: EchoPath) -> None:
        self.path = path
        self._rate: int | None = None  # the microphone's, once it runs
        self._next_input_at: float | None = None  # the card's time of the next input sample
        self._response = np.zeros(0, np.float32)
        self._tail = np.zeros(0, np.float32)
        self._waiting = np.zeros(0, np.float32)
        self._resampler = None
        self._played_rate = 0
        self._played_from = 0.0  # the card's time of the speaker's first resampled sample
        self._produced = 0  # resampled samples of the speaker so far
        self._consumed = 0  # the speaker's samples taken in so far, at its own rate

    def played(self, block: PlayedBlock) -> None:
        if self._rate is None or self._next_input_at is None:
            return  # nobody listens yet: the room is silent for the microphone
        import soxr

        expected_at = self._played_from + self._consumed / max(self._played_rate, 1)
        if (
            self._resampler is None
            or self._played_rate != block.rate
            or abs(block.time - expected_at) > 2 * len(block.samples) / block.rate
        ):
            # A new speaker stream (or one opened again): the sound starts afresh from this block.
            self._resampler = soxr.ResampleStream(block.rate, self._rate, 1, dtype="float32")
            self._played_rate = block.rate
            self._response = self.path.impulse_response(self._rate)
            self._played_from, self._produced, self._consumed = block.time, 0, 0
        self._consumed += len(block.samples)
        x = block.samples.astype(np.float32) / 32768.0
        if self.path.distortion > 0:
            drive = 1.0 + 4.0 * self.path.distortion
            x = np.tanh(drive * x) / drive
        x = self._resampler.resample_chunk(x)  # it holds some back: count what came out
        buffered_s = len(block.samples) / block.rate  # the card's own buffer: one block
        sounded_at = self._played_from + self._produced / self._rate + buffered_s
        self._produced += len(x)
        if not len(x):
            return
        full = np.convolve(x, self._response)
        full[: len(self._tail)] += self._tail
        out, self._tail = full[: len(x)], full[len(x) :]
        out *= 10 ** (self.path.gain_db / 20)
        offset = round((sounded_at + self.path.delay_ms / 1000 - self._next_input_at) * self._rate)
        if offset < 0:
            out = out[-offset:]
            offset = 0
        end = offset + len(out)
        if end > len(self._waiting):
            self._waiting = np.concatenate([self._waiting, np.zeros(end - len(self._waiting), np.float32)])
        self._waiting[offset:end] += out

    def heard(self, frames: int, rate: int, now: float) -> np.ndarray:
        """The echo in the next ``frames`` input samples (delivered at ``now``)."""
        self._rate = rate
        echo = np.zeros(frames, np.float32)
        take = min(frames, len(self._waiting))
        echo[:take] = self._waiting[:take]
        self._waiting = self._waiting[take:]
        self._next_input_at = now
        return echo


INPUT_DEVICE = {
    "name": "Fake USB Microphone: Audio (hw:1,0)",
    "index": 0,
    "hostapi": 0,
    "max_input_channels": 1,
    "max_output_channels": 0,
    "default_low_input_latency": 0.008,
    "default_low_output_latency": 0.0,
    "default_high_input_latency": 0.032,
    "default_high_output_latency": 0.0,
    "default_samplerate": 48000.0,
}
OUTPUT_DEVICE = {
    "name": "Fake Speaker: Headphones (hw:0,0)",
    "index": 1,
    "hostapi": 0,
    "max_input_channels": 0,
    "max_output_channels": 2,
    "default_low_input_latency": 0.0,
    "default_low_output_latency": 0.008,
    "default_high_input_latency": 0.0,
    "default_high_output_latency": 0.032,
    "default_samplerate": 48000.0,
}


class SimulatedSoundCard:
    """The parts of the ``sounddevice`` module the doll uses, over one simulated sound card."""

    PortAudioError = PortAudioError
    CallbackStop = CallbackStop
    CallbackAbort = CallbackAbort

    def __init__(
        self,
        *,
        devices: bool = True,
        output_rate: int = 48000,
        input_rates: set[int] | None = None,
        input_speed: float = 1.0,
        noise_dbfs: float | None = None,
        seed: int = 0,
        clock: Clock | None = None,
        echo: EchoPath | None = None,
    ) -> None:
        self.devices: list[dict] = []
        self._echo = None if echo is None else RoomEcho(echo)
        if devices:
            self.devices = [dict(INPUT_DEVICE), {**OUTPUT_DEVICE, "default_samplerate": float(output_rate)}]
        self.default = SimpleNamespace(device=[0, 1] if devices else [-1, -1])
        self.input_rates = input_rates
        self.input_speed = input_speed
        self.noise_dbfs = noise_dbfs
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self._script: list[np.ndarray] = []
        self._script_offset = 0
        self.played: list[PlayedBlock] = []
        self.streams: list[_FakeStream] = []
        self.input_blocks = 0  # blocks delivered to input callbacks
        self.script_fed = 0  # samples of the script handed to input callbacks so far
        self.input_log: list[tuple[float, int]] = []  # (clock time, script_fed after the block)
        self.clock: Clock = clock if clock is not None else MONOTONIC
        self.simulated = isinstance(self.clock, SimulatedClock)
        self.settle: Callable[[], None] | None = None
        """Simulated time only: called before each microphone block; returns when the consumer
        has caught up (see :meth:`lockstep`)."""
        self.settle_overruns = 0  # blocks handed over although the consumer had not caught up
        self._driver_cond = threading.Condition()
        self._active: list[_FakeStream] = []
        self._driver: threading.Thread | None = None
        self._holds = 0
        self._step_lock = threading.RLock()  # held while one block is served

    # -- the script ----------------------------------------------------------------------

    def say(self, samples: np.ndarray) -> None:
        """Queue int16 mono samples for the microphone (after whatever is still queued)."""
        pcm = np.asarray(samples, dtype=np.int16).reshape(-1)
        with self._lock:
            self._script.append(pcm.copy())

    def say_file(self, path: Path | str, *, then_silence_s: float = 0.0) -> np.ndarray:
        """Queue a 16-bit WAV's samples (at the stream's rate), then some digital silence."""
        import soundfile

        samples, rate = soundfile.read(str(path), dtype="int16")
        if samples.ndim > 1:
            samples = samples[:, 0]
        self.say(samples)
        if then_silence_s > 0:
            self.say(np.zeros(round(rate * then_silence_s), np.int16))
        return samples

    @property
    def pending_input(self) -> int:
        """Samples queued with ``say`` that no callback has taken yet."""
        with self._lock:
            return sum(len(s) for s in self._script) - self._script_offset

    def _next_input(self, frames: int, rate: int = 16000) -> np.ndarray:
        out = np.zeros(frames, dtype=np.int16)
        filled = 0
        with self._lock:
            while filled < frames and self._script:
                head = self._script[0]
                take = min(frames - filled, len(head) - self._script_offset)
                out[filled : filled + take] = head[self._script_offset : self._script_offset + take]
                filled += take
                self.script_fed += take
                self._script_offset += take
                if self._script_offset >= len(head):
                    self._script.pop(0)
                    self._script_offset = 0
            self.input_blocks += 1
            self.input_log.append((self.clock.now(), self.script_fed))
        if filled < frames and self.noise_dbfs is not None:
            level = 10 ** (self.noise_dbfs / 20)  # RMS, full scale 1.0
            out[filled:] = to_int16(self._rng.standard_normal(frames - filled) * level)
        if self._echo is not None:
            with self._lock:
                echo = self._echo.heard(frames, rate, self.clock.now())
            out = to_int16(out.astype(np.float32) / 32768.0 + echo)
        return out

    # -- simulated time ---------------------------------------------------------------------

    def lockstep(self, loop: asyncio.AbstractEventLoop, caught_up: Callable[[], bool]) -> None:
        """Before each microphone block, wait until ``caught_up()`` holds on ``loop``.

        ``caught_up`` runs on the loop after it has gone round a few times, so whatever the
        last block set off there has run; e.g. ``lambda: mic.caught_up``. Time waits for it
        (up to 30 real seconds a block, then goes on and counts a ``settle_overruns``).
        """

        async def probe() -> bool:
            for _ in range(3):
                await asyncio.sleep(0)
            return caught_up()

        def settle() -> None:
            give_up = time.monotonic() + _SETTLE_LIMIT_S
            while time.monotonic() < give_up:
                if loop.is_closed():
                    return
                try:
                    if asyncio.run_coroutine_threadsafe(probe(), loop).result(_SETTLE_LIMIT_S):
                        return
                except Exception:  # the loop stopped or is stopping: nothing to wait for
                    return
                time.sleep(0.0005)
            self.settle_overruns += 1
            _LOGGER.warning("simulated sound card: the consumer fell behind; time moves on")

        self.settle = settle

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Simulated time stands still inside (the block in progress finishes first)."""
        with self._driver_cond:
            self._holds += 1
        with self._step_lock:
            pass
        try:
            yield
        finally:
            with self._driver_cond:
                self._holds -= 1
                self._driver_cond.notify_all()

    def _attach(self, stream: _FakeStream) -> None:
        with self._driver_cond:
            stream.next_due = self.clock.now() + stream._period_s()
            if stream not in self._active:
                self._active.append(stream)
            if self._driver is None:
                self._driver = threading.Thread(target=self._drive, name="fake-card-clock", daemon=True)
                self._driver.start()
            self._driver_cond.notify_all()

    def _detach(self, stream: _FakeStream) -> None:
        with self._driver_cond:
            if stream in self._active:
                self._active.remove(stream)
            self._driver_cond.notify_all()
        if threading.current_thread() is not self._driver:
            with self._step_lock:  # a block being served for it finishes before stop() returns
                pass

    def _drive(self) -> None:
        """The card's clock (simulated time): serve the stream due first, then the next."""
        clock = self.clock
        assert isinstance(clock, SimulatedClock)
        last_due = clock.now()
        while True:
            with self._driver_cond:
                while self._holds and self._active:
                    self._driver_cond.wait()
                if not self._active:
                    self._driver = None
                    return
                stream = min(self._active, key=lambda s: s.next_due)
                due = stream.next_due
            if stream.kind == "input" and self.settle is not None:
                self.settle()
            with self._step_lock:
                with self._driver_cond:
                    if self._holds or stream not in self._active:
                        continue
                clock.advance_to(due)
                try:
                    stream._one_block()
                except (CallbackStop, CallbackAbort):
                    stream._finish()
                except BaseException as exc:  # PortAudio would print it and stop the stream
                    stream.error = exc
                    stream._finish()
                stream.next_due = due + stream._period_s()
            pause = (due - last_due) / max(self.input_speed, 1e-9)
            last_due = due
            if pause > 0:
                time.sleep(pause)

    # -- what was played -------------------------------------------------------------------

    def forget(self, *, input_log: bool = True) -> list[PlayedBlock]:
        """Drop what the card has noted so far (every block played, 96 kB a second even in
        silence; and, with ``input_log``, when each block was heard): a long run keeps only what
        it still needs. Returns the blocks played until now."""
        with self._lock:
            played, self.played = self.played, []
            if input_log:
                self.input_log.clear()
        return played

    def played_between(self, start: float = -float("inf"), end: float = float("inf")) -> list[PlayedBlock]:
        with self._lock:
            return [b for b in self.played if start <= b.time < end]

    def sounding(
        self, start: float = -float("inf"), end: float = float("inf"), min_peak: int = 64
    ) -> list[PlayedBlock]:
        """Blocks played in [start, end) that were not silent."""
        return [b for b in self.played_between(start, end) if b.peak >= min_peak]

    def played_audio(self, start: float = -float("inf"), end: float = float("inf")) -> np.ndarray:
        blocks = self.played_between(start, end)
        return np.concatenate([b.samples for b in blocks]) if blocks else np.zeros(0, np.int16)

    def delivered_at(self, script_sample: int) -> float | None:
        """When the input block holding the script's sample `script_sample` was delivered."""
        with self._lock:
            for when, fed in self.input_log:
                if fed > script_sample:
                    return when
        return None

    def _record(self, block: PlayedBlock) -> None:
        with self._lock:
            self.played.append(block)
            if self._echo is not None:
                self._echo.played(block)

    # -- the sounddevice API ------------------------------------------------------------

    def query_devices(self, device: int | str | None = None, kind: str | None = None):
        if device is None and kind is None:
            return [dict(d) for d in self.devices]
        if device is None:
            index = self.default.device[0 if kind == "input" else 1]
            if index < 0 or index >= len(self.devices):
                raise PortAudioError(f"Error querying device {index}")
            return dict(self.devices[index])
        if isinstance(device, int):
            if not 0 <= device < len(self.devices):
                raise PortAudioError(f"Error querying device {device}")
            return dict(self.devices[device])
        matches = [d for d in self.devices if str(device).lower() in d["name"].lower()]
        if len(matches) != 1:
            raise ValueError(f"No{'' if not matches else ' unique'} device matching {device!r}")
        return dict(matches[0])

    def RawInputStream(self, **kwargs) -> _FakeInputStream:  # noqa: N802 (sounddevice's name)
        return _FakeInputStream(self, raw=True, **kwargs)

    def InputStream(self, **kwargs) -> _FakeInputStream:  # noqa: N802
        return _FakeInputStream(self, raw=False, **kwargs)

    def OutputStream(self, **kwargs) -> _FakeOutputStream:  # noqa: N802
        return _FakeOutputStream(self, **kwargs)

    def _device_for(self, device, kind: str) -> dict:
        key = f"max_{kind}_channels"
        if device is None:
            index = self.default.device[0 if kind == "input" else 1]
            if index < 0:
                raise PortAudioError(
                    f"Error opening {'Raw' if kind == 'input' else ''}"
                    f"{'Input' if kind == 'input' else 'Output'}Stream: Invalid device [PaErrorCode -9996]"
                )
            device = index
        info = self.query_devices(device)
        if info.get(key, 0) <= 0:
            raise PortAudioError("Error opening stream: Invalid number of channels [PaErrorCode -9998]")
        return info


class _FakeStream:
    """Common to both directions: a thread that calls ``callback`` once per block."""

    def __init__(
        self,
        fake: SimulatedSoundCard,
        kind: str,
        *,
        samplerate: float | None = None,
        blocksize: int | None = None,
        device=None,
        channels: int = 1,
        dtype: str = "int16",
        latency=None,
        callback: Callable | None = None,
        **_: object,
    ) -> None:
        self.fake = fake
        self.kind = kind
        self.device_info = fake._device_for(device, kind)
        if channels > self.device_info[f"max_{kind}_channels"]:
            raise PortAudioError("Error opening stream: Invalid number of channels [PaErrorCode -9998]")
        if dtype != "int16":
            raise NotImplementedError("the fake sound card speaks int16 only")
        self.samplerate = float(samplerate or self.device_info["default_samplerate"])
        self.blocksize = int(blocksize or round(self.samplerate * 0.03))
        self.channels = channels
        self.dtype = dtype
        self.latency = 0.0
        self.callback = callback
        self.error: BaseException | None = None
        self.closed = False
        self._running = threading.Event()
        self._thread: threading.Thread | None = None
        self.next_due = 0.0  # simulated time: when this stream's next block is due
        fake.streams.append(self)

    @property
    def active(self) -> bool:
        return self._running.is_set()

    @property
    def stopped(self) -> bool:
        return not self._running.is_set()

    def start(self) -> None:
        if self.closed:
            raise PortAudioError("Error starting stream: Stream is closed [PaErrorCode -9988]")
        if self._running.is_set():
            return
        self._running.set()
        if self.fake.simulated:
            self.fake._attach(self)
            return
        self._thread = threading.Thread(target=self._run, name=f"fake-{self.kind}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._running.clear()
        if self.fake.simulated:
            self.fake._detach(self)
            return
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        self._thread = None

    def _finish(self) -> None:
        """The callback ended the stream (simulated time; on the card's thread)."""
        self._running.clear()
        self.fake._detach(self)

    abort = stop

    def close(self) -> None:
        self.stop()
        self.closed = True

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _period_s(self) -> float:
        return self.blocksize / self.samplerate

    def _run(self) -> None:
        next_at = time.monotonic()
        while self._running.is_set():
            try:
                self._one_block()
            except (CallbackStop, CallbackAbort):
                break
            except BaseException as exc:  # PortAudio would print it and stop the stream
                self.error = exc
                break
            next_at += self._period_s()
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_at = time.monotonic()  # behind: do not try to catch up in a burst
        self._running.clear()

    def _one_block(self) -> None:
        raise NotImplementedError


class _FakeInputStream(_FakeStream):
    def __init__(self, fake: SimulatedSoundCard, *, raw: bool, **kwargs) -> None:
        super().__init__(fake, "input", **kwargs)
        self.raw = raw
        rate = int(self.samplerate)
        if fake.input_rates is not None and rate not in fake.input_rates:
            fake.streams.remove(self)
            raise PortAudioError(
                f"Error opening {'Raw' if raw else ''}InputStream: Invalid sample rate [PaErrorCode -9997]"
            )

    def _period_s(self) -> float:
        if self.fake.simulated:  # input_speed paces the card's clock instead
            return self.blocksize / self.samplerate
        return self.blocksize / self.samplerate / self.fake.input_speed

    def _one_block(self) -> None:
        mono = self.fake._next_input(self.blocksize, int(self.samplerate))
        data = np.repeat(mono[:, np.newaxis], self.channels, axis=1)
        indata = memoryview(data.tobytes()) if self.raw else data
        now = self.fake.clock.now()
        timing = SimpleNamespace(inputBufferAdcTime=now, currentTime=now)
        if self.callback is not None:
            self.callback(indata, self.blocksize, timing, _Flags())


class _FakeOutputStream(_FakeStream):
    def __init__(self, fake: SimulatedSoundCard, **kwargs) -> None:
        super().__init__(fake, "output", **kwargs)

    def _one_block(self) -> None:
        outdata = np.full((self.blocksize, self.channels), 12345, dtype=np.int16)  # garbage unless filled
        now = self.fake.clock.now()
        timing = SimpleNamespace(outputBufferDacTime=now, currentTime=now)
        if self.callback is not None:
            self.callback(outdata, self.blocksize, timing, _Flags())
        self.fake._record(PlayedBlock(self.fake.clock.now(), outdata[:, 0].copy(), int(self.samplerate)))
