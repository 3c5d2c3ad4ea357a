# SPDX-License-Identifier: GPL-3.0-or-later
"""Follow-up listening: after his reply has played to the end the doll keeps listening for
``loop.follow_up_s`` (the light on), so her next sentence needs no press; a quiet window, a
press, or a goodbye ends it.

The live doll on the simulated sound card and clock (tests/fakes/rig.py), real Vosk and Silero,
espeak-ng, the real server with the phrasebook over loopback; every time is simulated.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
from fakes.rig import Rig, run
from fakes.wiretap import Wiretap

from device.bench.simulated_audio import EchoPath
from device.doll.conversation import ECHO_GUARD_S, is_goodbye
from device.doll.mute import MuteSwitch
from device.doll.settings import LoopSettings
from device.doll.states import DollState

pytestmark = pytest.mark.slow  # real Vosk

WINDOW_S = 3.0


def _hers(server) -> list[str]:
    """Her turns as the server keeps them."""
    return [t.text for t in server.chat.store.recent("jinju", 20) if t.role == "user"]


async def _first_turn(rig: Rig, speech) -> float:
    """A pressed turn answered to its end; returns when the follow-up window opened (time
    stands still there, the microphone open, until the test lets it go on)."""
    await rig.spoken_turn(speech)
    rig.stop_time_when(lambda: rig.doll.turns == 2 and rig.mic.listeners > 0)
    return await rig.until(
        lambda: rig.doll.turns == 2 and rig.mic.listeners > 0, "the follow-up window", 30.0
    )


def test_after_his_reply_she_just_goes_on_talking(start_server, token, transcriber, engine, speech):
    server = start_server()

    async def scenario():
        async with Rig(server.url, token, transcriber, engine, follow_up_s=WINDOW_S) as rig:
            window = await _first_turn(rig, speech)
            assert rig.doll.state is DollState.LISTENING and rig.led == 1.0, "the light says she is heard"
            assert not rig.button.is_pressed
            assert not rig.fake.sounding(window - ECHO_GUARD_S + 0.04), (
                "no earcon, and the last sound is over"
            )
            rig.say(speech)  # no press
            thinking = await rig.until_state(DollState.THINKING, WINDOW_S + 15.0)
            await rig.until_state(DollState.SPEAKING)
            rig.resume()
            await rig.until(lambda: rig.doll.turns == 3, "the next follow-up window", 30.0)
            return rig, window, thinking

    rig, window, thinking = run(scenario())
    first, second = [r for r in rig.doll.reports if r.listen_end != "quiet"][:2]
    assert first.listen_end in ("silence", "release") and second.listen_end == "silence"
    assert ECHO_GUARD_S <= window - second.pressed_at < ECHO_GUARD_S + 0.1 and thinking > window
    assert second.transcript is not None and second.transcript.text == first.transcript.text
    assert second.backend == "phrasebook" and second.reply
    assert len(_hers(server)) == 2, "her second sentence was a turn of its own, asked and stored"


@pytest.mark.parametrize("gain_db", [0.0, 10.0])
def test_his_own_voice_in_the_room_never_opens_a_turn(
    start_server, token, transcriber, engine, speech, gain_db
):
    """The doll in a simulated room: its speaker reaches its microphone 100 ms late, with a
    loudspeaker's distortion and 0.6 s of reverberation, as loud as he is played or 10 dB louder.
    Three replies, each followed by a window in which she says nothing: every window ends quiet,
    and nothing but her three turns reaches the server."""
    server = start_server()
    room = EchoPath(delay_ms=100.0, gain_db=gain_db, rt60_s=0.6, distortion=0.3)

    async def scenario():
        async with Rig(server.url, token, transcriber, engine, follow_up_s=WINDOW_S, echo=room) as rig:
            heard: list[float] = []

            async def the_room(ears) -> None:  # what the microphone hears while he speaks
                while True:
                    block = await ears.read()
                    if block is not None and rig.doll.state is DollState.SPEAKING:
                        heard.append(float(np.abs(block.astype(np.float32)).max()))

            with rig.mic.listen() as ears:
                listening = asyncio.create_task(the_room(ears))
                for _ in range(3):
                    await rig.spoken_turn(speech)
                    await rig.until_state(DollState.IDLE, 60.0)
            listening.cancel()
            return rig, max(heard)

    rig, loudest = run(scenario())
    assert loudest > 0.1 * 32768, "his voice filled the room: the microphone heard it loud"
    windows = [r for r in rig.doll.reports if r.listen_end == "quiet"]
    assert len(windows) == 3 and rig.doll.turns == 6, [r.listen_end for r in rig.doll.reports]
    assert len(_hers(server)) == 3


def test_a_quiet_window_ends_the_conversation_without_a_request(
    start_server, token, transcriber, engine, speech
):
    server = start_server()

    async def scenario():
        async with Rig(server.url, token, transcriber, engine, follow_up_s=WINDOW_S) as rig:
            window = await _first_turn(rig, speech)
            rig.resume()  # she says nothing
            idle = await rig.until_state(DollState.IDLE, WINDOW_S + 2.0)
            await rig.sleep(5.0)
            return rig, window, idle

    rig, window, idle = run(scenario())
    assert idle - window == pytest.approx(WINDOW_S, abs=0.1)  # the window is counted in audio heard
    assert rig.states()[-3:] == [DollState.SPEAKING, DollState.LISTENING, DollState.IDLE]
    assert rig.doll.reports[-1].listen_end == "quiet" and not rig.doll.reports[-1].reply
    assert rig.doll.turns == 2, "one window, and no more after it"
    assert len(_hers(server)) == 1, "nothing was sent for the quiet window"
    assert rig.led == 0.0


def test_a_press_in_the_window_is_an_ordinary_turn(start_server, token, transcriber, engine, speech):
    server = start_server()

    async def scenario():
        async with Rig(server.url, token, transcriber, engine, follow_up_s=WINDOW_S) as rig:
            await _first_turn(rig, speech)
            rig.resume()
            pressed = await rig.press()  # the window is open: the press starts a new turn
            await rig.listening_with_open_ears()
            earcon = rig.fake.sounding(pressed)
            rig.say(speech)
            await rig.until_state(DollState.THINKING, 15.0)
            await rig.release()
            await rig.until_state(DollState.SPEAKING)
            return rig, earcon

    rig, earcon = run(scenario())
    assert earcon, "a pressed turn begins with the listening earcon"
    assert rig.doll.turns >= 3
    assert len(_hers(server)) == 2


def test_no_window_when_it_is_off(start_server, token, transcriber, engine, speech):
    server = start_server()

    async def scenario():
        async with Rig(server.url, token, transcriber, engine, follow_up_s=0.0) as rig:
            await rig.spoken_turn(speech)
            await rig.until_state(DollState.IDLE)
            await rig.sleep(2.0)
            return rig

    rig = run(scenario())
    assert rig.doll.turns == 1 and rig.states()[-2:] == [DollState.SPEAKING, DollState.IDLE]
    assert rig.mic.listeners == 0


@pytest.mark.parametrize(
    ("said", "goodbye"),
    [
        ("잘 자", True),
        ("응, 잘 자~", True),
        ("이제 그만.", True),
        ("오늘은 여기까지 하고 나중에 얘기해", True),
        ("그만큼 좋았어", False),
        ("잘 자는 게 중요하대", False),
        ("", False),
    ],
)
def test_a_goodbye_is_how_her_words_end(said, goodbye):
    assert is_goodbye(said, LoopSettings().goodbyes) is goodbye


def test_nothing_leaves_the_doll_before_a_turn_has_begun(start_server, token, transcriber, engine, speech):
    """On the wire between the doll and its server: her words while the doll rests, before a
    press and after a quiet window, send nothing; only a turn does."""
    server = start_server()

    async def scenario():
        async with (
            Wiretap(server.url) as tap,
            Rig(tap.url, token, transcriber, engine, follow_up_s=WINDOW_S) as rig,
        ):
            rig.say(speech)  # she talks to the doll, which rests
            await rig.sleep(6.0)
            before_the_press = tap.requests()
            await _first_turn(rig, speech)
            rig.resume()
            await rig.until_state(DollState.IDLE, WINDOW_S + 2.0)  # the window passed quietly
            after_the_turn = tap.requests()
            rig.say(speech)
            await rig.sleep(6.0)
            return rig, before_the_press, after_the_turn, tap.requests()

    rig, before_the_press, after_the_turn, at_the_end = run(scenario())
    assert rig.doll.turns == 2 and rig.doll.state is DollState.IDLE
    assert all(method == "GET" for method, _ in before_the_press), before_the_press  # the health check
    assert [r for r in after_the_turn if r[0] != "GET"] == [("POST", "/v1/chat")]
    assert at_the_end == after_the_turn, "nothing more went out while she talked to the resting doll"
    assert len(_hers(server)) == 1


def test_a_long_press_mutes_the_doll_and_the_mute_survives_a_restart(
    start_server, token, transcriber, engine, speech, tmp_path
):
    """loop.long_press: mute. Muted, the doll rests on MUTED and opens no window after his reply;
    the button still works; a new doll on the same file starts muted; another long press unmutes."""
    server = start_server()
    settings = LoopSettings(long_press="mute")
    kept = tmp_path / "data" / "doll.json"

    def rig() -> Rig:
        return Rig(
            server.url,
            token,
            transcriber,
            engine,
            settings=settings,
            follow_up_s=WINDOW_S,
            mute_file=kept,
        )

    async def long_press(doll: Rig, rests: DollState) -> None:
        await doll.press()
        await doll.until_state(DollState.SPEAKING)  # his line, said at the long press
        await doll.release()
        await doll.until_state(rests)

    async def first_life():
        async with rig() as doll:
            await long_press(doll, DollState.MUTED)
            assert doll.light.state is DollState.MUTED
            await doll.spoken_turn(speech)  # the button still works
            await doll.until_state(DollState.MUTED)
            await doll.sleep(WINDOW_S + 1.0)
            return doll

    async def second_life():
        async with rig() as doll:
            started_muted = doll.doll.state is DollState.MUTED
            await long_press(doll, DollState.IDLE)
            return doll, started_muted

    first = run(first_life())
    assert first.states()[-3:] == [DollState.THINKING, DollState.SPEAKING, DollState.MUTED], (
        "no window after his reply"
    )
    assert first.doll.turns == 3 and first.mic.listeners == 0  # the press, its long press, the turn
    assert json.loads(kept.read_text(encoding="utf-8")) == {"muted": True}
    second, started_muted = run(second_life())
    assert started_muted, "the mute survived the restart"
    assert json.loads(kept.read_text(encoding="utf-8")) == {"muted": False}
    assert len(_hers(server)) == 1


def test_a_state_file_that_cannot_be_read_is_not_muted_and_says_why(tmp_path, caplog):
    broken = tmp_path / "doll.json"
    broken.write_bytes(b"\x00\xff not json")
    assert MuteSwitch(broken).muted is False
    assert "taken as not muted" in caplog.text
    assert MuteSwitch(tmp_path / "absent.json").muted is False


def test_a_mute_that_cannot_be_kept_holds_in_memory_and_says_why(tmp_path, caplog):
    switch = MuteSwitch(Path("/dev/full") / "doll.json")  # no folder can be made there
    switch.set(True)
    assert switch.muted is True
    assert "holds until the doll stops" in caplog.text
