"""`chacha doctor`: every part checked, each line OK, WARN or FAIL with the fix."""

from __future__ import annotations

import asyncio
import shutil
from argparse import Namespace
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from device.config import ChachaConfig
from inference_server.shared.paths import cannot_write
from inference_server.shared.secrets import Secrets, reveal

if TYPE_CHECKING:
    from inference_server.api import DiskStatus

MIN_FREE_MB = 500


@dataclass(frozen=True)
class Check:
    status: str  # OK | WARN | FAIL
    what: str
    detail: str


def _ok(what: str, detail: str) -> Check:
    return Check("OK", what, detail)


def _warn(what: str, detail: str) -> Check:
    return Check("WARN", what, detail)


def _fail(what: str, detail: str) -> Check:
    return Check("FAIL", what, detail)


def check_config(config: ChachaConfig, source: Path | None) -> Check:
    """The file itself (its keys and values); what it points to is checked by check_server_start."""
    return _ok("config", f"{source or 'built-in defaults (no chacha.yaml)'} is valid")


def check_speech_recognition(config: ChachaConfig, *, measure: bool = False) -> list[Check]:
    """The engine the doll will use and, for ``stt.engine: auto``, the speed it was chosen by.

    ``measure``: time Whisper again now (fastest of 5 passes) and keep that instead.
    """
    from device.stt.auto import create_transcriber, read_speed, whisper_speed

    stt = config.stt
    if measure:
        from device.stt.whisper.transcriber import WhisperTranscriber

        whisper = WhisperTranscriber(stt.whisper, data_dir=stt.cache_dir, sample_rate=stt.sample_rate)
        whisper_speed(stt, whisper, fresh=True, passes=5)
    transcriber = create_transcriber(stt)
    checks = [_ok("speech recognition", f"{transcriber.choice.engine} — {transcriber.choice.reason}")]
    record = read_speed(stt)
    if record is not None:
        checks.append(
            _ok(
                "whisper speed",
                f"{record.describe(stt.auto_max_encode_s)}; `chacha doctor --measure-stt` redoes it",
            )
        )
    elif stt.engine == "auto":
        checks.append(_warn("whisper speed", "not measured (too little memory for Whisper)"))
    return checks


def check_speech_synthesis(config: ChachaConfig) -> Check:
    from tts.engines import create_engine

    engine = create_engine(config.tts)
    return _ok("speech synthesis", f"{engine.name} at {engine.sample_rate} Hz")


def check_audio_devices() -> list[Check]:
    from device.audio import load_portaudio
    from device.errors import AudioDeviceError

    try:
        sd = load_portaudio()
    except AudioDeviceError as exc:
        return [_fail("audio", str(exc))]
    try:
        devices = sd.query_devices()
    except sd.PortAudioError as exc:
        return [_fail("audio", f"cannot list audio devices ({exc}): check `aplay -l`")]
    inputs = [d["name"] for d in devices if d["max_input_channels"] > 0]
    outputs = [d["name"] for d in devices if d["max_output_channels"] > 0]
    return [
        _ok("microphone", ", ".join(inputs))
        if inputs
        else _fail("microphone", "no input device: plug in a USB or I2S microphone, check `arecord -l`"),
        _ok("speaker", ", ".join(outputs))
        if outputs
        else _fail("speaker", "no output device: connect the amplifier or a USB speaker, check `aplay -l`"),
    ]


def check_gpio(config: ChachaConfig) -> Check:
    from hardware import make_pin_factory

    factory = make_pin_factory(config.hardware.pin_factory)
    name = type(factory).__name__ if factory is not None else "gpiozero's default"
    return _ok(
        "GPIO",
        f"{name}; button on GPIO{config.hardware.button_pin}, "
        f"LED ({config.hardware.led.kind}) on GPIO{config.hardware.led.pin}",
    )


