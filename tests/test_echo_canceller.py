# SPDX-License-Identifier: GPL-3.0-or-later
"""The echo canceller (WebRTC AEC3 through livekit) and the barge-in detector, on audio alone:
his real voice (espeak-ng's Korean) through a simulated room (device/bench/room.py), her real
recording, counted in audio time."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from conftest import SAMPLE_WAV

from device.bench.room import RoomTake, ScriptedSpeaker, cancel, erle_db, in_room
from device.bench.simulated_audio import EchoPath
from device.doll.audio_io import Played
from device.doll.barge_in import LEAD_S, VoiceBargeIn
from device.doll.echo import EchoCanceller
from device.doll.settings import BargeInSettings
from device.doll.vad import EnergyVad, SileroVad

RATE = 16000
BLOCK = 480  # 30 ms


@pytest.fixture(scope="module")
def his_voice():
    """About 12 s of his reply in the default voice (espeak-ng, Korean), int16 and its rate."""
    from tts.engines import create_engine
    from tts.settings import TTSSettings

    engine = create_engine(TTSSettings())
    sentences = [
        "진주야 오늘 학교에서 있었던 일을 처음부터 끝까지 천천히 다 들려줄래?",
        "나는 여기서 기다릴게. 오늘은 날씨가 참 좋아서 산책하기 딱 좋은 날이야.",
    ]
    audio = [engine.synthesize_sentence(s) for s in sentences]
    return np.concatenate([a.samples for a in audio]), audio[0].sample_rate


@pytest.fixture(scope="module")
def her_voice():
    samples, rate = sf.read(SAMPLE_WAV, dtype="int16")
    assert rate == RATE
    return samples


def _take(his_voice, path: EchoPath, **kwargs) -> RoomTake:
    samples, rate = his_voice
    return in_room(samples, rate, path, noise_dbfs=-70.0, **kwargs)


@pytest.mark.parametrize(
    ("path", "least_db"),
    [
        (EchoPath(delay_ms=20, gain_db=0, rt60_s=0.2), 25.0),  # about 35 dB measured
        (EchoPath(delay_ms=60, gain_db=6, rt60_s=0.4, distortion=0.3), 20.0),  # about 26 dB
    ],
    ids=["small-room", "loud-reverberant"],
)
def test_the_canceller_takes_his_voice_out_of_the_microphone(his_voice, path, least_db) -> None:
    """AEC3 through livekit is not bit-for-bit repeatable from one instance to the next, so each
    room keeps a margin below what it measured."""
    take = _take(his_voice, path)
    assert take.duration_s > 8
    cleaned = cancel(take, EchoCanceller)
    assert len(cleaned) == len(take.echo)
    assert erle_db(take, cleaned, after_s=1.0) >= least_db
    # Without the canceller nothing is taken out: the measure itself is honest.
    assert erle_db(take, np.concatenate(take.heard)) < 1.0


def test_her_voice_comes_through_while_he_speaks(his_voice, her_voice) -> None:
    """Double talk after the canceller has converged: at the microphone his echo is louder than
    she is; after the canceller she is at least 10 dB above what is left of him."""
    path = EchoPath(delay_ms=50, gain_db=6, rt60_s=0.4)
    span = slice(round(4.0 * RATE), round(4.0 * RATE) + len(her_voice))
    both = _take(his_voice, path, hers=her_voice, her_at_s=4.0)
    alone = _take(his_voice, path)
    hers = np.sum(both.hers[span].astype(np.float64) ** 2)
    assert np.sum(both.echo[span].astype(np.float64) ** 2) > 2 * hers, "his echo is the louder"
    with_her = np.sum((cancel(both, EchoCanceller)[span].astype(np.float64) / 32768) ** 2)
    his_rest = np.sum((cancel(alone, EchoCanceller)[span].astype(np.float64) / 32768) ** 2)
    assert with_her > 10 * his_rest, "she stands out of what is left of him"
    assert with_her > 0.05 * hers, "her voice is not cancelled with his"


def test_a_far_end_at_another_rate_and_a_gap_in_listening(his_voice) -> None:
    """The speaker plays at 22.05 kHz (resampled by the canceller); nobody listens for two seconds
    (the reference piles up, the microphone's blocks do not come): it cancels again after."""
    samples, rate = his_voice
    take = in_room(samples, rate, EchoPath(delay_ms=40, gain_db=0, rt60_s=0.3), noise_dbfs=-70.0)
    import soxr

    speaker = ScriptedSpeaker()
    canceller = EchoCanceller(speaker, RATE)
    out, gap = [], range(100, 167)  # blocks 3.0 s … 5.0 s: not cleaned (the stream was closed)
    position = 0
    for k, (played, heard) in enumerate(zip(take.played, take.heard, strict=True)):
        slow = soxr.resample(played.samples, 48000, 22050).astype(np.int16)
        speaker.played(Played(position, slow, 22050))
        position += len(slow)
        if k not in gap:
            out.append((k, canceller.clean(heard)))
    assert canceller.restarts == 1, "started afresh after the gap"
    after = np.concatenate([c for k, c in out if k >= 200])  # from 6 s on: a second after the gap
    echo = take.echo[200 * BLOCK : 200 * BLOCK + len(after)]
    left = np.sum((after.astype(np.float64) / 32768) ** 2)
    assert 10 * np.log10(np.sum(echo.astype(np.float64) ** 2) / left) >= 20.0


def test_blocks_that_do_not_end_on_10_ms_are_carried_over() -> None:
    speaker = ScriptedSpeaker()
    canceller = EchoCanceller(speaker, RATE)
    lengths = [len(canceller.clean(np.zeros(n, np.int16))) for n in (400, 400, 400, 400)]
    assert lengths == [320, 480, 320, 480]  # 25 ms blocks: 2, 3, 2, 3 frames of 10 ms


# --- the barge-in detector ----------------------------------------------------------------


def _loud(ms: int) -> list[np.ndarray]:
    return [np.full(BLOCK, 8000, np.int16)] * (ms // 30)


def _quiet(ms: int) -> list[np.ndarray]:
    return [np.zeros(BLOCK, np.int16)] * (ms // 30)


def _detector(min_speech_ms: int = 150) -> VoiceBargeIn:
    return VoiceBargeIn(EnergyVad(-40.0), RATE, BargeInSettings(min_speech_ms=min_speech_ms, threshold=0.5))


def test_a_cough_does_not_stop_him_her_speech_does() -> None:
    detector = _detector()
    assert not detector.push(_quiet(600) + _loud(90) + _quiet(300))  # a cough: 90 ms
    assert not detector.push(_loud(120))
    assert detector.push(_loud(30))  # 150 ms of her voice
    assert detector.began_s == pytest.approx(0.99, abs=1e-6)
    kept = np.concatenate(detector.kept)
    assert len(kept) / RATE == pytest.approx(0.15 + LEAD_S, abs=0.031), "her speech and a little before it"


def test_a_short_gap_inside_her_first_syllables_does_not_start_the_count_again() -> None:
    detector = _detector()
    assert not detector.push(_loud(90) + _quiet(60) + _loud(30))
    assert detector.push(_loud(30))
    detector.reset()
    assert not detector.push(_loud(90) + _quiet(150) + _loud(90))  # a pause of 150 ms: again from 0


def test_silero_on_her_real_voice_stops_him_early_in_her_first_words(her_voice) -> None:
    detector = VoiceBargeIn(SileroVad(RATE), RATE, BargeInSettings())
    blocks = [her_voice[i : i + BLOCK] for i in range(0, len(her_voice) - BLOCK + 1, BLOCK)]
    first_sound = np.flatnonzero(np.abs(her_voice) > 1000)[0] / RATE
    fired_at = None
    for k, block in enumerate(blocks):
        if detector.push([block]):
            fired_at = (k + 1) * BLOCK / RATE
            break
    assert fired_at is not None
    assert fired_at - first_sound <= 0.3
    assert detector.began_s is not None and detector.began_s <= fired_at


def test_without_livekit_the_canceller_says_how_to_fix_it(monkeypatch) -> None:
    import sys

    from device.errors import AudioDeviceError

    monkeypatch.setitem(sys.modules, "livekit.rtc", None)  # the import fails as if not installed
    with pytest.raises(AudioDeviceError, match=r"needs the livekit package .*loop\.barge_in\.by: button"):
        EchoCanceller(ScriptedSpeaker(), RATE)
