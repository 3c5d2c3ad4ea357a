# SPDX-License-Identifier: GPL-3.0-or-later
"""`chacha run` (the doll, live, until SIGTERM) and `chacha test leds|button|mic|speaker`.

Both read the ``audio:``, ``loop:`` and ``hardware:`` sections of the configuration. Problems
a person must fix (no sound card, no GPIO, a missing model) surface as the project's one-line
errors: AudioDeviceError, HardwareError, STTError, TTSError, CommandError.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from argparse import Namespace

import numpy as np

_LOGGER = logging.getLogger(__name__)

SPEAKER_TEST_LINE = "안녕, 나는 차차야. 스피커 소리 잘 들려?"
_LED_SECONDS = 2.0
_BUTTON_SECONDS = 10.0
_MIC_SECONDS = 3.0
_STATE_WORDS = {
    "idle": "waiting for the button (slow dim breathing)",
    "waiting": "listening for her wake phrase, on the doll (slow brighter breathing)",
    "listening": "she is speaking (solid on)",
    "thinking": "waiting for the answer (fast blinking)",
    "speaking": "차차 is answering (pulsing)",
    "error": "something is wrong (two quick blinks, pause)",
}


# --- chacha run --------------------------------------------------------------------------


def run(args: Namespace, config) -> int:
    """The doll: button, microphone, recogniser, server, voice and light, until SIGTERM/SIGINT."""
    from device import audio
    from device.cli.errors import CommandError
    from device.cli.server import server_client
    from device.doll import audio_io
    from device.doll.loop import Doll, DollOptions
    from device.doll.mute import STATE_FILE
    from device.stt.auto import create_transcriber
    from hardware import PushToTalkButton, StatusLight, make_pin_factory
    from tts.engines import create_engine

    if config.audio.capture_rate != config.stt.sample_rate:
        raise CommandError(
            f"audio.capture_rate ({config.audio.capture_rate} Hz) must equal stt.sample_rate "
            f"({config.stt.sample_rate} Hz): set both to 16000"
        )
    debug = bool(getattr(args, "debug", False))
    with contextlib.ExitStack() as stack:
        # Fast checks first: no GPIO or no sound card should not wait for the models to load.
        factory = make_pin_factory(config.hardware.pin_factory)
        light = stack.enter_context(StatusLight(config.hardware.led, pin_factory=factory))
        button = stack.enter_context(PushToTalkButton(config.hardware, pin_factory=factory))
        backend = audio.load_portaudio()
        audio_io.find_device(backend, config.audio.input_device, "input")
        audio_io.find_device(backend, config.audio.output_device, "output")
        client = stack.enter_context(server_client(config))
        engine = create_engine(config.tts)
        transcriber = create_transcriber(config.stt, debug=debug)
        speaker = audio_io.Speaker(config.audio, backend=backend)
        doll = Doll(
            mic=audio_io.Microphone(config.audio, backend=backend),
            speaker=speaker,
            transcriber=transcriber,
            engine=engine,
            client=client,
            light=light,
            button=button,
            options=DollOptions(
                settings=config.loop,
                conversation=config.client.conversation,
                tts_volume=config.tts.volume,
                sentence_gap_ms=config.tts.sentence_gap_ms,
                stt_chunk_ms=config.stt.chunk_ms,
                send_audio=config.client.send_audio,
                mute_file=config.server.data_dir / STATE_FILE,
            ),
            canceller=_echo_canceller(config, speaker),
            wake=_wake_templates(config),
        )
        asyncio.run(_until_signal(doll))
    return 0


def _echo_canceller(config, speaker):
    """The echo canceller barge-in by voice needs; None (the button alone stops him) when it is
    not wanted or cannot load, which is said."""
    from device.doll.echo import EchoCanceller
    from device.errors import AudioDeviceError

    if config.loop.barge_in.by != "voice":
        return None
    try:
        return EchoCanceller(speaker, config.audio.capture_rate)
    except AudioDeviceError as exc:
        _LOGGER.error("%s; until then only the button stops him", exc)
        return None


def _wake_templates(config):
    """Her enrolled wake phrase when ``loop.wake.enabled``; None (the button alone starts a turn)
    when it is off or not enrolled, which is said."""
    from device.cli.wake import wake_dir
    from device.doll.wake import Enrolment, WakeEnrolmentError

    if not config.loop.wake.enabled:
        return None
    try:
        enrolment = Enrolment.load(wake_dir(config))
    except WakeEnrolmentError as exc:
        _LOGGER.error("%s; until then only the button starts a turn", exc)
        return None
    _LOGGER.info("listening for the wake phrase %r (%d recordings)", enrolment.phrase, len(enrolment.clips))
    return enrolment.templates()


async def _until_signal(doll) -> None:
    loop = asyncio.get_running_loop()
    handled = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(sig, doll.shutdown)
            handled.append(sig)
    running = asyncio.create_task(doll.run_forever())
    alive = asyncio.create_task(_notify_when_ready(doll))
    try:
        await running
    finally:
        alive.cancel()
        for sig in handled:
            loop.remove_signal_handler(sig)


async def _notify_when_ready(doll) -> None:
    """Tell systemd the doll is up (Type=notify), then feed its watchdog from this loop."""
    from inference_server import sd_notify

    await doll.ready.wait()
    sd_notify.ready("waiting for the button")
    await sd_notify.keep_alive()


# --- chacha test ---------------------------------------------------------------------------


def test_hardware(args: Namespace, config) -> int:
    """Try one part by itself: ``args.part`` is leds, button, mic or speaker."""
    from device.cli.errors import CommandError

    seconds = getattr(args, "seconds", None)
    match args.part:
        case "leds":
            _test_leds(config, seconds or _LED_SECONDS)
        case "button":
            _test_button(config, seconds or _BUTTON_SECONDS)
        case "mic":
            asyncio.run(_test_mic(config, seconds or _MIC_SECONDS))
        case "speaker":
            asyncio.run(_test_speaker(config))
        case other:
            raise CommandError(f"unknown part {other!r}: choose leds, button, mic or speaker")
    return 0


def _test_leds(config, seconds: float) -> None:
    from device.doll.states import DollState
    from hardware import StatusLight, make_pin_factory

    led = config.hardware.led
    if led.kind == "none":
        print("hardware.led.kind is 'none': there is no light to test")
        return
    factory = make_pin_factory(config.hardware.pin_factory)
    with StatusLight(led, pin_factory=factory) as light:
        where = (
            f"GPIO{led.pin}" if led.kind == "single" else f"GPIO{led.red_pin}/{led.green_pin}/{led.blue_pin}"
        )
        print(f"status light ({led.kind}, {where}): each state for {seconds:g} s", flush=True)
        for state in DollState:
            print(f"  {state.value:<10} {_STATE_WORDS.get(state.value, '')}", flush=True)
            light.show(state)
            time.sleep(seconds)
    print("done: the light is off")


def _test_button(config, seconds: float) -> None:
    from hardware import PushToTalkButton, make_pin_factory

    hw = config.hardware
    factory = make_pin_factory(hw.pin_factory)
    with PushToTalkButton(hw, pin_factory=factory) as button:
        button.on_press = lambda: print("press", flush=True)
        button.on_release = lambda held_s: print(f"release (held {held_s:.2f} s)", flush=True)
        button.on_long_press = lambda: print(f"long press (held {hw.hold_s:g} s)", flush=True)
        print(
            f"press the button on GPIO{hw.button_pin} (header pin to ground); "
            f"watching for {seconds:g} s, long press after {hw.hold_s:g} s",
            flush=True,
        )
        time.sleep(seconds)
    print("done")


async def capture(config, seconds: float, backend=None) -> np.ndarray:
    """``seconds`` of the doll's microphone (``audio.input_device``, at ``audio.capture_rate``);
    a card that gives nothing for 2 s is an AudioDeviceError that says what to check."""
    from device import audio
    from device.doll import audio_io
    from device.errors import AudioDeviceError

    mic = audio_io.Microphone(config.audio, backend=backend or audio.load_portaudio())
    wanted = round(seconds * mic.sample_rate)
    blocks: list[np.ndarray] = []
    ears = mic.listen()
    mic.start()
    try:
        got = 0
        while got < wanted:
            try:
                block = await asyncio.wait_for(ears.read(), 2.0)
            except TimeoutError:
                raise AudioDeviceError(
                    "the microphone gave no audio for 2 s: check `arecord -l` and audio.input_device"
                ) from None
            if block is not None:
                blocks.append(block)
                got += len(block)
    finally:
        mic.stop()
    return np.concatenate(blocks)[:wanted]


async def _test_mic(config, seconds: float) -> None:
    from device import audio

    backend = audio.load_portaudio()
    print(f"recording {seconds:g} s: say something", flush=True)
    samples = await capture(config, seconds, backend)
    peak, rms = audio.peak_dbfs(samples), audio.rms_dbfs(samples)
    print(f"level: peak {peak:.1f} dBFS, RMS {rms:.1f} dBFS")
    if peak < -40:
        print("that is very quiet: raise the capture level (`alsamixer`, F4) or speak closer")
    elif peak > -1:
        print("that clips: lower the capture level (`alsamixer`, F4)")
    print("playing it back", flush=True)
    await _play(config, backend, [(samples, config.audio.capture_rate)])


async def _test_speaker(config) -> None:
    from device import audio
    from tts.engines import create_engine, speak

    rate = 48000
    t = np.arange(rate) / rate
    tone = 0.25 * np.sin(2 * np.pi * 440 * t)
    fade = round(0.01 * rate)
    tone[:fade] *= np.linspace(0, 1, fade)
    tone[-fade:] *= np.linspace(1, 0, fade)
    engine = create_engine(config.tts)
    sentences = [
        (s.samples, s.sample_rate) for s in speak(engine, SPEAKER_TEST_LINE, volume=config.tts.volume)
    ]
    print("playing a 440 Hz tone for 1 s, then 차차's voice", flush=True)
    await _play(config, audio.load_portaudio(), [(audio.to_int16(tone), rate), *sentences])
    print("done")


async def _play(config, backend, pieces: list[tuple[np.ndarray, int]]) -> None:
    from device.doll import audio_io

    speaker = audio_io.Speaker(config.audio, backend=backend)
    speaker.start()
    try:
        for samples, rate in pieces:
            speaker.play(samples, rate)
        await speaker.drain()
    finally:
        speaker.close()
