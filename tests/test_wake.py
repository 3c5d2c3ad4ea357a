# SPDX-License-Identifier: GPL-3.0-or-later
"""The wake phrase: enrolled from real recordings, matched on the doll, and a turn with no press.

No recording of "차차야" exists here, so these tests enrol another real phrase, "빅스비", from
Picovoice's Korean test audio (samples/voices/, Apache-2.0): the cut from ko-keywords.wav is
the enrolled recording, and ko-bixby.wav, a separate recording of the same word, is what the
doll must wake to. Her other real sentences must not wake it. The live tests run the doll on
the simulated sound card and clock (tests/fakes/rig.py) with real Silero and Vosk and the
real server over loopback; every time is simulated.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import ROOT
from fakes.rig import Rig, run
from fakes.wiretap import Wiretap

from device.bench.simulated_audio import EchoPath
from device.cli.main import main
from device.doll.settings import LoopSettings, WakeSettings
from device.doll.states import DollState
from device.doll.vad import create_vad
from device.doll.wake import (
    RATE,
    Enrolment,
    FrontEnd,
    WakeDetector,
    WakeEnrolmentError,
    prepare_clips,
    template,
    trim,
)

VOICES = ROOT / "samples" / "voices"
THRESHOLD = WakeSettings().threshold  # the shipped default
OTHER_SPEECH = ["ko-light-command.wav", "ko-out-of-context.wav", "../ko-read-sentence.wav"]
WAKE = LoopSettings(wake=WakeSettings(enabled=True))


def _read(name: str) -> np.ndarray:
    samples, rate = sf.read(VOICES / name, dtype="int16")
    assert rate == RATE
    return samples


def _enrolled_bixby() -> np.ndarray:
    """빅스비, as said in ko-keywords.wav (3.2–4.45 s), trimmed."""
    keywords = _read("ko-keywords.wav")
    return trim(keywords[int(3.2 * RATE) : int(4.45 * RATE)])


def _keywords_without_bixby() -> np.ndarray:
    keywords = _read("ko-keywords.wav")
    return np.concatenate([keywords[: int(3.1 * RATE)], keywords[int(4.5 * RATE) :]])


def _wakes(detector: WakeDetector, samples: np.ndarray, block: int = 480) -> list[float]:
    return [heard.at_s for heard in detector.scan(samples, block)]


@pytest.fixture(scope="module")
def silero():
    return create_vad(LoopSettings(), RATE)


def test_another_recording_of_the_phrase_wakes_it_and_other_speech_does_not(silero):
    templates = [template(_enrolled_bixby())]
    bixby = _read("ko-bixby.wav")
    detector = WakeDetector(templates, THRESHOLD, speech=silero)
    woke = _wakes(detector, bixby)
    assert len(woke) == 1, (woke, detector.best)
    assert 0.8 <= woke[0] <= len(bixby) / RATE  # where the word ends, not before it began
    for name in OTHER_SPEECH:
        detector = WakeDetector(templates, THRESHOLD, speech=silero)
        assert _wakes(detector, _read(name)) == [], (name, detector.best)
    detector = WakeDetector(templates, THRESHOLD, speech=silero)
    assert _wakes(detector, _keywords_without_bixby()) == [], detector.best  # 코뿔소, 아이스크림


def test_blocks_of_any_length_hear_the_same():
    templates = [template(_enrolled_bixby())]
    bixby = np.concatenate([np.zeros(RATE // 2, np.int16), _read("ko-bixby.wav")])
    found = []
    for block in (480, 137, 4000):
        detector = WakeDetector(templates, THRESHOLD)
        assert _wakes(detector, bixby, block) != []
        found.append(detector.best)
    assert max(found) - min(found) < 1e-6
    one, two = FrontEnd(), FrontEnd()
    whole = one.push(bixby)[0]
    pieces = np.concatenate([two.push(bixby[i : i + 333])[0] for i in range(0, len(bixby), 333)])
    np.testing.assert_allclose(whole, pieces, atol=1e-3)


def test_noise_and_silence_never_wake_it(silero):
    rng = np.random.default_rng(7)
    seconds = 60
    t = np.arange(seconds * RATE) / RATE
    hum = 300 * np.sin(2 * np.pi * 50 * t) + rng.normal(0, 100, len(t))  # mains hum and hiss
    clicks = np.zeros(len(t))
    clicks[rng.integers(0, len(t), 40)] = 20000  # a door, a toy
    room = np.clip(hum + clicks, -32768, 32767).astype(np.int16)
    detector = WakeDetector([template(_enrolled_bixby())], THRESHOLD, speech=silero)
    assert _wakes(detector, room) == []


def test_the_phrase_said_twice_wakes_it_twice_but_its_own_tail_does_not():
    bixby = _read("ko-bixby.wav")
    gap = np.zeros(RATE, np.int16)
    detector = WakeDetector([template(_enrolled_bixby())], THRESHOLD)
    woke = _wakes(detector, np.concatenate([bixby, gap, bixby]))
    assert len(woke) == 2 and woke[1] - woke[0] > 2.0


def test_enrolment_needs_three_to_ten_recordings_of_the_phrase_alone():
    bixby = _enrolled_bixby()
    with pytest.raises(WakeEnrolmentError, match="3 to 10"):
        prepare_clips([("a.wav", bixby), ("b.wav", bixby)])
    silent = np.zeros(RATE, np.int16)
    with pytest.raises(WakeEnrolmentError, match="c.wav: no phrase heard"):
        prepare_clips([("a.wav", bixby), ("b.wav", bixby), ("c.wav", silent)])
    sentence = _read("../ko-read-sentence.wav")
    with pytest.raises(WakeEnrolmentError, match=r"c.wav: [0-9.]+ s of sound: record only the phrase"):
        prepare_clips([("a.wav", bixby), ("b.wav", bixby), ("c.wav", sentence)])


def test_an_enrolment_is_kept_whole_and_a_broken_one_says_what_to_do(tmp_path):
    folder = tmp_path / "wake"
    with pytest.raises(WakeEnrolmentError, match="no wake phrase is enrolled .*chacha wake enroll"):
        Enrolment.load(folder)
    clips = tuple(prepare_clips([(f"{i}.wav", _enrolled_bixby()) for i in range(3)]))
    Enrolment(folder, "빅스비", clips).save()
    loaded = Enrolment.load(folder)
    assert loaded.phrase == "빅스비" and len(loaded.clips) == 3
    np.testing.assert_array_equal(loaded.clips[0], clips[0])
    first = sorted(p.name for p in folder.iterdir())
    Enrolment(folder, "빅스비", clips[:2] + clips[:1]).save()  # enrolled again: the old clips go
    again = sorted(p.name for p in folder.iterdir())
    assert (
        len(first) == len(again) == 4 and "wake.json" in again and not set(first) & set(again) - {"wake.json"}
    )
    np.testing.assert_array_equal(Enrolment.load(folder).clips[2], clips[0])
    sf.write(
        folder / json.loads((folder / "wake.json").read_text(encoding="utf-8"))["clips"][0],
        np.zeros(100, np.int16),
        RATE,
    )
    with pytest.raises(WakeEnrolmentError, match=r"shorter than 0.25 s\): enrol again"):
        Enrolment.load(folder)
    (folder / "wake.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(WakeEnrolmentError, match="cannot be read .*enrol again"):
        Enrolment.load(folder)


def _config(tmp_path, *, enabled: bool) -> str:
    path = tmp_path / "chacha.yaml"
    path.write_text(
        f"server:\n  data_dir: {tmp_path / 'data'}\nloop:\n  wake:\n    enabled: {str(enabled).lower()}\n",
        encoding="utf-8",
    )
    return str(path)


def test_chacha_wake_enroll_and_check(tmp_path, capsys):
    keywords = _read("ko-keywords.wav")
    bixby = _read("ko-bixby.wav")
    files = []
    for name, samples in [
        ("keywords-bixby.wav", keywords[int(3.2 * RATE) : int(4.45 * RATE)]),
        ("bixby.wav", bixby),
        ("bixby-again.wav", bixby),
    ]:
        sf.write(tmp_path / name, samples, RATE, subtype="PCM_16")
        files.append(str(tmp_path / name))
    config = _config(tmp_path, enabled=False)
    assert main(["--config", config, "wake", "enroll", "--phrase", "빅스비", *files]) == 0
    out = capsys.readouterr().out
    assert "Enrolled 3 recordings of '빅스비'" in out and "loop.wake.enabled: true" in out
    # Each recording against the other two: the same take twice matches; the cut from another
    # recording (0.32 from them) is flagged, as enrolment should flag a take said differently.
    assert f"{files[0]}: 0.81 s, 0.3" in out and "would NOT wake" in out.split(files[0])[1].splitlines()[0]
    assert out.count("  ok") == 2 and "1 of 3 did not match the others" in out
    manifest = json.loads((tmp_path / "data" / "wake" / "wake.json").read_text(encoding="utf-8"))
    assert manifest["phrase"] == "빅스비" and len(manifest["clips"]) == 3
    other = tmp_path / "sentence.wav"
    sf.write(other, _read("../ko-read-sentence.wav"), RATE, subtype="PCM_16")
    assert main(["--config", config, "wake", "check", files[1], str(other)]) == 0
    out = capsys.readouterr().out
    assert f"{files[1]}: wakes at" in out and f"{other}: does not wake" in out


def test_chacha_wake_enroll_refuses_too_few_and_changes_nothing(tmp_path, capsys):
    sf.write(tmp_path / "one.wav", _read("ko-bixby.wav"), RATE, subtype="PCM_16")
    config = _config(tmp_path, enabled=True)
    assert main(["--config", config, "wake", "enroll", str(tmp_path / "one.wav")]) != 0
    assert "3 to 10" in capsys.readouterr().err
    assert not (tmp_path / "data" / "wake").exists()
    assert main(["--config", config, "wake", "check", str(tmp_path / "one.wav")]) != 0
    assert "chacha wake enroll" in capsys.readouterr().err


# -- the live doll ------------------------------------------------------------------------------


def _hers(server) -> list[str]:
    return [t.text for t in server.chat.store.recent("jinju", 20) if t.role == "user"]


@pytest.mark.slow  # real Vosk
@pytest.mark.parametrize("pause_s", [0.5, 1.5])  # in one breath; after waiting for the earcon
def test_she_says_the_phrase_and_then_talks_no_press(
    start_server, token, transcriber, engine, speech, pause_s
):
    """In a room where the doll hears its own earcon (as loud as it plays, reverberant)."""
    server = start_server()
    said = np.concatenate([_read("ko-bixby.wav"), np.zeros(int(pause_s * RATE), np.int16), speech])
    room = EchoPath(delay_ms=40.0, gain_db=0.0, rt60_s=0.4, distortion=0.1)

    async def scenario():
        async with Rig(
            server.url,
            token,
            transcriber,
            engine,
            settings=WAKE,
            wake=[template(_enrolled_bixby())],
            echo=room,
        ) as rig:
            assert rig.doll.state is DollState.WAITING, "the light says the doll listens for the phrase"
            await rig.sleep(1.0)
            began = rig.say(said)
            listening = await rig.until_state(DollState.LISTENING, 4.0)
            await rig.until_state(DollState.THINKING, 15.0)
            await rig.until_state(DollState.SPEAKING, 15.0)
            await rig.until_state(DollState.WAITING, 30.0)
            return rig, began, listening

    rig, began, listening = run(scenario())
    assert not rig.button.is_pressed and rig.doll.turns == 1
    assert listening - began < len(_read("ko-bixby.wav")) / RATE + 0.3, "it woke as the phrase ended"
    report = rig.doll.reports[-1]
    assert report.listen_end == "silence" and report.reply
    text = report.transcript.text
    assert "걸어갔" in text and "빅" not in text, text  # her sentence, whole, without the phrase
    assert _hers(server) == [text]


@pytest.mark.slow  # real Vosk
def test_the_waiting_doll_sends_nothing_and_a_muted_one_does_not_wake(
    start_server, token, transcriber, engine, speech, tmp_path
):
    """On the wire: her words without the phrase, while the doll waits for it, send nothing and
    begin no turn; muted, even the phrase does not wake it."""
    server = start_server()
    mute_file = tmp_path / "doll.json"

    async def scenario(muted: bool):
        mute_file.write_text(json.dumps({"muted": muted}), encoding="utf-8")
        async with (
            Wiretap(server.url) as tap,
            Rig(
                tap.url,
                token,
                transcriber,
                engine,
                settings=WAKE,
                wake=[template(_enrolled_bixby())],
                mute_file=mute_file,
            ) as rig,
        ):
            rig.say(
                np.concatenate([speech, _read("ko-light-command.wav")])
                if not muted
                else _read("ko-bixby.wav")
            )
            await rig.sleep(10.0)
            return rig.doll.state, rig.doll.turns, tap.requests()

    state, turns, requests = run(scenario(muted=False))
    assert state is DollState.WAITING and turns == 0
    assert all(method == "GET" for method, _ in requests), requests  # the health check only
    state, turns, requests = run(scenario(muted=True))
    assert state is DollState.MUTED and turns == 0
    assert all(method == "GET" for method, _ in requests), requests
    assert _hers(server) == []


def test_the_doctor_says_whether_the_wake_phrase_is_enrolled(tmp_path):
    from device.cli.doctor import check_conversation
    from device.config import load_config

    config, _ = load_config(Path(_config(tmp_path, enabled=True)))
    (check,) = check_conversation(config)
    assert check.status == "FAIL" and "chacha wake enroll" in check.detail
    clips = tuple(prepare_clips([(f"{i}.wav", _enrolled_bixby()) for i in range(3)]))
    Enrolment(tmp_path / "data" / "wake", "빅스비", clips).save()
    (check,) = check_conversation(config)
    assert check.status == "OK" and "'빅스비', 3 recordings" in check.detail
    assert check_conversation(load_config(Path(_config(tmp_path, enabled=False)))[0]) == []


def test_chacha_wake_enroll_records_her_takes_from_the_doll_microphone(tmp_path, monkeypatch, capsys):
    from fakes.sounddevice import FakeSoundDevice

    from device import audio

    card = FakeSoundDevice(input_speed=4.0)
    monkeypatch.setattr(audio, "load_portaudio", lambda: card)
    bixby = _read("ko-bixby.wav")
    takes = []
    said = iter([None, bixby, bixby, bixby])  # she stays silent in the first take

    def enter(prompt: str) -> str:  # she says it once the take starts
        takes.append(prompt)
        if (samples := next(said)) is not None:
            card.say(samples)
        return ""

    monkeypatch.setattr("builtins.input", enter)
    config = _config(tmp_path, enabled=True)
    assert main(["--config", config, "--debug", "wake", "enroll", "--record", "3"]) == 0
    out = capsys.readouterr().out
    assert takes == [f"take {n} of 3: press Enter, then say it" for n in (1, 1, 2, 3)], (
        "the silent take again"
    )
    assert "take 1: no phrase heard in it (silent or too short); once more:" in out
    assert "Enrolled 3 recordings of '차차야'" in out and "would NOT wake" not in out
    clips = Enrolment.load(tmp_path / "data" / "wake").clips
    assert all(1.0 < len(clip) / RATE < 2.0 for clip in clips), [len(c) / RATE for c in clips]
    said = iter([None] * 3)
    assert main(["--config", config, "wake", "enroll", "--record", "3"]) != 0  # a microphone gone quiet
    assert "3 times: check the microphone with `chacha test mic`" in capsys.readouterr().err
    assert len(Enrolment.load(tmp_path / "data" / "wake").clips) == 3, "the enrolment kept"
    assert main(["--config", config, "wake", "enroll", "--record", "2"]) != 0
    assert "--record 2: record 3 to 10 takes" in capsys.readouterr().err
    assert main(["--config", config, "wake", "enroll"]) != 0
    assert "FILE...) or --record N" in capsys.readouterr().err


@pytest.mark.slow  # real Vosk
def test_with_the_server_down_it_does_not_listen_for_the_phrase_until_the_server_is_back(
    start_server, token, transcriber, engine, tmp_path
):
    """Nothing could answer her: the light shows ERROR, not that the doll listens, and the
    microphone has no listener; when the health check finds the server, it waits again."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    servers = []
    settings = LoopSettings(wake=WakeSettings(enabled=True), earcons=False, server_retry_initial_s=1.0)

    async def scenario():
        url = f"http://127.0.0.1:{port}"
        async with Rig(
            url, token, transcriber, engine, settings=settings, wake=[template(_enrolled_bixby())]
        ) as rig:
            await rig.until_state(DollState.ERROR, 10.0)
            assert rig.mic.listeners == 0, "no wake listener while the server is down"
            rig.say(_read("ko-bixby.wav"))
            await rig.sleep(4.0)
            assert rig.doll.turns == 0 and rig.doll.state is DollState.ERROR
            servers.append(start_server(data_dir=tmp_path / "d", port=port))
            await rig.until_state(DollState.WAITING, 30.0)
            await rig.until(lambda: rig.mic.listeners == 1, "the wake listener", 2.0)

    try:
        run(scenario())
    finally:
        for server in servers:
            server.stop()


@pytest.mark.slow  # real Vosk
def test_a_wake_detector_that_breaks_is_logged_and_the_light_stops_saying_it_listens(
    start_server, token, transcriber, engine, monkeypatch, caplog
):
    from device.doll.wake import WakeDetector

    def broken(self, blocks):
        raise RuntimeError("a bug in the detector")

    monkeypatch.setattr(WakeDetector, "push", broken)
    server = start_server()

    async def scenario():
        async with Rig(
            server.url, token, transcriber, engine, settings=WAKE, wake=[template(_enrolled_bixby())]
        ) as rig:
            await rig.until_state(DollState.IDLE, 5.0)
            await rig.sleep(1.0)
            return rig.mic.listeners, rig.doll.state

    listeners, state = run(scenario())
    assert listeners == 0 and state is DollState.IDLE
    assert "listening for the wake phrase failed; the button still works" in caplog.text
    assert "a bug in the detector" in caplog.text
