# SPDX-License-Identifier: GPL-3.0-or-later
"""The live doll, end to end, with only the machine's missing parts faked.

Real: the loop, Vosk (loaded once for the module), the Silero VAD, espeak-ng, the inference
server (phrasebook backend, over HTTP on loopback), gpiozero's button and LED code.
Fake: the pins (gpiozero's MockFactory, PWM-capable) and the sound card
(tests/fakes/sounddevice.py: the sample recording goes into the microphone, the speaker
records every block it plays with its time). Time is simulated: the card, the button, the
light and the doll share one clock, and every assertion is in its seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import signal
import socket
import threading
import time
from argparse import Namespace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
from fakes.rig import BUTTON_PIN, LED_PIN, REAL_LIMIT_S, Rig, duration_s, run
from fakes.sounddevice import FakeSoundDevice

from device import audio
from device.cli import live as live_commands
from device.config import ChachaConfig
from device.doll import conversation
from device.doll.loop import OFFLINE_LINE
from device.doll.settings import AudioSettings, LoopSettings
from device.doll.states import DollState
from device.stt import auto as recognizers
from device.stt.auto import create_transcriber
from device.stt.settings import STTSettings
from hardware import HardwareSettings
from hardware.clock import MONOTONIC
from inference_server.api import InferenceClient

pytestmark = pytest.mark.slow  # real Vosk

# --- a whole turn -------------------------------------------------------------------------------


def test_press_speak_release_thinking_speaking_idle(
    start_server, token, transcriber, engine, speech, caplog
) -> None:
    """The whole turn, held 4.5 simulated seconds (well past hold_s while she talks)."""
    caplog.set_level(logging.INFO, logger="device.doll")
    server = start_server()
    # Long silence_ms: here the release ends listening, not the VAD.
    settings = LoopSettings(end_of_turn="fixed", silence_ms=3000)

    async def scenario():
        async with Rig(server.url, token, transcriber, engine, settings=settings) as rig:
            assert rig.doll.state is DollState.IDLE and rig.light.state is DollState.IDLE
            pressed = await rig.press()
            await rig.until_state(DollState.LISTENING, 0.1)
            assert rig.light.state is DollState.LISTENING and rig.led == 1.0  # solid on
            opened = await rig.listening_with_open_ears()
            earcon = rig.fake.sounding(pressed)
            assert 0.1 <= duration_s(earcon) <= 0.2, "the listening earcon, ~120 ms"
            assert opened - pressed < 0.3
            rig.say(speech)
            await rig.until(lambda: rig.fake.pending_input == 0, "her sentence to be heard", 4.5)
            await rig.sleep(0.3)
            assert rig.doll.state is DollState.LISTENING  # held for > hold_s while talking: no long press
            assert rig.clock.now() - pressed > 4.0
            released = await rig.release()
            thinking = await rig.until_state(DollState.THINKING, 0.1)
            assert rig.light.state is DollState.THINKING
            speaking = await rig.until_state(DollState.SPEAKING)
            assert rig.light.state is DollState.SPEAKING
            idle = await rig.until_state(DollState.IDLE)
            return rig, pressed, released, thinking, speaking, idle

    rig, pressed, released, thinking, speaking, idle = run(scenario())
    assert rig.states() == [
        DollState.IDLE,
        DollState.LISTENING,
        DollState.THINKING,
        DollState.SPEAKING,
        DollState.IDLE,
    ]
    assert rig.report.listen_end == "release"
    assert rig.report.transcript is not None and rig.report.transcript.text
    assert rig.report.backend == "phrasebook" and rig.report.reply
    reply = rig.fake.sounding(released, idle)
    assert duration_s(reply) > 0.5, "the reply reached the speaker"
    assert reply[0].time >= speaking  # nothing sounds before the doll says it speaks
    assert all(block.time <= idle for block in rig.fake.sounding(released))  # ... nor after it is idle
    messages = [r.getMessage() for r in caplog.records]
    assert "listening" in messages
    assert any(m.startswith("heard: ") for m in messages)
    assert any(m.startswith("thinking") for m in messages)
    assert any(m.startswith("speaking") for m in messages)
    assert any(m.startswith("reply: ") and "phrasebook" in m for m in messages)
    assert rig.light.state is None and rig.led == 0.0  # off after shutdown
    assert rig.fake.settle_overruns == 0


def _his_last(server):
    """His latest reply as the server keeps it."""
    return [t for t in server.chat.store.recent("jinju", 10) if t.role == "model"][-1]


def test_press_while_speaking_stops_the_reply_at_once(
    start_server, token, transcriber, engine, speech
) -> None:
    server = start_server()
    settings = LoopSettings(earcons=False)  # so that any sound after the press is stale reply

    async def scenario():
        # hold_s: the second press is held silently for 1.5 s, which must not be a long press here.
        async with Rig(server.url, token, transcriber, engine, settings=settings, hold_s=10.0) as rig:
            await rig.press()
            await rig.listening_with_open_ears()
            rig.say(speech)
            await rig.until_state(DollState.THINKING, 5.0)  # the VAD ended it: she is still holding
            await rig.release()
            await rig.until_state(DollState.SPEAKING)
            await rig.sleep(0.3)
            assert rig.speaker.playing, "the reply is longer than 0.3 s"
            pressed = await rig.press()
            await rig.until_state(DollState.LISTENING, 0.1)
            await rig.sleep(1.5)  # anything stale would play now
            released = await rig.release()
            await rig.until_state(DollState.IDLE, 0.5)
            # The doll told the server where she cut him off: his reply is on record as interrupted.
            await rig.until(lambda: _his_last(server).source == "interrupted", "the cut reported", 5.0)
            return rig, pressed, released

    rig, pressed, released = run(scenario())
    before = rig.fake.sounding(pressed - 0.2, pressed)
    assert before, "the reply was playing when she pressed"
    assert not rig.fake.sounding(pressed), "nothing of the old reply after the press, ever"
    assert rig.states()[-3:] == [DollState.SPEAKING, DollState.LISTENING, DollState.IDLE]
    assert rig.report.listen_end == "release"  # the second, silent turn


def test_after_a_barge_in_the_history_keeps_the_sentences_she_heard_begin_not_those_only_queued(
    start_server, token, tmp_path, transcriber, engine, speech, phrasebook
) -> None:
    """His whole reply is synthesised and queued while its long first sentence still sounds;
    she presses then: only that sentence stays in the history (interrupted), not the two
    queued behind it that she never heard."""
    from conftest import gemini_backend

    from device.bench.fake_gemini import FakeGemini, Reply
    from inference_server.backends.phrasebook import PhrasebookBackend

    first = "진주야 오늘 학교에서 있었던 일을 처음부터 끝까지 하나도 빠짐없이 천천히 다 들려줄래?"
    with FakeGemini() as fake:
        fake.push(Reply.stream([first + " ", "나는 여기서 기다릴게. ", "정말이야."]))
        gemini = gemini_backend(fake.base_url)
        server = start_server(gemini, PhrasebookBackend(phrasebook), data_dir=tmp_path / "d")
        settings = LoopSettings(earcons=False)

        async def scenario():
            async with Rig(server.url, token, transcriber, engine, settings=settings, hold_s=10.0) as rig:
                await rig.press()
                await rig.listening_with_open_ears()
                rig.say(speech)
                await rig.until_state(DollState.THINKING, 5.0)
                await rig.release()
                spoke = await rig.until_state(DollState.SPEAKING)

                # Time stands still once the reply is whole (all three sentences queued) and his
                # first sentence sounds: the reply may be whole before its first sound is played.
                def whole() -> bool:
                    current = rig.doll.current
                    return (
                        current is not None and current.backend == "gemini" and bool(rig.fake.sounding(spoke))
                    )

                rig.stop_time_when(whole)
                await rig.until(whole, "the whole reply queued while his first sentence sounds", 2.0)
                assert rig.speaker.queued - rig.speaker.handed > 0 and rig.fake.sounding(spoke)
                pressed = await rig.press()
                rig.resume()
                await rig.until(lambda: _his_last(server).source == "interrupted", "the cut reported", 5.0)
                await rig.release()
                return spoke, pressed

        spoke, pressed = run(scenario())
    kept = _his_last(server)
    assert pressed - spoke < 2.0, "she pressed during the first sentence"
    assert kept.text == first, kept


@pytest.mark.realtime
def test_press_while_speaking_stops_the_reply_within_100_ms_of_real_time(
    start_server, token, transcriber, engine, speech
) -> None:
    """The same on the real clock: her press silences him within 0.1 s of wall-clock time."""
    server = start_server()
    settings = LoopSettings(earcons=False)

    async def scenario():
        async with Rig(
            server.url, token, transcriber, engine, settings=settings, hold_s=10.0, clock=MONOTONIC
        ) as rig:
            await rig.press()
            await rig.listening_with_open_ears()
            rig.say(speech)
            await rig.until_state(DollState.THINKING)
            await rig.release()
            await rig.until_state(DollState.SPEAKING)
            await asyncio.sleep(0.3)
            assert rig.speaker.playing, "the reply is longer than 0.3 s"
            pressed = time.monotonic()
            rig.factory.pin(BUTTON_PIN).drive_low()
            await rig.until_state(DollState.LISTENING)
            await asyncio.sleep(0.5)  # anything stale would play now
            await rig.release()
            await rig.until_state(DollState.IDLE)
            return rig, pressed

    rig, pressed = run(scenario())
    after = rig.fake.sounding(pressed)
    last_sound = (after[-1].time - pressed) if after else 0.0
    print(f"\npress → last reply block {1000 * last_sound:.0f} ms ({len(after)} block(s) after the press)")
    assert last_sound <= 0.1
    assert not rig.fake.sounding(pressed + 0.1)


@pytest.mark.parametrize(
    ("end_of_turn", "low", "high"),
    [
        # Her speech ends ~3.4 s into the recording ("… 걸어갔다"): a finished sentence, so the
        # adaptive end of turn waits min_silence_ms (0.3 s) ...
        ("adaptive", 3.6, 3.9),
        # ... where the fixed one waits silence_ms (0.7 s) whatever she said.
        ("fixed", 3.9, 4.4),
    ],
)
def test_vad_silence_ends_listening_while_the_button_is_held(
    start_server, token, transcriber, engine, speech, end_of_turn, low, high
) -> None:
    server = start_server()
    settings = LoopSettings(end_of_turn=end_of_turn, silence_ms=700)

    async def scenario():
        async with Rig(server.url, token, transcriber, engine, settings=settings) as rig:
            return rig, await rig.held_turn(speech, 6.0)

    rig, heard_for = run(scenario())
    assert rig.report.listen_end == "silence"
    assert low < heard_for < high, heard_for
    assert DollState.SPEAKING in rig.states()


AFTER_HAMYEONSEO_S = 2.01  # Vosk's word timing: "… 피하면서" ends here in the sample


def paused(speech: np.ndarray, at_s: float, pause_s: float) -> np.ndarray:
    """The sample with ``pause_s`` of its own quietest noise spliced in at ``at_s``."""
    cut = int(at_s * 16000)
    quiet = speech[:4800]  # the recording's first 0.3 s: room noise before she speaks
    reps = int(pause_s * 16000) // len(quiet) + 1
    pause = np.tile(quiet, reps)[: int(pause_s * 16000)]
    return np.concatenate([speech[:cut], pause, speech[cut:]])


@pytest.mark.parametrize(("end_of_turn", "cut"), [("adaptive", False), ("fixed", True)])
def test_a_pause_mid_sentence_ends_the_turn_only_when_fixed(
    start_server, token, transcriber, engine, speech, end_of_turn, cut
) -> None:
    """A 900 ms breath after "피하면서" (a connective: more is coming) is not the end of her turn."""
    server = start_server()
    utterance = paused(speech, AFTER_HAMYEONSEO_S, 0.9)
    settings = LoopSettings(end_of_turn=end_of_turn, silence_ms=700)

    async def scenario():
        async with Rig(server.url, token, transcriber, engine, settings=settings) as rig:
            return rig, await rig.held_turn(utterance, 8.0)

    rig, heard_for = run(scenario())
    transcript = rig.report.transcript
    if cut:
        assert heard_for < AFTER_HAMYEONSEO_S + 0.9, heard_for  # ended inside the pause
        assert "걸어" not in transcript.text
    else:
        resumed = AFTER_HAMYEONSEO_S + 0.9
        assert heard_for > resumed + 1.0, heard_for  # she finished her sentence
        assert "걸어" in transcript.text, transcript.text


def test_max_utterance_caps_listening(start_server, token, transcriber, engine, speech) -> None:
    server = start_server()
    settings = LoopSettings(max_utterance_s=1.5, end_of_turn="fixed", silence_ms=3000)

    async def scenario():
        async with Rig(server.url, token, transcriber, engine, settings=settings) as rig:
            return rig, await rig.held_turn(speech, 2.0)

    rig, heard_for = run(scenario())
    assert rig.report.listen_end == "max_length"
    assert 1.45 < heard_for < 1.6, heard_for  # 1.5 s of audio, to the block
    assert rig.report.transcript is not None


def test_a_tap_without_speech_goes_back_to_idle_quietly(start_server, token, transcriber, engine) -> None:
    server = start_server()

    async def scenario():
        async with Rig(server.url, token, transcriber, engine) as rig:
            pressed = await rig.press()
            await rig.listening_with_open_ears()
            rig.resume()
            await rig.sleep(0.3)
            await rig.release()
            await rig.until_state(DollState.IDLE, 0.1)
            await rig.sleep(0.3)
            return rig, pressed

    rig, pressed = run(scenario())
    assert rig.states() == [DollState.IDLE, DollState.LISTENING, DollState.IDLE]
    assert duration_s(rig.fake.sounding(pressed)) < 0.2  # only the listening earcon


# --- a part that fails to start ------------------------------------------------------------------


def test_a_part_that_fails_to_start_is_shown_and_tried_again_with_backoff(
    start_server, token, transcriber, engine, caplog
) -> None:
    """No microphone at first: the doll logs it, shows ERROR with the error earcon, tries again
    after 1 s, then 2 s, and runs once it opens; `chacha run` does not end."""
    from device.errors import AudioDeviceError

    server = start_server()

    async def scenario():
        rig = Rig(server.url, token, transcriber, engine)
        tries: list[float] = []
        opened = rig.mic.start

        def start() -> None:
            tries.append(rig.clock.now())
            if len(tries) < 3:
                raise AudioDeviceError("no sound card with an input found")
            opened()

        rig.mic.start = start
        async with rig:
            await rig.until(
                lambda: rig.doll.state is DollState.IDLE and len(tries) == 3, "the third try", 10.0
            )
            assert rig.light.state is DollState.IDLE
            return rig, tries

    rig, tries = run(scenario())
    assert rig.states() == [DollState.ERROR, DollState.ERROR, DollState.IDLE]
    first, second = tries[1] - tries[0], tries[2] - tries[1]  # the earcon, then 1 s; then 2 s
    assert 1.0 <= first < 1.8, first
    assert 2.0 <= second < 2.4, second
    assert rig.fake.sounding(tries[0], tries[1]), "the error earcon"
    assert "starting the doll failed: no sound card with an input found" in caplog.text


# --- long press ------------------------------------------------------------------------------


def test_long_press_repeats_the_last_reply(start_server, token, transcriber, engine, speech) -> None:
    server = start_server()
    settings = LoopSettings(earcons=False)

    async def scenario():
        async with Rig(server.url, token, transcriber, engine, settings=settings, hold_s=0.6) as rig:
            # Nothing said yet: a long press says so.
            pressed = await rig.press()
            await rig.until(lambda: rig.doll.turns == 2, "the long press", 1.0)
            held = rig.doll.current.pressed_at - pressed
            assert 0.6 <= held < 0.63, held  # the long press fired at hold_s, to the block
            await rig.until_state(DollState.SPEAKING)
            await rig.release()
            idle = await rig.until_state(DollState.IDLE)
            nothing_yet = duration_s(rig.fake.sounding(pressed, idle))
            # A real turn: she starts at once (the recording's first 0.5 s are silence), so the
            # VAD hears her before hold_s and the press stays a press.
            await rig.press()
            await rig.listening_with_open_ears()
            rig.say(speech[8000:])
            await rig.until_state(DollState.THINKING, 5.0)
            await rig.release()
            started = await rig.until_state(DollState.SPEAKING)
            idle = await rig.until_state(DollState.IDLE)
            reply = rig.fake.played_audio(started - 0.05, idle)
            # The long press: the same audio again.
            pressed = await rig.press()
            await rig.until_state(DollState.SPEAKING, 1.0)
            await rig.release()
            again_idle = await rig.until_state(DollState.IDLE)
            again = rig.fake.played_audio(pressed, again_idle)
            return rig, nothing_yet, reply, again

    rig, nothing_yet, reply, again = run(scenario())
    assert nothing_yet > 0.5  # NOTHING_TO_REPEAT was spoken
    assert [r for r in rig.doll.reports if r.reply], "the real turn's reply"
    loud = 64

    def sounding_s(samples: np.ndarray) -> float:
        idx = np.flatnonzero(np.abs(samples.astype(np.int32)) > loud)
        return (idx[-1] - idx[0]) / 48000 if len(idx) else 0.0

    assert sounding_s(again) == pytest.approx(sounding_s(reply), abs=0.05)
    assert [r.listen_end for r in rig.doll.reports if r.listen_end] == [
        "silence"
    ]  # long presses did not listen


def test_long_press_status_says_the_server_answers(
    start_server, token, transcriber, engine, monkeypatch
) -> None:
    server = start_server()
    settings = LoopSettings(long_press="status")
    said: list[str] = []
    original = conversation.status_line

    async def spy(client, last_backend):
        said.append(await original(client, last_backend))
        return said[-1]

    monkeypatch.setattr(conversation, "status_line", spy)

    async def scenario():
        async with Rig(server.url, token, transcriber, engine, settings=settings, hold_s=0.5) as rig:
            await rig.press()
            await rig.until_state(DollState.SPEAKING)
            await rig.release()
            await rig.until_state(DollState.IDLE)
            return rig

    rig = run(scenario())
    assert said == ["차차 서버는 잘 연결돼 있어. 지금은 오프라인 말 모음이 대답할 거야."]
    assert rig.states() == [
        DollState.IDLE,
        DollState.LISTENING,
        DollState.THINKING,
        DollState.SPEAKING,
        DollState.IDLE,
    ]


# --- the server goes away and comes back -------------------------------------------------------


class Proxy:
    """A TCP forwarder on a fixed port that can be switched on (to a target) and off."""

    def __init__(self) -> None:
        self._placeholder = socket.socket()
        self._placeholder.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        self.port = self._placeholder.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: asyncio.Server | None = None

    async def forward_to(self, target_url: str) -> None:
        host, port = target_url.removeprefix("http://").split(":")
        self._placeholder.close()

        async def pipe(reader, writer):
            with contextlib.suppress(ConnectionError):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            writer.close()

        async def handle(client_reader, client_writer):
            server_reader, server_writer = await asyncio.open_connection(host, int(port))
            await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))

        self._server = await asyncio.start_server(handle, "127.0.0.1", self.port, reuse_address=True)

    async def close(self) -> None:
        self._placeholder.close()
        if self._server is not None:
            self._server.close()


def test_server_down_offline_line_error_light_then_recovers_by_itself(
    start_server, token, transcriber, engine, speech
) -> None:
    settings = LoopSettings(server_retry_initial_s=0.2, server_retry_max_s=0.4, earcons=False)

    async def scenario():
        proxy = Proxy()
        try:
            async with Rig(proxy.url, token, transcriber, engine, settings=settings) as rig:
                await rig.until_state(DollState.ERROR, 2.0)  # the first health check failed
                assert rig.light.state is DollState.ERROR
                # A press in ERROR still tries a turn.
                await rig.press()
                await rig.listening_with_open_ears()
                rig.say(speech)
                thinking = await rig.until_state(DollState.THINKING, 5.0)
                await rig.release()
                await rig.until_state(DollState.ERROR)
                await rig.until(lambda: not rig.speaker.playing, "the offline line to finish")
                offline = rig.fake.sounding(thinking)
                assert rig.doll.state is DollState.ERROR and rig.doll.server_down
                # The error pattern: two quick blinks, then a pause, every 1.2 s.
                led = rig.factory.pin(LED_PIN)
                levels = []
                end = rig.clock.now() + 2.4
                while rig.clock.now() < end:
                    levels.append(led.state)
                    await rig.sleep(0.03)
                blinks = sum(1 for a, b in zip(levels, levels[1:], strict=False) if a < 0.5 <= b)
                # The server comes up on the same URL: the doll notices by itself.
                server = start_server()
                await proxy.forward_to(server.url)
                recovered = await rig.until_state(DollState.IDLE)
                assert rig.light.state is DollState.IDLE and not rig.doll.server_down
                # ... and the next press gets a real reply.
                await rig.spoken_turn(speech, within_s=5.0)
                await rig.until_state(DollState.IDLE)
                return rig, offline, blinks, levels, recovered
        finally:
            await proxy.close()

    rig, offline, blinks, levels, recovered = run(scenario())
    assert duration_s(offline) > 2.0, f"the offline line ({OFFLINE_LINE}) was spoken"
    assert blinks == 4, levels  # two quick blinks per 1.2 s, over 2.4 s
    assert rig.report.backend == "phrasebook"
    assert rig.states()[-3:] == [DollState.THINKING, DollState.SPEAKING, DollState.IDLE]


# --- hybrid hearing: Whisper reads ahead at her pauses --------------------------------------------


@pytest.fixture(scope="module")
def hybrid():
    return create_transcriber(STTSettings(engine="hybrid"))


def test_whisper_reads_at_each_pause_and_drops_the_pass_she_talked_over(
    start_server, token, hybrid, engine, speech
) -> None:
    """Whisper starts at the 900 ms breath after "피하면서", she goes on, that pass is dropped; the
    pass started when she finished is the final text, with no pass left to start at the end."""
    server = start_server()
    passes_before = hybrid.inner.passes

    async def scenario():
        async with Rig(server.url, token, hybrid, engine) as rig:
            await rig.press()
            await rig.listening_with_open_ears()
            rig.say(paused(speech, AFTER_HAMYEONSEO_S, 0.9))
            await rig.until_state(DollState.THINKING, 8.0)
            await rig.release()
            await rig.until_state(DollState.IDLE)
            return rig, rig.report

    rig, hearing = run(scenario())
    assert hearing.pauses == 2 and hearing.resumptions == 1  # the breath, then the end
    assert hybrid.inner.passes - passes_before == 2  # one pass a pause: none more at the end
    transcript = rig.report.transcript
    assert transcript.engine == "hybrid"
    assert "걸어" in transcript.text, transcript.text  # the whole sentence, not the first pass's half
    assert rig.report.backend == "phrasebook"


def gated(hybrid, gate: threading.Event):
    """The module's hybrid recogniser with its Whisper held back until ``gate`` opens."""
    from device.stt.cleanup import CleanTranscriber
    from device.stt.hybrid import HybridTranscriber

    whisper = GatedWhisper(hybrid.inner.whisper, gate)
    return CleanTranscriber(HybridTranscriber(hybrid.inner.vosk, whisper), hybrid.choice), whisper


