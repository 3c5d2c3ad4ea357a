"""What chat text says with pictures rather than words: emoji, emoticons, jamo shorthand.

Emoji and emoticons (^^, :), T_T, ㅠㅠ, ;; …) are removed: read aloud they would be noise.
Laughter in jamo becomes a short laugh she can hear — ㅋㅋ… → 크크, ㅎㅎ… → 헤헤 — because
차차 laughing is part of how he talks. Common jamo shorthand is spelt out (ㅇㅋ → 오케이,
ㅇㅇ → 응); any other bare jamo (ㄷㄷ, ㅡㅡ, a lone ㅋ) is dropped.
"""

from __future__ import annotations

import re

EMOJI_CLASS = (
    "\U0001f000-\U0001faff"  # pictographs, emoticons, transport, flags, skin tones …
    "\u2600-\u27bf"  # miscellaneous symbols and dingbats (☀ ♥ ♡ ★ ✨ ❤)
    "\u2b00-\u2bff"  # arrows and stars (⭐ ⬆)
    "\u2300-\u23ff"  # technical symbols that are emoji (⌚ ⏰ ⌛)
    "\u2190-\u21ff"  # arrows (↔ ↩)
    "\u25a0-\u25ff"  # geometric shapes (▶ ◀ ◼)
    "\ufe00-\ufe0f"  # variation selectors
    "\u200d"  # zero-width joiner
    "\u20e3"  # combining keycap
    "\U000e0020-\U000e007f"  # tag characters (subdivision flags)
    "\u3030\u303d\u3297\u3299\u00a9\u00ae\u2122\u2139"
)
_EMOJI = re.compile(f"[0-9#*]\ufe0f?\u20e3|[{EMOJI_CLASS}]+")

_EMOTICONS = re.compile(
    "|".join(
        (
            # ^^  ^_^  ^o^  *^^*  ^^;;
            r"\*?\^+[_\-o.~ㅅ]?\^+;*\*?",
            # T_T  T.T  ToT  o_O  -_-  >_<  ;_;  ㅠ.ㅠ  ㅡ_ㅡ  @_@  =_=
            r"(?<![A-Za-z0-9])[TㅠㅜOo@=;\-ㅡ>][_.\-^oㅅ][TㅠㅜOo@=;\-ㅡ<](?![A-Za-z0-9])",
            # :)  :-)  ;)  :(  :D  :P  :p  :O  :3  =)  :'(
            r"(?<![0-9A-Za-z:])[:;=]['\-^]?[)(\]\[DPpOo3|/\\*]+(?![0-9A-Za-z])",
            # XD  xD
            r"(?<![A-Za-z])[xX]D+(?![A-Za-z])",
            # <3  </3
            r"(?<![0-9A-Za-z<])<\/?3+(?![0-9])",
        )
    )
)

JAMO_SHORTHAND: dict[str, str] = {
    "ㅇㅋ": "오케이",
    "ㅇㅇ": "응",
    "ㄱㄱ": "고고",
    "ㄴㄴ": "노노",
    "ㅊㅋ": "축하해",
    "ㄱㅅ": "감사",
    "ㅅㄱ": "수고",
    "ㅂㅂ": "바이바이",
    "ㅈㅅ": "죄송",
}
_JAMO_RUN = re.compile("[\u3131-\u318e]+")
_LAUGHTER = re.compile("[ㅋㅎ]{2,}")


def remove_emoji(text: str) -> str:
    """Drop emoji, including keycaps, flags, skin tones and ZWJ sequences."""
    return _EMOJI.sub(" ", text)


def remove_emoticons(text: str) -> str:
    """Drop text emoticons such as ^^, ^_^, :), :D, T_T, ㅠ.ㅠ, XD and <3."""
    return _EMOTICONS.sub(" ", text)


def _laugh(match: re.Match[str]) -> str:
    return " 크크 " if "ㅋ" in match.group(0) else " 헤헤 "


def _read_jamo_run(match: re.Match[str]) -> str:
    run = match.group(0)
    if run in JAMO_SHORTHAND:
        return f" {JAMO_SHORTHAND[run]} "
    spoken = _LAUGHTER.sub(_laugh, run)
    return _JAMO_RUN.sub(" ", spoken)


def read_jamo(text: str) -> str:
    """Jamo-only chat marks: laughter to 크크/헤헤, shorthand spelt out, the rest dropped."""
    return _JAMO_RUN.sub(_read_jamo_run, text)