def check_conversation(config: ChachaConfig) -> list[Check]:
    """The wake phrase, the cue model and barge-in by voice, when the configuration turns them on."""
    checks = []
    wake = config.loop.wake
    if wake.enabled:
        from device.cli.wake import wake_dir
        from device.doll.wake import Enrolment, WakeEnrolmentError

        try:
            enrolment = Enrolment.load(wake_dir(config))
            checks.append(
                _ok(
                    "wake phrase",
                    f"{enrolment.phrase!r}, {len(enrolment.clips)} recordings, threshold {wake.threshold:g}",
                )
            )
        except WakeEnrolmentError as exc:
            checks.append(_fail("wake phrase", f"{exc}; until then only the button starts a turn"))
    if config.loop.end_of_turn == "cues":
        from device.doll.turn_cues import CueModel

        try:
            model = CueModel.load()
            checks.append(
                _ok("end of turn", f"cues: {len(model.features)} features, threshold {model.threshold:g}")
            )
        except (OSError, ValueError) as exc:
            checks.append(
                _fail(
                    "end of turn",
                    f"the cue model does not load ({exc}): reinstall, or set loop.end_of_turn: adaptive",
                )
            )
    if config.loop.barge_in.by == "voice":
        from device.doll.echo import load_apm
        from device.errors import AudioDeviceError

        try:
            load_apm()
            checks.append(_ok("echo canceller", "WebRTC AEC3 (livekit): her voice can stop him"))
        except AudioDeviceError as exc:
            checks.append(_fail("echo canceller", str(exc)))
    return checks


def check_secrets(config: ChachaConfig) -> list[Check]:
    checks = []
    secrets = Secrets()
    if secrets.gemini_api_key is not None:
        checks.append(_ok("Gemini key", "GEMINI_API_KEY is set"))
    elif "gemini" in config.llm.backends:
        checks.append(
            _warn(
                "Gemini key",
                "GEMINI_API_KEY is not set: the offline phrasebook "
                "answers; export it (or put it in the systemd env file)",
            )
        )
    if secrets.chacha_api_token is not None:
        checks.append(_ok("API token", "CHACHA_API_TOKEN is set"))
    else:
        checks.append(
            _warn(
                "API token", "CHACHA_API_TOKEN is not set: `chacha serve` and clients of client.url need it"
            )
        )
    return checks


def check_server(config: ChachaConfig) -> Check | list[Check]:
    from inference_server.api import InferenceClient, ServerUnavailable

    if not config.client.url:
        return _ok("server", "client.url is not set: commands start a server in their own process")
    token = reveal(Secrets().chacha_api_token) or ""
    try:
        health = asyncio.run(InferenceClient(config.client.url, token, timeout_s=5).health())
    except ServerUnavailable as exc:
        return _fail("server", str(exc))
    checks = [_ok("server", f"{config.client.url} answers with the token; backend now: {health.backend}")]
    if health.disk is not None:
        checks.append(server_disk_check(health.disk))
    if health.memory is not None:
        waiting = health.memory.waiting_sessions
        detail = f"{health.memory.memories} memories, {waiting} session(s) waiting for reflection"
        if health.memory.last_outcome:
            detail += f" (last: {health.memory.last_outcome})"
        checks.append((_warn if waiting > 3 else _ok)("memories", detail))
    for backend in health.backends:
        quota = backend.quota
        if quota:
            line = f"{quota.model}: {quota.left_today} of {quota.requests_per_day} left today" + (
                f", cooling down {quota.cooldown_s:.0f} s" if quota.cooldown_s else ""
            )
            checks.append((_ok if quota.left_today else _warn)("quota", line))
    return checks


