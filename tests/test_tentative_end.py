# SPDX-License-Identifier: GPL-3.0-or-later
"""Tentative ends of turn (``loop.tentative_end``), on the live doll in simulated time: the reply
is asked for when her turn is probably over; if she goes on before his first sound, it is dropped
unheard and never stored, and her turn goes on as one.

Real: the loop, Vosk, the Silero VAD, espeak-ng, the inference server over HTTP on loopback with
the real Gemini SDK against a fake Gemini. Fake: the pins and the sound card (tests/fakes)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from conftest import gemini_backend
from fakes.rig import Rig, run
from test_live_loop import AFTER_HAMYEONSEO_S, paused

from device.bench.fake_gemini import FakeGemini, Reply
from device.doll.settings import LoopSettings
from device.doll.states import DollState
from inference_server.backends.phrasebook import PhrasebookBackend

pytestmark = pytest.mark.slow  # real Vosk

SPEECH_END_S = 3.4  # "… 걸어갔다" ends about here in the sample
VOICES = Path(__file__).resolve().parents[1] / "samples" / "voices"
REQUEST_END_S = 1.77  # Vosk's timing of the last word ("…줘") in ko-out-of-context.wav


def _stored(server) -> list[tuple[str, str]]:
    return [(t.role, t.text) for t in server.chat.store.recent("jinju", 20)]


def test_she_goes_on_after_a_tentative_end_and_the_early_reply_is_never_heard_or_stored(
    start_server, token, tmp_path, transcriber, engine, speech, phrasebook
) -> None:
    """A 900 ms breath after "피하면서": the doll asks early (a 400 ms pause is enough here), she
    goes on before his first sound; the early reply is dropped, the whole sentence is one turn."""
    early = threading.Event()
    utterance = paused(speech, AFTER_HAMYEONSEO_S, 0.9)
    settings = LoopSettings(end_of_turn="fixed", silence_ms=400, tentative_end=True, earcons=False)
    with FakeGemini() as fake:
        # the early reply is held back until she has gone on; the second is her whole turn's
        fake.push(Reply.stream(["일찍 한 대답이야."], gate=early, gate_after=0), Reply.stream(["그랬구나."]))
        server = start_server(gemini_backend(fake.base_url), PhrasebookBackend(phrasebook), data_dir=tmp_path)

        async def scenario():
            async with Rig(server.url, token, transcriber, engine, settings=settings, hold_s=30.0) as rig:
                await rig.press()
                await rig.listening_with_open_ears()
                fed = rig.say(utterance)
                asked = await rig.until_state(DollState.THINKING, 4.0)
                went_on = await rig.until_state(DollState.LISTENING, 2.0)
                early.set()  # too late: the doll has dropped it
                await rig.until_state(DollState.THINKING, 4.0)
                await rig.release()
                speaking = await rig.until_state(DollState.SPEAKING, 5.0)
                await rig.until_state(DollState.IDLE, 10.0)
                await rig.until(lambda: rig.doll.reports[-1].transcript is not None, "the final text", 5.0)
                return rig, fed, asked, went_on, speaking

        rig, fed, asked, went_on, speaking = run(scenario())
        requests = [r.body for r in fake.requests]
    assert AFTER_HAMYEONSEO_S < asked - fed < AFTER_HAMYEONSEO_S + 0.9, "asked early, inside the pause"
    assert went_on - fed < AFTER_HAMYEONSEO_S + 0.9 + 0.5, "she went on at the end of the pause"
    report = rig.doll.reports[-1]
    assert report.retractions == 1
    assert report.reply == "그랬구나."
    assert len(requests) == 2
    assert "걸어" not in str(requests[0]) and "걸어" in str(requests[1])
    hers, his = _stored(server)
    assert hers[0] == "user" and "걸어" in hers[1], hers
    assert his == ("model", "그랬구나.")
    assert "일찍" not in str(_stored(server))
    assert rig.fake.sounding(went_on), "his reply to her whole turn was heard"
    assert speaking > went_on


def test_a_finished_sentence_is_answered_from_the_tentative_end(
    start_server, token, tmp_path, transcriber, engine, speech, phrasebook
) -> None:
    """Her sentence ends ("… 걸어갔다"): the reply asked at the tentative end is the one she hears,
    kept by the server, and her turn stops there, well before max_silence_ms."""
    settings = LoopSettings(tentative_end=True, earcons=False)  # adaptive, as shipped
    with FakeGemini() as fake:
        fake.push(Reply.stream(["응, 그랬구나."]))
        server = start_server(gemini_backend(fake.base_url), PhrasebookBackend(phrasebook), data_dir=tmp_path)

        async def scenario():
            async with Rig(server.url, token, transcriber, engine, settings=settings, hold_s=30.0) as rig:
                await rig.press()
                await rig.listening_with_open_ears()
                fed = rig.say(speech)
                asked = await rig.until_state(DollState.THINKING, 6.0)
                await rig.release()
                speaking = await rig.until_state(DollState.SPEAKING, 5.0)
                await rig.until_state(DollState.IDLE, 10.0)
                await rig.until(lambda: rig.doll.reports[-1].transcript is not None, "the final text", 5.0)
                return rig, fed, asked, speaking

        rig, fed, asked, speaking = run(scenario())
        assert len(fake.requests) == 1
    report = rig.doll.reports[-1]
    assert report.listen_end == "tentative" and report.retractions == 0
    assert asked - fed < SPEECH_END_S + 1.0, "asked within a second of her last word"
    assert asked - fed < SPEECH_END_S + settings.max_silence_ms / 1000
    assert _stored(server) == [("user", report.transcript.text), ("model", "응, 그랬구나.")]
    assert "걸어" in report.transcript.text
    assert speaking >= asked


def test_when_the_server_refuses_an_early_reply_her_tentative_end_is_her_end(
    start_server, token, tmp_path, transcriber, engine, speech, phrasebook
) -> None:
    """Only the doll's quota reserve is left: the server answers 409 to the early request, and the
    doll ends her turn there and asks once, as without tentative ends (not 1.5 s later)."""
    settings = LoopSettings(tentative_end=True, earcons=False)
    with FakeGemini() as fake:
        fake.push(Reply.stream(["응, 그랬구나."]))
        server = start_server(gemini_backend(fake.base_url), PhrasebookBackend(phrasebook), data_dir=tmp_path)
        server.chat.tentative_refusal = lambda: "only the doll's reserve is left (this test)"

        async def scenario():
            async with Rig(server.url, token, transcriber, engine, settings=settings, hold_s=30.0) as rig:
                await rig.press()
                await rig.listening_with_open_ears()
                fed = rig.say(speech)
                await rig.until_state(DollState.THINKING, 6.0)
                await rig.until_state(DollState.SPEAKING, 5.0)  # she holds the button throughout
                await rig.release()
                await rig.until_state(DollState.IDLE, 10.0)
                return rig, fed

        rig, fed = run(scenario())
        assert len(fake.requests) == 1, "only the request made once her turn was over reached Gemini"
    report = rig.doll.reports[-1]
    assert report.listen_end == "silence" and report.retractions == 0
    assert report.marks["stopped"] - fed < SPEECH_END_S + 1.0
    assert report.reply == "응, 그랬구나."
    assert [role for role, _ in _stored(server)] == ["user", "model"]


@pytest.mark.parametrize(("end_of_turn", "tentative"), [("adaptive", False), ("adaptive", True)])
def test_a_finished_request_ends_her_turn_quickly(
    start_server, token, transcriber, engine, end_of_turn, tentative
) -> None:
    """Another speaker's finished request ("… 줘", samples/voices/ko-out-of-context.wav, held out
    from every fit) ends her turn well within a second of her last word, not after
    max_silence_ms: as shipped (adaptive), and as a tentative end."""
    import soundfile as sf

    request, rate = sf.read(VOICES / "ko-out-of-context.wav", dtype="int16")
    assert rate == 16000
    server = start_server()
    settings = LoopSettings(end_of_turn=end_of_turn, tentative_end=tentative, earcons=False)

    async def scenario():
        async with Rig(server.url, token, transcriber, engine, settings=settings, hold_s=30.0) as rig:
            return rig, await rig.held_turn(request, 6.0)

    rig, heard_for = run(scenario())
    assert rig.doll.reports[-1].listen_end in (("tentative", "release") if tentative else ("silence",))
    assert REQUEST_END_S < heard_for < REQUEST_END_S + 1.0, heard_for