class GatedWhisper:
    """The real Whisper, held back until ``gate`` opens: what must not wait for it, does not."""

    def __init__(self, whisper, gate: threading.Event) -> None:
        self._whisper = whisper
        self._gate = gate
        self.read_after_gate = 0

    def transcribe(self, samples: np.ndarray):
        assert self._gate.wait(REAL_LIMIT_S), "the gate never opened"
        self.read_after_gate += 1
        return self._whisper.transcribe(samples)


class TextRecordingClient(InferenceClient):
    """The real client, noting what each request carried."""

    sent: list[tuple[str, tuple[str, bytes] | None]]

    def chat(self, text, *, conversation, channel="doll", audio=None):
        self.sent.append((text, audio))
        return super().chat(text, conversation=conversation, channel=channel, audio=audio)


def stored_user_text(server_data: Path) -> str:
    from inference_server.store import ConversationStore

    turns = ConversationStore(server_data / "conversations.sqlite3").recent("jinju", 10)
    return [t for t in turns if t.role == "user"][-1].text


@pytest.mark.parametrize("gemini_up", [True, False])
def test_the_reply_starts_from_her_recording_when_gemini_hears_it_else_from_whispers_text(
    start_server, token, tmp_path, hybrid, engine, speech, phrasebook, gemini_up
) -> None:
    """Gemini up (it hears audio): the request leaves with her recording and Vosk's quick text
    while Whisper is still held back, and Whisper's text replaces the quick one in the history
    afterwards. Gemini without a key (the phrasebook answers): the doll waits for Whisper and
    sends its text alone."""
    from conftest import gemini_backend

    from device.bench.fake_gemini import FakeGemini, Reply
    from inference_server.backends.phrasebook import PhrasebookBackend

    gate = threading.Event()
    recogniser, whisper = gated(hybrid, gate)
    with FakeGemini() as fake:
        heard = "⟦그는 이리저리 피하면서 길 한 옆으로 걸어갔다⟧ "
        fake.push(Reply.stream([heard + "어디로 걸어갔는데? ", "궁금하다."]))
        gemini = gemini_backend(fake.base_url, api_key="test-key" if gemini_up else None)
        server = start_server(gemini, PhrasebookBackend(phrasebook), data_dir=tmp_path / "data")

        async def scenario():
            client = TextRecordingClient(server.url, token, timeout_s=10)
            client.sent = []
            async with Rig(server.url, token, recogniser, engine, client=client, send_audio="auto") as rig:
                await rig.press()
                await rig.listening_with_open_ears()
                rig.say(speech)
                if gemini_up:
                    # Gemini gets the request while Whisper has not read a thing yet.
                    await asyncio.to_thread(fake.wait_for_requests, 1, REAL_LIMIT_S)
                    assert whisper.read_after_gate == 0
                else:
                    await rig.until_state(DollState.THINKING, 5.0)
                gate.set()
                await rig.release()
                await rig.until_state(DollState.SPEAKING)
                await rig.until_state(DollState.IDLE)
                await rig.until(lambda: len(rig.doll.reports) == 1, "Whisper's text (the turn's report)")
                assert "transcribed" in rig.report.marks
                await rig.until(
                    lambda: stored_user_text(tmp_path / "data") == rig.report.transcript.text,
                    "Whisper's text in the history",
                )
                return rig, client.sent

        rig, sent = run(scenario())
    ((text, audio),) = sent
    draft, final = rig.report.draft, rig.report.transcript
    assert final.engine == "hybrid" and final.text and final.text != draft.text
    assert stored_user_text(tmp_path / "data") == final.text
    if gemini_up:
        assert rig.report.audio_mode and audio is not None and audio[0] == "audio/flac"
        assert text == draft.text  # Vosk's quick text went with the recording
        request = fake.requests[0].body["contents"][-1]["parts"]
        assert "inlineData" in request[0] and draft.text in request[1]["text"]
        assert rig.report.backend == "gemini"
        assert rig.report.marks["asked"] < rig.report.marks["transcribed"]
    else:
        assert not rig.report.audio_mode and audio is None
        assert text == final.text  # Whisper's text, and only text
        assert fake.requests == []
        assert rig.report.backend == "phrasebook"
        assert rig.report.marks["transcribed"] <= rig.report.marks["asked"]