def check_server_start(config: ChachaConfig) -> list[Check]:
    """What `chacha serve` loads before it listens, step by step with the server's own code
    (inference_server.startup): a FAIL line is the very error the server would stop with."""
    from inference_server.startup import startup_steps

    notes = {"memory": f"; sessions end after {config.memory.session_idle_min:g} quiet minutes"}
    checks = []
    for step in startup_steps(config.server, config.llm, config.persona, config.memory):
        checks += _guard(step.part, lambda step=step: _ok(step.part, step.run() + notes.get(step.part, "")))
    if not config.memory.enabled:
        checks.append(_ok("memory", "off (memory.enabled: false): 차차 remembers only the history window"))
    return checks


def server_disk_check(disk: DiskStatus) -> Check:
    """The server's own view of its data folder's disk (its health): FAIL while it counts as full."""
    free = "free space unknown" if disk.free_bytes < 0 else f"{disk.free_bytes / 2**20:.1f} MB free"
    threshold = f"server.min_free_mb {disk.min_free_bytes / 2**20:g} MB"
    if disk.full:
        return _fail(
            "server's disk",
            f"full: {disk.reason}; 차차 only says that his notebook is full until space is freed under "
            f"{disk.path} or elsewhere on its disk",
        )
    return _ok("server's disk", f"{disk.path} ({free}, {threshold})")


def check_disk(config: ChachaConfig) -> list[Check]:
    checks = []
    for what, folder in (("data disk", config.server.data_dir), ("cache folder", config.stt.cache_dir)):
        probe = folder
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        free_mb = shutil.disk_usage(probe).free // 2**20
        # The data folder's writing is tried with the server's start (check_server_start); the
        # cache folder's here, in it or in the folder it will be made in.
        reason = None if what == "data disk" else cannot_write(probe)
        if reason is not None:
            fix = "fix its owner or set another path"
            checks.append(_fail(what, f"{folder} is not writable ({reason}): {fix}"))
        elif what == "data disk" and free_mb < config.server.min_free_mb:
            checks.append(
                _fail(
                    what,
                    f"{folder}: only {free_mb} MB free, below server.min_free_mb "
                    f"({config.server.min_free_mb:g} MB): the server stores nothing new and 차차 only says "
                    "that his notebook is full; free space on that disk",
                )
            )
        elif free_mb < MIN_FREE_MB:
            checks.append(_fail(what, f"{folder}: only {free_mb} MB free (keep {MIN_FREE_MB} MB)"))
        else:
            checks.append(_ok(what, f"{folder} ({free_mb} MB free)"))
    return checks


def _guard(what: str, check: Callable[[], Check | list[Check]]) -> list[Check]:
    """A check that breaks is itself a FAIL line, never a crash of the doctor."""
    try:
        result = check()
    except Exception as exc:  # each failure becomes a line with its message
        return [_fail(what, str(exc))]
    return result if isinstance(result, list) else [result]


def run_checks(config: ChachaConfig, source: Path | None, *, measure_stt: bool = False) -> int:
    checks = [check_config(config, source)]
    checks += check_server_start(config)
    checks += _guard("speech recognition", lambda: check_speech_recognition(config, measure=measure_stt))
    checks += _guard("speech synthesis", lambda: check_speech_synthesis(config))
    checks += _guard("audio", check_audio_devices)
    checks += _guard("GPIO", lambda: check_gpio(config))
    checks += _guard("conversation", lambda: check_conversation(config))
    checks += check_secrets(config)
    checks += _guard("server", lambda: check_server(config))
    checks += _guard("disk", lambda: check_disk(config))
    width = max(len(c.what) for c in checks)
    for c in checks:
        print(f"{c.status:<4} {c.what:<{width}}  {c.detail}", flush=True)
    failed = sum(c.status == "FAIL" for c in checks)
    print(f"\n{failed} problem(s) to fix." if failed else "\nAll essential checks passed.")
    return 1 if failed else 0


# --- doctor ------------------------------------------------------------------------------


def doctor(args: Namespace, config: ChachaConfig) -> int:
    return run_checks(config, args.config_source, measure_stt=getattr(args, "measure_stt", False))
