# SPDX-License-Identifier: GPL-3.0-or-later
"""Microphone and Speaker on the fake sound card; end-of-speech detection; earcons.

Everything here is fast: the fake card is in memory, the Silero VAD model is tiny.
"""

from __future__ import annotations

import asyncio
from argparse import Namespace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
from fakes.sounddevice import FakeSoundDevice

from device import audio
from device.bench.simulated_audio import EchoPath
from device.cli.live import run as live_run
from device.cli.live import test_hardware as chacha_test
from device.config import ChachaConfig
from device.doll.audio_io import Listener, Microphone, Speaker, find_device
from device.doll.earcons import LEVEL_DBFS, make_earcon, make_earcons
from device.doll.settings import AudioSettings, LoopSettings
from device.doll.states import DollState
from device.doll.vad import (
    EndpointDetector,
    EnergyVad,
    SileroVad,
    SpeechEnded,
    SpeechStarted,
    block_dbfs,
    create_vad,
)
from device.errors import AudioDeviceError, STTError
from hardware import HardwareError, HardwareSettings

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "ko-read-sentence.wav"
RATE = 16000
BLOCK = 480  # 30 ms at 16 kHz


def run(coro, timeout: float = 10.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def tone(rate: int, seconds: float, hz: float = 440.0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return np.rint(amplitude * 32767 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


async def read_samples(ears: Listener, count: int, timeout: float = 5.0) -> tuple[np.ndarray, list[int]]:
    blocks: list[np.ndarray] = []
    got = 0
    while got < count:
        block = await asyncio.wait_for(ears.read(), timeout)
        if block is not None:
            blocks.append(block)
            got += len(block)
    return np.concatenate(blocks), [len(b) for b in blocks]


# --- Microphone ---------------------------------------------------------------------------


def test_microphone_delivers_30ms_blocks_of_what_was_said() -> None:
    fake = FakeSoundDevice(input_speed=4.0)
    said = tone(RATE, 0.6)
    fake.say(said)

    async def scenario():
        mic = Microphone(AudioSettings(), backend=fake)
        ears = mic.listen()
        mic.start()
        try:
            return await read_samples(ears, len(said))
        finally:
            mic.stop()

    heard, sizes = run(scenario())
    assert set(sizes) == {BLOCK}
    assert heard.dtype == np.int16
    np.testing.assert_array_equal(heard[: len(said)], said)
    stream = fake.streams[0]
    assert (stream.samplerate, stream.blocksize, stream.channels) == (RATE, BLOCK, 1)
    assert stream.closed


def test_a_microphone_nobody_listens_to_drops_blocks_and_a_new_listener_gets_the_next() -> None:
    fake = FakeSoundDevice(input_speed=4.0)

    async def scenario():
        mic = Microphone(AudioSettings(), backend=fake)
        mic.start()
        try:
            await fake.clock.sleep_async(0.2)  # 6 blocks captured with nobody listening
            assert fake.input_blocks >= 6
            assert mic.listeners == 0 and mic.caught_up
            with mic.listen() as ears:
                assert mic.listeners == 1
                assert ears.read_pending() == []
                block = await asyncio.wait_for(ears.read(), 2.0)
                assert block is not None and len(block) == BLOCK
            assert mic.listeners == 0
        finally:
            mic.stop()

    run(scenario())


def test_several_listeners_get_the_same_blocks_and_one_that_leaves_stops_getting_them() -> None:
    """The turn's hearing, a wake-word listener, an echo canceller: each gets every block from
    its subscription on, and one closing (or clearing, or waking) takes nothing from the others."""
    fake = FakeSoundDevice(input_speed=4.0)
    said = tone(RATE, 1.2)
    fake.say(said)

    async def scenario():
        mic = Microphone(AudioSettings(), backend=fake)
        first, second = mic.listen(), mic.listen()
        mic.start()
        try:
            early, _ = await read_samples(second, RATE // 2)
            second.wake()  # a wake-up is the second's own: the first reads on
            second.close()
            assert mic.listeners == 1
            heard, _ = await read_samples(first, len(said))
            await fake.clock.sleep_async(0.1)
            return early, heard, second.read_pending(), first.read_pending()
        finally:
            first.close()
            mic.stop()

    early, heard, left_over, more = run(scenario())
    np.testing.assert_array_equal(heard[: len(said)], said)
    np.testing.assert_array_equal(early, heard[: len(early)])  # the same blocks, in order
    assert sum(len(b) for b in left_over) <= BLOCK, "a closed listener gets nothing more"
    assert more, "the other one still does"


def test_the_speakers_reference_is_what_the_card_played_at_its_sample_positions() -> None:
    """Every block the card took, silence included, with its position among all samples the
    card played: the far-end reference an echo canceller lines the microphone up with."""
    fake = FakeSoundDevice()
    sound = tone(48000, 0.25, hz=500.0)

    async def scenario():
        speaker = Speaker(AudioSettings(), backend=fake)
        speaker.start()
        try:
            await fake.clock.sleep_async(0.1)  # some silence before anyone listens
            with speaker.reference() as reference:
                speaker.play(sound, 48000)
                await asyncio.wait_for(speaker.drain(), 3.0)
                await fake.clock.sleep_async(0.1)
                with fake.frozen():
                    played = list(fake.played)
                    await asyncio.sleep(0.05)  # the blocks in flight reach the loop
                    reference.close()
                return reference.read_pending(), played
        finally:
            speaker.close()

    blocks, played = run(scenario())
    card = np.concatenate([b.samples for b in played])
    assert blocks and all(b.rate == 48000 for b in blocks)
    assert all(b.position + len(b.samples) == n.position for b, n in zip(blocks, blocks[1:], strict=False))
    assert blocks[0].position >= 48000 * 0.1 - 1440  # it subscribed after the first silence
    for block in blocks:
        np.testing.assert_array_equal(
            block.samples, card[block.position : block.position + len(block.samples)]
        )
    assert blocks[-1].position + len(blocks[-1].samples) == len(card)  # to the last block it took
    reference = np.concatenate([b.samples for b in blocks])
    start = np.flatnonzero(reference)[0] - np.flatnonzero(sound)[0]
    np.testing.assert_array_equal(reference[start : start + len(sound)], sound)


def test_wake_makes_a_pending_read_return_none_and_clear_drops_it() -> None:
    fake = FakeSoundDevice()

    async def scenario():
        mic = Microphone(AudioSettings(), backend=fake)
        mic.start()
        try:
            with fake.frozen(), mic.listen() as ears:  # no block comes while frozen
                await asyncio.sleep(0.01)  # the blocks in flight arrive ...
                ears.clear()  # ... and go
                reading = asyncio.create_task(ears.read())
                await asyncio.sleep(0.05)
                ears.wake()
                assert await asyncio.wait_for(reading, 1.0) is None
                ears.wake()
                ears.clear()
                assert ears.read_pending() == []
        finally:
            mic.stop()

    run(scenario())


def test_in_a_simulated_room_the_microphone_hears_the_speaker_late_and_dying_away() -> None:
    """EchoPath: a 60 ms burst of noise played reaches the microphone ``delay_ms`` after it sounded (a
    block after the callback took it: the card's buffer), at the path's gain, and the room's
    reverberation dies away by 60 dB in ``rt60_s``."""
    path = EchoPath(delay_ms=80.0, gain_db=-6.0, rt60_s=0.3)
    fake = FakeSoundDevice(echo=path)
    burst = (np.random.default_rng(3).standard_normal(round(48000 * 0.06)) * 0.2 * 32767).astype(np.int16)

    async def scenario():
        mic = Microphone(AudioSettings(), backend=fake)
        speaker = Speaker(AudioSettings(), backend=fake)
        ears = mic.listen()  # before the start: it gets the first block the card delivers
        mic.start()
        speaker.start()
        try:
            with ears:
                await fake.clock.sleep_async(0.1)
                speaker.play(burst, 48000)
                heard, _ = await read_samples(ears, RATE)  # a second from the first block on
            return heard
        finally:
            speaker.close()
            mic.stop()

    heard = run(scenario())
    heard_from = fake.input_log[0][0] - BLOCK / RATE  # the first block's samples began a block before it came
    sounded_at = next(b.time for b in fake.played if b.peak >= 64)
    level = np.abs(heard.astype(np.float32)) / 32768
    loud = np.flatnonzero(level > 0.01)
    assert len(loud), "the echo reached the microphone"
    delay_s = heard_from + loud[0] / RATE - sounded_at
    assert delay_s == pytest.approx(0.03 + 0.08, abs=0.01)
    burst_energy = 0.06 * RATE * 0.2**2 / 3  # white noise at 48 kHz keeps a third of its power below 8 kHz
    assert np.sum(level**2) == pytest.approx(
        burst_energy * 10 ** (-6 / 10), rel=0.5
    )  # gain_db, the room lossless
    direct = level[loud[0] : loud[0] + int(0.06 * RATE)]
    late = level[loud[0] + int(0.06 * RATE) + int(0.3 * RATE) :]
    assert late.max() < direct.max() / 100, "40 dB down and more after rt60_s (the burst's own length aside)"


def test_microphone_resamples_when_the_card_refuses_the_rate() -> None:
    fake = FakeSoundDevice(input_rates={48000}, input_speed=4.0)
    fake.say(tone(48000, 1.0, hz=440.0))

    async def scenario():
        mic = Microphone(AudioSettings(), backend=fake)
        ears = mic.listen()
        mic.start()
        try:
            return mic, (await read_samples(ears, RATE // 2))[0]
        finally:
            mic.stop()

    mic, heard = run(scenario())
    assert mic.device_rate == 48000
    assert mic.sample_rate == RATE
    assert abs(peak_hz(heard[1600:], RATE) - 440.0) < 5.0  # past the resampler's start-up delay


def test_devices_by_name_part_or_index() -> None:
    fake = FakeSoundDevice()
    assert find_device(fake, "usb", "input")[0] == 0
    assert find_device(fake, 1, "output")[0] == 1
    assert find_device(fake, None, "output") == (None, fake.query_devices(kind="output"))
    with pytest.raises(AudioDeviceError) as caught:
        find_device(fake, "Blue Yeti", "input")
    message = str(caught.value)
    assert "'Blue Yeti'" in message and "Fake USB Microphone" in message and "arecord -l" in message
    assert "\n" not in message
    with pytest.raises(AudioDeviceError, match="audio.output_device 0"):
        find_device(fake, 0, "output")  # the microphone is not a speaker


def test_no_sound_card_is_a_one_line_error_with_the_fix() -> None:
    fake = FakeSoundDevice(devices=False)

    async def scenario():
        with pytest.raises(AudioDeviceError) as mic_error:
            Microphone(AudioSettings(), backend=fake).start()
        with pytest.raises(AudioDeviceError) as speaker_error:
            Speaker(AudioSettings(), backend=fake).start()
        return str(mic_error.value), str(speaker_error.value)

    mic_message, speaker_message = run(scenario())
    assert "no sound card" in mic_message and "arecord -l" in mic_message
    assert "audio.input_device" in mic_message and "\n" not in mic_message
    assert "no sound card" in speaker_message and "aplay -l" in speaker_message
    assert "audio.output_device" in speaker_message


# --- Speaker -------------------------------------------------------------------------------


def test_speaker_plays_resampled_audio_and_drain_waits_for_the_end() -> None:
    fake = FakeSoundDevice(output_rate=48000)
    sound = tone(22050, 0.5, hz=600.0)

    async def scenario():
        speaker = Speaker(AudioSettings(), backend=fake)
        speaker.start()
        try:
            started = fake.clock.now()
            speaker.play(sound, 22050)
            await asyncio.wait_for(speaker.drain(), 3.0)
            return speaker, started, fake.clock.now()
        finally:
            speaker.close()

    speaker, started, drained = run(scenario())
    assert speaker.sample_rate == 48000
    assert 0.5 <= drained - started <= 0.56  # 0.5 s of sound, to the 30 ms block
    sounding = fake.sounding(started)
    assert sounding[-1].time <= drained
    audio = fake.played_audio(started)
    loud = np.flatnonzero(np.abs(audio.astype(np.int32)) > 64)
    assert abs((loud[-1] - loud[0]) / 48000 - 0.5) < 0.01
    assert abs(peak_hz(audio[loud[0] : loud[-1]], 48000) - 600.0) < 5.0


def test_speaker_stop_silences_within_one_block() -> None:
    fake = FakeSoundDevice()

    async def scenario():
        speaker = Speaker(AudioSettings(), backend=fake)
        speaker.start()
        try:
            speaker.play(tone(48000, 3.0), 48000)
            speaker.play(tone(48000, 1.0), 48000)
            await fake.clock.sleep_async(0.3)
            with fake.frozen():
                stopped = fake.clock.now()
                speaker.stop()
            await asyncio.wait_for(speaker.drain(), 0.05)  # nothing left to wait for
            await fake.clock.sleep_async(0.3)
            return stopped
        finally:
            speaker.close()

    stopped = run(scenario())
    assert fake.sounding(stopped - 0.1, stopped), "it was playing before stop()"
    assert not fake.sounding(stopped + 0.001)  # the next block the card asks for is silence


def test_speaker_volume_scales_everything() -> None:
    fake = FakeSoundDevice()

    async def scenario():
        speaker = Speaker(AudioSettings(volume=0.5), backend=fake)
        speaker.start()
        try:
            started = fake.clock.now()
            speaker.play(np.full(4800, 10000, np.int16), 48000)
            await asyncio.wait_for(speaker.drain(), 2.0)
            return started
        finally:
            speaker.close()

    started = run(scenario())
    assert max(block.peak for block in fake.played_between(started)) == 5000


def test_stereo_only_card_gets_the_same_samples_on_both_channels() -> None:
    fake = FakeSoundDevice()
    calls = []
    original = fake.OutputStream

    def output_stream(**kwargs):
        calls.append(kwargs["channels"])
        if kwargs["channels"] == 1:
            raise fake.PortAudioError(
                "Error opening OutputStream: Invalid number of channels [PaErrorCode -9998]"
            )
        return original(**kwargs)

    fake.OutputStream = output_stream

    async def scenario():
        speaker = Speaker(AudioSettings(), backend=fake)
        speaker.start()
        try:
            speaker.play(tone(48000, 0.2), 48000)
            await asyncio.wait_for(speaker.drain(), 2.0)
        finally:
            speaker.close()

    run(scenario())
    assert calls == [1, 2]
    assert fake.sounding()


# --- end of speech -----------------------------------------------------------------------------


def blocks_of(samples: np.ndarray, size: int = BLOCK):
    for start in range(0, len(samples), size):
        yield samples[start : start + size]


def events_for(detector: EndpointDetector, samples: np.ndarray) -> list[tuple[float, object]]:
    found = []
    for block in blocks_of(samples):
        event = detector.push(block)
        if event is not None:
            found.append((detector.elapsed_s, event))
    return found


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(RATE * seconds), np.int16)


@pytest.mark.parametrize("vad", [EnergyVad(-40), SileroVad()], ids=["energy", "silero"])
def test_silence_never_starts_speech(vad) -> None:
    detector = EndpointDetector(vad, max_utterance_s=60)
    assert events_for(detector, silence(3.0)) == []
    assert not detector.started and not detector.heard_speech


def test_energy_vad_tone_burst_starts_and_ends_after_the_silence() -> None:
    detector = EndpointDetector(EnergyVad(-40), silence_ms=700, min_speech_ms=250)
    audio = np.concatenate([silence(0.48), tone(RATE, 0.6), silence(1.5)])
    (start_at, start), (end_at, end) = events_for(detector, audio)
    assert isinstance(start, SpeechStarted) and start.at_s == pytest.approx(0.48, abs=0.031)
    assert start_at == pytest.approx(0.48 + 0.25, abs=0.031)  # once min_speech_ms was heard
    assert isinstance(end, SpeechEnded) and end.reason == "silence"
    assert end.last_speech_s == pytest.approx(1.08, abs=0.031)
    assert end_at - end.last_speech_s == pytest.approx(0.7, abs=0.031)
    assert end.speech_s == pytest.approx(0.6, abs=0.031)


def test_a_click_is_not_speech_and_is_forgotten() -> None:
    detector = EndpointDetector(EnergyVad(-40), silence_ms=700, min_speech_ms=250)
    audio = np.concatenate([tone(RATE, 0.09), silence(1.0), tone(RATE, 0.12), silence(0.3)])
    assert events_for(detector, audio) == []
    assert detector.speech_s == pytest.approx(0.12, abs=0.031)  # the first click was forgotten


def test_max_length_ends_even_while_she_talks() -> None:
    detector = EndpointDetector(EnergyVad(-40), max_utterance_s=1.5)
    found = events_for(detector, tone(RATE, 3.0))
    assert [type(e) for _, e in found] == [SpeechStarted, SpeechEnded]
    at, end = found[-1]
    assert end.reason == "max_length" and at == pytest.approx(1.5, abs=0.031)
    assert detector.push(tone(RATE, 0.03)) is None  # ended: nothing more


def test_probabilities_can_be_fed_directly_with_hysteresis() -> None:
    detector = EndpointDetector(threshold=0.5, silence_ms=300, min_speech_ms=60)
    probabilities = [0.1, 0.9, 0.9, 0.4, 0.4, 0.4, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]
    found = [(i, e) for i, p in enumerate(probabilities) if (e := detector.push_probability(p, 0.05))]
    assert [i for i, _ in found] == [2, 11]  # 0.4 continues speech (above 0.35); 6 blocks of 0.2 end it
    assert found[1][1].speech_s == pytest.approx(0.25)
    with pytest.raises(TypeError, match="push_probability"):
        detector.push(silence(0.03))


def test_silero_hears_the_sample_and_ends_700_ms_after_it() -> None:
    speech, rate = sf.read(SAMPLE, dtype="int16")
    assert rate == RATE
    loud = [i for i, b in enumerate(blocks_of(speech)) if block_dbfs(b) > -45]
    speech_end_s = (loud[-1] + 1) * BLOCK / RATE  # where the recording's speech ends, by level
    detector = EndpointDetector(create_vad(LoopSettings(), RATE), silence_ms=700)
    found = events_for(detector, np.concatenate([speech, silence(1.0)]))
    assert [type(e) for _, e in found] == [SpeechStarted, SpeechEnded]
    (_, start), (end_at, end) = found
    assert 0.5 < start.at_s < 0.9  # she starts at ~0.65 s
    assert end.reason == "silence"
    assert end.last_speech_s == pytest.approx(speech_end_s, abs=0.15)
    assert end_at - end.last_speech_s == pytest.approx(0.7, abs=0.031)
    assert end.speech_s > 2.0


def test_silero_ignores_steady_noise_that_energy_calls_speech() -> None:
    rng = np.random.default_rng(1)
    noise = np.clip(rng.standard_normal(RATE * 2) * 32768 * 10 ** (-20 / 20), -32768, 32767).astype(np.int16)
    assert events_for(EndpointDetector(SileroVad()), noise) == []
    assert [type(e) for _, e in events_for(EndpointDetector(EnergyVad(-40)), noise)] == [SpeechStarted]


def test_silero_needs_16_khz_and_says_how_to_do_without() -> None:
    with pytest.raises(STTError, match="loop.vad: energy"):
        SileroVad(8000)
    assert isinstance(create_vad(LoopSettings(vad="energy"), 8000), EnergyVad)


# --- earcons ----------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [16000, 22050, 48000])
def test_earcons_are_short_quiet_and_click_free(rate: int) -> None:
    sounds = make_earcons(rate)
    assert set(sounds) == {"listening", "done", "error"}
    for name, samples in sounds.items():
        assert samples.dtype == np.int16 and samples.ndim == 1
        peak_dbfs = 20 * np.log10(np.abs(samples.astype(np.float64)).max() / 32767)
        assert peak_dbfs == pytest.approx(LEVEL_DBFS, abs=0.1), name
        edge = round(rate * 0.001)  # first and last millisecond: deep in the 5 ms fades
        assert np.abs(samples[:edge]).max() < 0.1 * 32767 * 10 ** (LEVEL_DBFS / 20), name
        assert np.abs(samples[-edge:]).max() < 0.1 * 32767 * 10 ** (LEVEL_DBFS / 20), name
    assert len(sounds["listening"]) / rate == pytest.approx(0.12, abs=0.002)
    assert len(sounds["error"]) / rate == pytest.approx(0.25, abs=0.002)


def test_listening_rises_done_falls_error_is_low() -> None:
    def halves(samples):
        middle = len(samples) // 2
        return peak_hz(samples[:middle], 48000), peak_hz(samples[middle:], 48000)

    first, second = halves(make_earcon("listening", 48000))
    assert first < second
    first, second = halves(make_earcon("done", 48000))
    assert first > second
    assert peak_hz(make_earcon("error", 48000), 48000) < 200
    with pytest.raises(ValueError, match="unknown earcon"):
        make_earcon("ding", 48000)  # type: ignore[arg-type]


# --- chacha test … and chacha run's early errors --------------------------------------------


def make_config(**sections) -> SimpleNamespace:
    """ChachaConfig's sections plus audio/loop (and hardware with mock pins), overridable."""
    base = ChachaConfig()
    fields = {name: getattr(base, name) for name in type(base).model_fields}
    fields.update(audio=AudioSettings(), loop=LoopSettings(), hardware=HardwareSettings(pin_factory="mock"))
    fields.update(sections)
    return SimpleNamespace(**fields)


@pytest.fixture
def fake_card(monkeypatch: pytest.MonkeyPatch) -> FakeSoundDevice:
    fake = FakeSoundDevice(input_speed=4.0)
    monkeypatch.setattr(audio, "load_portaudio", lambda: fake)
    return fake


def test_chacha_test_leds_shows_every_state(capsys) -> None:
    assert chacha_test(Namespace(part="leds", seconds=0.01), make_config()) == 0
    out = capsys.readouterr().out
    assert all(state.value in out for state in DollState)
    assert "GPIO18" in out


def test_chacha_test_button_watches(capsys) -> None:
    assert chacha_test(Namespace(part="button", seconds=0.05), make_config()) == 0
    assert "GPIO17" in capsys.readouterr().out


def test_chacha_test_mic_prints_levels_and_plays_back(fake_card, capsys) -> None:
    fake_card.say(tone(RATE, 1.0, amplitude=0.5))
    started = fake_card.clock.now()
    assert chacha_test(Namespace(part="mic", seconds=0.5), make_config()) == 0
    out = capsys.readouterr().out
    assert "peak -6.0 dBFS, RMS -9.0 dBFS" in out
    assert duration_of_sound(fake_card, started) == pytest.approx(0.5, abs=0.05)


def test_chacha_test_speaker_plays_a_tone_then_speech(fake_card, capsys) -> None:
    started = fake_card.clock.now()
    assert chacha_test(Namespace(part="speaker"), make_config()) == 0
    assert duration_of_sound(fake_card, started) > 2.0  # 1 s of tone, then the sentence
    assert "440 Hz" in capsys.readouterr().out


def duration_of_sound(fake: FakeSoundDevice, since: float) -> float:
    return sum(len(b.samples) for b in fake.sounding(since)) / 48000


def test_chacha_run_without_a_sound_card_fails_before_loading_models(monkeypatch) -> None:
    monkeypatch.setattr(audio, "load_portaudio", lambda: FakeSoundDevice(devices=False))
    with pytest.raises(AudioDeviceError, match="arecord -l"):
        live_run(Namespace(debug=False), make_config())


def test_chacha_run_without_gpio_is_a_hardware_error(fake_card) -> None:
    config = make_config(hardware=HardwareSettings(pin_factory="lgpio"))
    with pytest.raises(HardwareError, match="pin_factory: mock"):
        live_run(Namespace(debug=False), config)


def test_chacha_run_needs_the_capture_rate_of_the_recogniser(fake_card) -> None:
    from device.cli.errors import CommandError

    with pytest.raises(CommandError, match="stt.sample_rate"):
        live_run(Namespace(debug=False), make_config(audio=AudioSettings(capture_rate=48000)))