def test_press_while_speaking_stops_the_reply_at_once_with_whisper_still_reading(
    start_server, token, tmp_path, hybrid, engine, speech, phrasebook
) -> None:
    """Barge-in with everything in flight: audio mode, Gemini streaming, Whisper held back."""
    from conftest import gemini_backend

    from device.bench.fake_gemini import FakeGemini, Reply
    from inference_server.backends.phrasebook import PhrasebookBackend

    gate = threading.Event()
    recogniser, whisper = gated(hybrid, gate)
    settings = LoopSettings(earcons=False)  # so that any sound after the press is stale reply
    long_reply = "진주야, 나 오늘 정말 긴 이야기를 하나 해 줄게. " * 3
    with FakeGemini() as fake:
        fake.push(Reply.stream(["⟦그는 걸어갔다⟧ ", long_reply]))
        server = start_server(gemini_backend(fake.base_url), PhrasebookBackend(phrasebook))

        async def scenario():
            async with Rig(
                server.url, token, recogniser, engine, settings=settings, hold_s=10.0, send_audio="auto"
            ) as rig:
                await rig.press()
                await rig.listening_with_open_ears()
                rig.say(speech)
                await rig.until_state(DollState.THINKING, 5.0)
                await rig.release()
                await rig.until_state(DollState.SPEAKING)
                await rig.sleep(0.3)
                assert rig.speaker.playing and whisper.read_after_gate == 0
                pressed = await rig.press()
                await rig.until_state(DollState.LISTENING, 0.1)
                gate.set()  # Whisper finishes while she holds the button
                await rig.sleep(1.5)  # anything stale would play now
                await rig.release()
                await rig.until_state(DollState.IDLE, 0.5)
                await rig.until(lambda: any(r.number == 1 for r in rig.doll.reports), "the cut turn's report")
                return rig, pressed

        rig, pressed = run(scenario())
    assert rig.fake.sounding(pressed - 0.2, pressed), "the reply was playing when she pressed"
    assert not rig.fake.sounding(pressed), "nothing of the old reply after the press, ever"
    assert rig.states()[-3:] == [DollState.SPEAKING, DollState.LISTENING, DollState.IDLE]
    assert next(r for r in rig.doll.reports if r.number == 1).audio_mode


