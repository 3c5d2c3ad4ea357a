# SPDX-License-Identifier: GPL-3.0-or-later
"""The recording script: sentences for 차차 to read, one a line.

The shipped script (``data/script_ko.txt``) holds everyday things he says to 진주, short to
medium, with numbers written as words, questions and exclamations, and every Hangul initial,
vowel and final consonant (including the rare double finals such as ㄳ ㄵ ㄺ ㄻ ㄼ ㄽ ㄾ ㄿ ㅀ ㅄ)
at least once, so the voice hears each sound in his mouth.
"""

from __future__ import annotations

from pathlib import Path

from tts.voice.errors import VoiceError

SCRIPT_KO = Path(__file__).resolve().parent / "data" / "script_ko.txt"

INITIALS = "ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ"
VOWELS = "ㅏㅐㅑㅒㅓㅔㅕㅖㅗㅘㅙㅚㅛㅜㅝㅞㅟㅠㅡㅢㅣ"
FINALS = "ㄱㄲㄳㄴㄵㄶㄷㄹㄺㄻㄼㄽㄾㄿㅀㅁㅂㅄㅅㅆㅇㅈㅊㅋㅌㅍㅎ"


def load_script(path: Path | None = None) -> list[str]:
    """The script's sentences (blank lines and lines starting with # are left out)."""
    path = path or SCRIPT_KO
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise VoiceError(
            f"recording script not found: {path} — give a UTF-8 text file, one sentence a line"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise VoiceError(f"cannot read the recording script {path}: {exc} — save it as UTF-8 text") from exc
    lines = [" ".join(line.split()) for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    if not lines:
        raise VoiceError(f"the recording script {path} has no sentences — write one sentence a line")
    return lines


def jamo_coverage(lines: list[str]) -> tuple[set[str], set[str], set[str]]:
    """The initials, vowels and final consonants that occur in ``lines``."""
    initials: set[str] = set()
    vowels: set[str] = set()
    finals: set[str] = set()
    for line in lines:
        for char in line:
            if not "\uac00" <= char <= "\ud7a3":
                continue
            code = ord(char) - 0xAC00
            initials.add(INITIALS[code // 588])
            vowels.add(VOWELS[(code % 588) // 28])
            if code % 28:
                finals.add(FINALS[code % 28 - 1])
    return initials, vowels, finals
