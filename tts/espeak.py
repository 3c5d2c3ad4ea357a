"""espeak-ng as a speech engine: a subprocess per sentence, WAV read from its stdout."""

from __future__ import annotations

import logging
import shutil
import subprocess
import time

import numpy as np

from tts.audio import SpeechAudio, read_wav_bytes
from tts.errors import TTSError
from tts.normalize import speakable_sentence
from tts.settings import EspeakSettings

_LOGGER = logging.getLogger(__name__)

_PROBE_TEXT = "아"
_INSTALL_HINT = "run `sudo apt-get install espeak-ng`"


class EspeakEngine:
    """Korean speech from espeak-ng. The text goes in on stdin, never on the command line."""

    name = "espeak"

    def __init__(self, settings: EspeakSettings | None = None, timeout_s: float = 30.0) -> None:
        self.settings = settings or EspeakSettings()
        self.timeout_s = timeout_s
        executable = shutil.which(self.settings.executable)
        if executable is None:
            if self.settings.executable == "espeak-ng":
                raise TTSError(f"espeak-ng is not installed: {_INSTALL_HINT}")
            raise TTSError(
                f"espeak-ng not found at {self.settings.executable!r}: set tts.espeak.executable "
                f"to the espeak-ng program, or {_INSTALL_HINT}"
            )
        self._command = [
            executable,
            "-v", self.settings.voice,
            "-s", str(self.settings.rate_wpm),
            "-p", str(self.settings.pitch),
            "-b", "1",  # the input is UTF-8
            "--stdout",
        ]  # fmt: skip
        # espeak-ng decides the sample rate (22050 Hz); learn it once from a short probe.
        _, self.sample_rate = self._run(_PROBE_TEXT)
        _LOGGER.info(
            "espeak-ng ready: voice %s, %d wpm, pitch %d, %d Hz",
            self.settings.voice,
            self.settings.rate_wpm,
            self.settings.pitch,
            self.sample_rate,
        )

    def synthesize_sentence(self, sentence: str) -> SpeechAudio:
        """One sentence of audio; an empty sentence gives empty audio without running espeak."""
        spoken = speakable_sentence(sentence)
        if not spoken:
            return SpeechAudio(sentence, np.zeros(0, dtype=np.int16), self.sample_rate)
        started = time.perf_counter()
        samples, rate = self._run(spoken)
        if rate != self.sample_rate:
            raise TTSError(
                f"espeak-ng changed its sample rate from {self.sample_rate} Hz to {rate} Hz: "
                "recreate the engine"
            )
        _LOGGER.debug(
            "espeak-ng: %d chars → %.2f s of audio in %.3f s",
            len(spoken),
            len(samples) / rate,
            time.perf_counter() - started,
        )
        return SpeechAudio(sentence, samples, rate)

    def _run(self, text: str) -> tuple[np.ndarray, int]:
        try:
            result = subprocess.run(
                self._command,
                input=text.encode("utf-8"),
                capture_output=True,
                timeout=self.timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise TTSError(
                f"espeak-ng took longer than {self.timeout_s:.0f} s: "
                "check the machine's load or shorten the sentence"
            ) from exc
        except OSError as exc:
            raise TTSError(f"cannot run espeak-ng ({exc}): {_INSTALL_HINT}") from exc
        stderr = " ".join(result.stderr.decode("utf-8", "replace").split())
        if result.returncode != 0 or not result.stdout:
            raise TTSError(
                f"espeak-ng failed (exit {result.returncode}: {stderr or 'no output'}) — "
                f"check tts.espeak.voice {self.settings.voice!r} exists (`espeak-ng --voices`)"
            )
        return read_wav_bytes(result.stdout)