# --- her recording for a server in audio mode ----------------------------------------------------


class RecordingClient(InferenceClient):
    """The real client, noting the audio it sends."""

    sent: list[tuple[str, bytes] | None]

    def chat(self, text, *, conversation, channel="doll", audio=None):
        self.sent.append(audio)
        return super().chat(text, conversation=conversation, channel=channel, audio=audio)


def test_send_audio_sends_her_recording_with_the_text(
    start_server, token, transcriber, engine, speech
) -> None:
    server = start_server()

    async def scenario():
        client = RecordingClient(server.url, token, timeout_s=10)
        client.sent = []
        async with Rig(server.url, token, transcriber, engine, client=client, send_audio="on") as rig:
            await rig.press()
            await rig.listening_with_open_ears()
            rig.say(speech)
            await rig.until_state(DollState.THINKING, 5.0)
            await rig.release()
            await rig.until_state(DollState.SPEAKING)
            await rig.until_state(DollState.IDLE)
            return client.sent

    (sent,) = run(scenario())
    mime, data = sent
    assert mime == "audio/flac"
    recording, rate = sf.read(io.BytesIO(data), dtype="int16")
    assert rate == 16000
    # her sentence and the 0.3 s of silence that ended it (a finished sentence: min_silence_ms)
    assert 3.6 < len(recording) / rate < 3.9
    assert np.abs(recording.astype(np.int32)).max() > 5000


