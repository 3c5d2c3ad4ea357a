# SPDX-License-Identifier: GPL-3.0-or-later
"""The text of a training clip: in the words the voice will later be asked to read.

At run time the doll reads text through :func:`tts.normalize.normalize_for_speech`
(numbers and common English words become Hangul, symbols go). Training text goes through the
same function, so the voice learns exactly the spellings it will be given. What it cannot
turn into Korean makes the clip unusable, because the audio would say something the text
does not:

* a symbol that normalisation silently drops (``+``, ``=``, ``/``, ``$``, ``:)``…) — he
  said *something* there, and nobody knows what;
* anything left after normalisation that is not Hangul, a space or ``. , ! ?`` (Latin words
  the lexicon does not know, kana, Chinese characters).
"""

from __future__ import annotations

import unicodedata

from tts.normalize import normalize_for_speech, speakable_sentence

_RAW_PUNCTUATION = set(".,!?~…'\"“”‘’")
_FINAL_PUNCTUATION = set(".,!?")
_QUOTES = str.maketrans({c: " " for c in "'\"“”‘’()「」『』《》"})


def is_hangul_syllable(char: str) -> bool:
    return "\uac00" <= char <= "\ud7a3"


def training_text(raw: str) -> tuple[str | None, str | None]:
    """``(text, None)`` with the text to train on, or ``(None, reason)`` when it cannot be used."""
    text = unicodedata.normalize("NFC", " ".join(str(raw).split()))
    if not text:
        return None, "no transcript (write what is said in the clip)"
    spoken = normalize_for_speech(text)
    dropped = []
    for char in sorted(set(text)):
        if is_hangul_syllable(char) or char.isspace() or char in _RAW_PUNCTUATION:
            continue
        if char.isascii() and char.isalnum():
            continue
        if normalize_for_speech(text.replace(char, " ")) == spoken:
            dropped.append(char)
    if dropped:
        return None, "unspeakable symbols " + " ".join(
            repr(c) for c in dropped
        ) + " (write them out in Hangul)"
    spoken = speakable_sentence(spoken.replace("\n", " ").replace("…", ",").translate(_QUOTES))
    spoken = " ".join(spoken.split())
    left = sorted({c for c in spoken if not (is_hangul_syllable(c) or c == " " or c in _FINAL_PUNCTUATION)})
    if left:
        return None, "cannot be read in Korean: " + " ".join(repr(c) for c in left) + " (write it in Hangul)"
    if not any(is_hangul_syllable(c) for c in spoken):
        return None, "no Hangul left to speak"
    return spoken, None
