# SPDX-License-Identifier: GPL-3.0-or-later
"""`chacha voice record`: read the script aloud, one sentence at a time, and keep the good takes.

For each sentence: Enter starts the microphone, Enter stops it; the take is measured (length,
peak level, clipping, whether there is speech at all, noise) and he chooses: Enter keeps it,
``r`` records it again, ``s`` skips the sentence, ``q`` stops for today. Kept takes go to
``recorded/wavs/NNNN-hhhhhh.wav`` (line number and a hash of the sentence; 22.05 kHz mono
16-bit, unprocessed) and into
``recorded/review.tsv`` with status ``ok`` — he read the sentence, so the text is known.
``recorded/progress.json`` remembers every kept or skipped sentence (by its text), so the next
session starts at the first sentence not done yet.

The sound card is reached through ``backend`` (the ``sounddevice`` module, or a fake with the
same ``InputStream``/``query_devices``/``PortAudioError``), and keys through ``ask`` (a
function like :func:`input`), so a test can play both.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tts.voice import levels
from tts.voice.errors import VoiceError
from tts.voice.review import ReviewRow, read_review, write_review
from tts.voice.script import load_script
from tts.voice.workspace import SAMPLE_RATE, VoiceDir

#: A take quieter than this at its loudest sample is too quiet (dBFS).
QUIET_PEAK_DB = -30.0
#: A take with more than this share of samples at full scale is clipped.
CLIPPED_FRACTION = 0.001

Ask = Callable[[str], str]
Say = Callable[[str], None]


@dataclass
class TakeCheck:
    """What a take measured and what is wrong with it (nothing: ``problems`` is empty)."""

    duration_s: float
    peak_db: float
    clipped: float
    snr_db: float
    has_speech: bool
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        verdict = "; ".join(self.problems) if self.problems else "good"
        return (
            f"{self.duration_s:.1f} s · peak {self.peak_db:.1f} dBFS · clipped {self.clipped * 100:.2f} % · "
            f"SNR {self.snr_db:.0f} dB — {verdict}"
        )


def check_take(samples: np.ndarray, rate: int = SAMPLE_RATE) -> TakeCheck:
    """Level (peak under -30 dBFS is too quiet), clipping (over 0.1 % at full scale), speech."""
    peak = levels.peak_dbfs(samples)
    clipped = levels.clipped_fraction(samples)
    analysis = levels.analyse(samples, rate)
    check = TakeCheck(
        duration_s=len(samples) / rate,
        peak_db=peak,
        clipped=clipped,
        snr_db=analysis.snr_db,
        has_speech=analysis.has_speech,
    )
    if not analysis.has_speech:
        check.problems.append("no speech detected: is the microphone on and close enough?")
    if peak < QUIET_PEAK_DB:
        check.problems.append(
            f"too quiet (peak {peak:.0f} dBFS, under {QUIET_PEAK_DB:.0f}): "
            "move closer or raise the input gain"
        )
    if clipped > CLIPPED_FRACTION:
        check.problems.append(
            f"clipped ({clipped * 100:.2f} % of samples at full scale): move back or lower the input gain"
        )
    return check


class Microphone:
    """Records one take at a time at 22.05 kHz mono (resampled when the card cannot)."""

    def __init__(self, backend, device: str | int | None = None, *, max_s: float = 30.0) -> None:
        self.backend = backend
        self.device = device
        self.max_s = max_s

    def _fail(self, exc: BaseException) -> VoiceError:
        where = f"device {self.device!r}" if self.device is not None else "the default input device"
        return VoiceError(
            f"cannot open the microphone ({where}: {exc}): plug one in, check `arecord -l`, "
            "or choose another with --device / audio.input_device"
        )

    def check(self) -> None:
        """Fail now, before the first sentence, when there is no such microphone."""
        error_type = getattr(self.backend, "PortAudioError", OSError)
        try:
            info = self.backend.query_devices(self.device, "input")
        except (error_type, ValueError) as exc:
            raise self._fail(exc) from None
        if int(info.get("max_input_channels", 1)) < 1:
            raise self._fail(ValueError(f"{info.get('name', 'it')} has no input channels"))

    def _open(self, rate: int, callback):
        return self.backend.InputStream(
            samplerate=rate, channels=1, dtype="int16", device=self.device, callback=callback
        )

    def record(self, wait_for_stop: Callable[[], None]) -> np.ndarray:
        """Open the microphone, call ``wait_for_stop`` (it returns when he presses Enter), close."""
        pieces: list[np.ndarray] = []
        lock = threading.Lock()
        state = {"frames": 0, "limit": 0}

        def on_audio(indata, frames, time_info, status) -> None:
            block = np.asarray(indata)
            block = block.reshape(len(block), -1)[:, 0] if block.ndim > 1 else block.reshape(-1)
            with lock:
                room = state["limit"] - state["frames"]
                if room > 0:
                    pieces.append(np.array(block[:room], dtype=np.int16))
                    state["frames"] += min(room, len(block))

        error_type = getattr(self.backend, "PortAudioError", OSError)
        rate = SAMPLE_RATE
        try:
            try:
                stream = self._open(rate, on_audio)
            except error_type as exc:
                if "sample rate" not in str(exc).lower():
                    raise
                info = self.backend.query_devices(self.device, "input")
                rate = int(info["default_samplerate"])
                stream = self._open(rate, on_audio)
        except (error_type, ValueError) as exc:
            raise self._fail(exc) from None
        state["limit"] = int(rate * self.max_s)
        try:
            stream.start()
            wait_for_stop()
        finally:
            stream.stop()
            stream.close()
        with lock:
            audio = np.concatenate(pieces) if pieces else np.zeros(0, np.int16)
        if rate != SAMPLE_RATE and len(audio):
            import soxr

            audio = levels.to_int16(soxr.resample(levels.as_float(audio), rate, SAMPLE_RATE, quality="HQ"))
        return audio


@dataclass
class Progress:
    """Which sentences are done (kept or skipped), by their text.

    Keyed by the sentence itself, so another script (``--script``) or an edited one never
    mixes up which take belongs to which sentence.
    """

    path: Path
    done: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Progress:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            done = {str(k): dict(v) for k, v in data.get("done", {}).items()}
        except FileNotFoundError:
            done = {}
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            raise VoiceError(f"cannot read {path} ({exc}): fix or delete it (recordings stay)") from None
        return cls(path, done)

    def is_done(self, text: str) -> bool:
        return text in self.done

    def mark(self, text: str, status: str, clip: str | None = None) -> None:
        self.done[text] = {"status": status, "clip": clip}
        self.save()

    def kept(self) -> int:
        return sum(1 for entry in self.done.values() if entry.get("status") == "kept")

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = {"done": self.done}
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps(body, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(temporary, self.path)


@dataclass
class RecordResult:
    kept: int  # this session
    skipped: int  # this session
    total_kept: int
    remaining: int
    quit: bool


def _key(ask: Ask, prompt: str) -> str:
    try:
        return ask(prompt).strip().lower()
    except EOFError:
        return "q"


def record_script(
    vdir: VoiceDir,
    *,
    backend,
    device: str | int | None = None,
    script: Path | None = None,
    ask: Ask = input,
    say: Say = print,
    max_s: float = 30.0,
) -> RecordResult:
    """Walk through the script from the first sentence not done yet; returns what happened."""
    lines = load_script(script)
    folder = vdir.recorded
    progress = Progress.load(folder / "progress.json")
    review_path = folder / "review.tsv"
    rows = {row.clip: row for row in read_review(review_path)}
    todo = [(n, text) for n, text in enumerate(lines, start=1) if not progress.is_done(text)]
    if not todo:
        kept = progress.kept()
        say(f"All {len(lines)} sentences are done ({kept} kept). Next: `chacha voice prepare`.")
        return RecordResult(0, 0, kept, 0, False)

    mic = Microphone(backend, device, max_s=max_s)
    mic.check()
    say(
        f"Recording into {folder}. {len(lines) - len(todo)} of {len(lines)} sentences are done; "
        f"starting at sentence {todo[0][0]}."
    )
    say(
        "Read each sentence as you would say it to 진주. Keys: Enter = start/stop, then "
        "Enter = keep · r = retake · s = skip · q = quit (you can stop any time and go on later)."
    )
    kept = skipped = 0
    quit_now = False
    for number, text in todo:
        say("")
        say(f"[{number}/{len(lines)}] {text}")
        while True:
            key = _key(ask, "  Enter = start recording · s = skip · q = quit > ")
            if key in ("q", "s"):
                break
            audio = mic.record(lambda: _key(ask, "  ● recording… Enter = stop > "))
            check = check_take(audio)
            say("  " + check.summary())
            if check.has_speech:
                key = _key(ask, "  Enter = keep · r = retake · s = skip · q = quit > ")
            else:
                key = _key(ask, "  Enter/r = retake · s = skip · q = quit > ") or "r"
            if key in ("", "k"):
                clip = clip_name(number, text)
                _write_wav(folder / clip, audio)
                rows[clip] = ReviewRow(clip, text, "ok")
                write_review(review_path, sorted(rows.values(), key=lambda r: r.clip))
                progress.mark(text, "kept", clip)
                kept += 1
                break
            if key in ("q", "s"):
                break
            # anything else: record it again
        if key == "s":
            progress.mark(text, "skipped")
            skipped += 1
        elif key == "q":
            quit_now = True
            break
    total_kept = progress.kept()
    remaining = sum(1 for line in lines if not progress.is_done(line))
    say("")
    say(
        f"{kept} take(s) kept and {skipped} skipped this time; {total_kept} kept in all, "
        f"{remaining} sentence(s) to go."
        + (" Run `chacha voice record` again to go on." if remaining else " Next: `chacha voice prepare`.")
    )
    return RecordResult(kept, skipped, total_kept, remaining, quit_now)


def clip_name(number: int, text: str) -> str:
    """``wavs/NNNN-hhhhhh.wav``: the line number to sort by, a hash of the text to never collide."""
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:6]
    return f"wavs/{number:04d}-{digest}.wav"


def _write_wav(path: Path, samples: np.ndarray) -> None:
    import soundfile

    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.stem + ".tmp.wav")
    soundfile.write(str(temporary), np.asarray(samples, dtype=np.int16), SAMPLE_RATE, subtype="PCM_16")
    os.replace(temporary, path)
