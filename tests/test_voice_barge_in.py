# SPDX-License-Identifier: GPL-3.0-or-later
"""Barge-in by voice: while 차차 speaks in a simulated room (his speaker reaches the microphone
late, reverberant, louder than she is), her voice stops him as the button does, and what she
says is her next turn; his own voice, with nobody talking, never does.

The live doll on the simulated sound card and clock (tests/fakes/rig.py) with the real echo
canceller (WebRTC AEC3), real Vosk and Silero, espeak-ng, the real server with the real
google-genai SDK against the fake Gemini; every time is simulated.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from conftest import gemini_backend
from fakes.rig import Rig, run

from device.bench.fake_gemini import FakeGemini, Reply
from device.bench.simulated_audio import EchoPath
from device.doll.settings import BargeInSettings, LoopSettings
from device.doll.states import DollState
from inference_server.backends.phrasebook import PhrasebookBackend

pytestmark = pytest.mark.slow  # real Vosk

LONG_REPLY = [
    "진주야 오늘 학교에서 있었던 일을 처음부터 끝까지 하나도 빠짐없이 천천히 다 들려줄래? ",
    "나는 여기서 기다릴게. 오늘은 날씨가 참 좋아서 산책하기 딱 좋은 날이야. ",
    "저녁에는 같이 노래를 부르자. 네가 좋아하는 노래를 처음부터 끝까지 다 불러 줄게.",
]
VOICE = LoopSettings(barge_in=BargeInSettings(by="voice"))
QUIET_ROOM = EchoPath(
    delay_ms=60.0, gain_db=-10.0, rt60_s=0.4, distortion=0.1
)  # his echo 10 dB below her voice
LOUD_ROOM = EchoPath(delay_ms=60.0, gain_db=6.0, rt60_s=0.4, distortion=0.3)


def _his(server) -> list:
    return [t for t in server.chat.store.recent("jinju", 20) if t.role == "model"]


def _hers(server) -> list[str]:
    return [t.text for t in server.chat.store.recent("jinju", 20) if t.role == "user"]


@contextlib.contextmanager
def _server_with_gemini(start_server, tmp_path, phrasebook, *replies: list[str]):
    """The real server, Gemini (the fake, over the real SDK) answering ``replies`` in turn."""
    with FakeGemini() as fake:
        for reply in replies:
            fake.push(Reply.stream(reply))
        yield start_server(
            gemini_backend(fake.base_url), PhrasebookBackend(phrasebook), data_dir=tmp_path / "d"
        )


def _first_syllable(speech: np.ndarray) -> int:
    """The sample where her first syllable begins (the recording's leading silence aside)."""
    return int(np.flatnonzero(np.abs(speech.astype(np.int32)) > 1000)[0])


def test_her_voice_stops_him_and_is_her_next_turn(
    start_server, token, tmp_path, transcriber, engine, speech, phrasebook
):
    with _server_with_gemini(start_server, tmp_path, phrasebook, LONG_REPLY, ["응, 듣고 있어."]) as server:

        async def scenario():
            async with Rig(
                server.url, token, transcriber, engine, settings=VOICE, echo=QUIET_ROOM, cancel_echo=True
            ) as rig:
                spoke = await rig.spoken_turn(speech)
                await rig.sleep(2.5)  # he is well into his first sentence
                assert rig.doll.state is DollState.SPEAKING and rig.speaker.playing
                began = rig.say(speech)  # no press: she just talks over him
                stopped = await rig.until_state(DollState.LISTENING, 1.5)
                assert not rig.button.is_pressed
                await rig.until_state(DollState.THINKING, 15.0)
                await rig.until_state(DollState.SPEAKING, 15.0)
                await rig.until_state(DollState.IDLE, 30.0)
                await rig.until(lambda: _his(server)[0].source == "interrupted", "the cut reported", 5.0)
                return rig, spoke, began, stopped

        rig, spoke, began, stopped = run(scenario())
    first_sound = rig.fake.delivered_at(_first_syllable(speech) + len(speech))
    assert first_sound is not None and began < first_sound < stopped
    assert stopped - first_sound <= 0.3, "she stops him within 300 ms of her first syllable"
    assert not rig.fake.sounding(stopped + 0.04, stopped + 1.0), (
        "nothing of him after the stop (a block aside)"
    )
    first, second = [r for r in rig.doll.reports if r.transcript is not None][:2]
    assert "barged_in" in rig.doll.reports[0].marks
    # Her sentence is one turn, heard to its end; its first words were spoken over him (what the
    # canceller leaves of them is fainter), so they may be heard less well than alone.
    assert second.transcript.text.split()[-3:] == first.transcript.text.split()[-3:]
    assert len(second.transcript.text) >= 0.7 * len(first.transcript.text)
    assert _hers(server) == [first.transcript.text, second.transcript.text]
    his = _his(server)
    assert his[0].source == "interrupted" and his[0].text != "".join(LONG_REPLY).strip()
    assert his[1].text == "응, 듣고 있어."


@pytest.mark.parametrize(
    "room",
    [LOUD_ROOM, EchoPath(delay_ms=100.0, gain_db=10.0, rt60_s=0.6, distortion=0.5)],
    ids=["loud", "louder-reverberant"],
)
def test_his_own_voice_never_stops_him(
    start_server, token, tmp_path, transcriber, engine, speech, phrasebook, room
):
    with _server_with_gemini(start_server, tmp_path, phrasebook, LONG_REPLY) as server:

        async def scenario():
            async with Rig(
                server.url, token, transcriber, engine, settings=VOICE, echo=room, cancel_echo=True
            ) as rig:
                spoke = await rig.spoken_turn(speech)
                await rig.until_state(DollState.IDLE, 60.0)
                return rig, spoke

        rig, spoke = run(scenario())
    assert DollState.LISTENING not in rig.states()[rig.states().index(DollState.SPEAKING) :]
    assert rig.doll.turns == 1 and "barged_in" not in rig.doll.reports[0].marks
    played_s = sum(len(b.samples) / b.rate for b in rig.fake.sounding(spoke))
    assert played_s > 10.0, "his whole long reply played"
    assert _his(server)[0].source != "interrupted"


@pytest.mark.parametrize("how", ["button-only", "no-canceller"])
def test_without_voice_barge_in_only_the_button_stops_him(
    start_server, token, tmp_path, transcriber, engine, speech, phrasebook, how
):
    settings = None if how == "button-only" else VOICE  # the default; voice with no canceller
    with _server_with_gemini(start_server, tmp_path, phrasebook, LONG_REPLY) as server:

        async def scenario():
            async with Rig(
                server.url, token, transcriber, engine, settings=settings, cancel_echo=how == "button-only"
            ) as rig:
                await rig.spoken_turn(speech)
                await rig.sleep(1.0)
                rig.say(speech)
                await rig.until_state(DollState.IDLE, 60.0)
                return rig

        rig = run(scenario())
    assert rig.doll.turns == 1
    assert _his(server)[0].source != "interrupted"
