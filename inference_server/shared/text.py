"""Text that can always be written: broken Unicode mended before it reaches SQLite, JSON or a file.

A Python string can hold what UTF-8 cannot: a lone UTF-16 surrogate (U+D800–U+DFFF). JSON lets a
client send one (``"\\ud800"``), Telegram's UTF-16 text cut in the middle of an emoji leaves one,
and a streaming model may send an emoji's two halves in two pieces. Written to SQLite or encoded
as UTF-8, such a string raises UnicodeEncodeError. `mend_text` joins the halves that belong
together and turns each one left alone into U+FFFD (�), the usual mark of a character lost.
"""

from __future__ import annotations

import hashlib

REPLACEMENT = "\ufffd"


def mend_text(text: str) -> str:
    """``text`` with surrogate pairs joined and every lone surrogate replaced by U+FFFD.

    Text that is already valid comes back as it is (the same object), at the cost of one
    UTF-8 encode.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def mend_any(value: object) -> object:
    """`mend_text` on every string in a JSON-like value (dict keys too); other values as they are."""
    if isinstance(value, str):
        return mend_text(value)
    if isinstance(value, dict):
        return {mend_any(k): mend_any(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mend_any(v) for v in value]
    return value


# --- what was forgotten, without keeping it ----------------------------------------------------

_FORGOTTEN = b"chachaping forgotten\x00"


def said_digest(text: str) -> str:
    """The SHA-256 of what was said, its spaces folded: how a forgotten message is recognised
    in another store (the Telegram collector) without the forget log keeping its words."""
    folded = " ".join(mend_text(text).split())
    return hashlib.sha256(_FORGOTTEN + folded.encode("utf-8")).hexdigest()


def word_digest(word: str) -> str:
    """The SHA-256 of one word of a forgotten topic (see :func:`holds_words`)."""
    return hashlib.sha256(_FORGOTTEN + b"word\x00" + mend_text(word).encode("utf-8")).hexdigest()


def holds_words(text: str, words: list[tuple[int, str]]) -> bool:
    """Whether `text` holds at least half of a topic's words, given as (length, word_digest):
    the rule by which the server erases a topic's turns, applied without the words themselves."""
    if not words:
        return False
    text = mend_text(text)
    found = 0
    for length, digest in words:
        if length <= 0 or length > len(text):
            continue
        if any(word_digest(text[i : i + length]) == digest for i in range(len(text) - length + 1)):
            found += 1
    return found * 2 >= len(words)