# --- chacha run ---------------------------------------------------------------------------------


def test_chacha_run_starts_everything_and_stops_on_sigterm(transcriber, monkeypatch, caplog) -> None:
    """`chacha run` as the Pi runs it: in-process server, mock pins, fake card; SIGTERM ends it."""
    fake = FakeSoundDevice()
    monkeypatch.setattr(audio, "load_portaudio", lambda: fake)
    monkeypatch.setattr(recognizers, "create_transcriber", lambda settings, **kwargs: transcriber)
    caplog.set_level(logging.INFO, logger="device.doll")
    base = ChachaConfig()
    sections = {name: getattr(base, name) for name in type(base).model_fields}
    sections.update(audio=AudioSettings(), loop=LoopSettings(), hardware=HardwareSettings(pin_factory="mock"))
    config = SimpleNamespace(**sections)

    def stop_when_ready() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if any(record.getMessage().startswith("idle: ready") for record in list(caplog.records)):
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(0.05)

    previous = signal.signal(signal.SIGTERM, lambda *_: None)  # a stray SIGTERM must not end pytest
    threading.Thread(target=stop_when_ready, daemon=True).start()
    try:
        assert live_commands.run(Namespace(debug=False), config) == 0
    finally:
        signal.signal(signal.SIGTERM, previous)
    messages = [record.getMessage() for record in caplog.records]
    assert messages[-1] == "stopped"
    assert any(m.startswith("idle: ready") for m in messages)
    assert all(stream.closed for stream in fake.streams)
