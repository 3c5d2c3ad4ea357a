"""A chat reply turned into text a Korean speech engine can read out.

``normalize_for_speech`` removes what should not be read aloud (emoji, emoticons,
markdown, URLs, e-mail addresses, code and its symbols), spells out what must be read in
Korean (numbers, common English words, acronyms, jamo laughter: ㅋㅋ → 크크, ㅎㅎ → 헤헤),
and keeps the sentence punctuation (. ! ? ~ …) and line breaks the sentence splitter needs.
It never raises and is idempotent: normalising its own output changes nothing.
"""

from __future__ import annotations

import re
import unicodedata

from tts.chat_expressions import read_jamo, remove_emoji, remove_emoticons
from tts.lexicon import read_latin
from tts.number_reading import read_numbers

_FULLWIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
_PUNCTUATION_ALIASES = str.maketrans({"‼": "!!", "⁉": "?!", "⋯": "…", "～": "~", "〜": "~"})

_HORIZONTAL_SPACE = re.compile(r"[^\S\n]+")
# A ``` fence may open anywhere; a ~~~ fence only at the start of a line, since "~~~"
# inside a line is a drawn-out ending ("좋아~~~").
_FENCED_CODE = re.compile(r"```.*?(?:```|\Z)|^[ \t]*~~~.*?(?:^[ \t]*~~~[^\n]*$|\Z)", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`+([^`\n]*)`+")
_LINK = re.compile(r"!?\[([^[\]\n]*)\]\([^)\n]*\)")
_URL = re.compile(
    r"<?(?:https?://|ftp://|www\.)[^\s<>\"'\])]*[^\s<>\"'\])}.,!?~…:;]>?"
    r"|(?<![\w.-])[\w-]+(?:\.[\w-]+)*\.(?:com|net|org|io|dev|ai|kr|co\.kr|me)\b(?:/\S*)?",
    re.IGNORECASE | re.ASCII,
)
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.ASCII)

_HEADING = re.compile(r"^[ \t]*#{1,6}[ \t]+|(?<![ \t])[ \t]+#+[ \t]*$", re.MULTILINE)
_BLOCKQUOTE = re.compile(r"^[ \t]*(?:>[ \t]?)+", re.MULTILINE)
_LIST_MARKER = re.compile(r"^[ \t]*(?:[-*+•·]|\d{1,2}[.)])[ \t]+", re.MULTILINE)
_INLINE_LIST_NUMBER = re.compile(r"(?<![\w(])\d{1,2}\)[ \t]")  # "1) 밥 먹기 2) 잠 자기"
_RULE = re.compile(r"^[ \t]*([-*_=])(?:[ \t]*\1){2,}[ \t]*$", re.MULTILINE)

# Everything that is not a letter, a line break, a space or speakable punctuation goes.
_UNSPEAKABLE = re.compile(
    r"[^\n \t"
    "\uac00-\ud7a3"  # Hangul syllables
    "A-Za-z\u00c0-\u024f"  # Latin letters, with accents
    "\u3040-\u30ff\u4e00-\u9fff"  # kana and CJK ideographs
    ".,!?…~'\"“”‘’()「」『』《》"
    "]+"
)
_APOSTROPHE_OUTSIDE_WORD = re.compile(r"(?<![A-Za-z])'|'(?![A-Za-z])")
_EMPTY_PAIR = re.compile(r"\(\s*\)|\"\s*\"|“\s*”|‘\s*’|「\s*」|『\s*』|《\s*》")
_REPEATED_MARK = re.compile(r"([!?~,…])\1+")
_DOTS = re.compile(r"\.{2,}")
_SPACE_BEFORE_MARK = re.compile(r"(?<![ \t])[ \t]+(?=[.,!?…~)」』》”’])")
_SPACE_AFTER_OPENING = re.compile(r"(?<=[(「『《“‘])[ \t]+")
_LEADING_MARKS = re.compile(r"^[ \t.,!?…~]+", re.MULTILINE)
_COMMA_BEFORE_END = re.compile(r"(?<!,),+(?=[.!?…~]|$)", re.MULTILINE)


def _remove_markup(text: str) -> str:
    text = _FENCED_CODE.sub("\n", text)
    text = _INLINE_CODE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _EMAIL.sub(" ", text)
    text = _URL.sub(" ", text)
    text = _RULE.sub("", text)
    text = _HEADING.sub("", text)
    text = _BLOCKQUOTE.sub("", text)
    text = _LIST_MARKER.sub("", text)
    return _INLINE_LIST_NUMBER.sub(" ", text)


def _balance_parentheses(line: str) -> str:
    """Drop a "(" or ")" that has no partner on its line ("2) 잠 자기", code leftovers)."""
    if "(" not in line and ")" not in line:
        return line
    chars = list(line)
    open_positions: list[int] = []
    for index, char in enumerate(chars):
        if char == "(":
            open_positions.append(index)
        elif char == ")":
            if open_positions:
                open_positions.pop()
            else:
                chars[index] = " "
    for index in open_positions:
        chars[index] = " "
    return "".join(chars)


def _tidy(text: str) -> str:
    text = _UNSPEAKABLE.sub(" ", text)
    text = "\n".join(_balance_parentheses(line) for line in text.split("\n"))
    text = _APOSTROPHE_OUTSIDE_WORD.sub(" ", text)
    text = _EMPTY_PAIR.sub(" ", text)
    text = _REPEATED_MARK.sub(r"\1", text)
    text = _DOTS.sub("...", text)
    text = _SPACE_BEFORE_MARK.sub("", text)
    text = _SPACE_AFTER_OPENING.sub("", text)
    text = _COMMA_BEFORE_END.sub("", text)
    lines = (" ".join(line.split()) for line in text.split("\n"))
    text = "\n".join(line for line in lines if line)
    return _LEADING_MARKS.sub("", text)


def speakable_sentence(sentence: str) -> str:
    """The last touch before an engine reads a sentence: espeak-ng says "tilde" for ~.

    A "~" only marks a drawn-out, playful ending in chat, so it is dropped here, after
    the sentence splitter has used it.
    """
    return " ".join(sentence.replace("~", " ").split())


def normalize_for_speech(text: str) -> str:
    """Turn a chat reply into text a Korean TTS engine can speak.

    Line breaks are kept (one per line of text) because each ends a sentence; runs of
    spaces collapse to one.
    """
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = text.translate(_FULLWIDTH).translate(_PUNCTUATION_ALIASES)
    text = _HORIZONTAL_SPACE.sub(" ", text)
    text = _remove_markup(text)
    text = remove_emoji(text)
    text = remove_emoticons(text)
    text = read_jamo(text)
    text = read_latin(text)
    text = read_numbers(text)
    for _ in range(2):  # removing a mark can make a new pair ("( , )") empty
        text = _tidy(text)
    return text


def clean_reply_text(text: str) -> str:
    """A reply made fit to be spoken *and* shown: markup, emoji, emoticons, URLs and code go.

    Unlike ``normalize_for_speech`` it keeps digits and Latin words as written, because the
    same text is shown on Telegram; the speech engines normalise it further themselves.
    """
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = text.translate(_FULLWIDTH).translate(_PUNCTUATION_ALIASES)
    text = _remove_markup(text)
    text = remove_emoji(text)
    text = remove_emoticons(text)
    text = text.replace("*", " ").replace("_", " ").replace("`", " ").replace("#", " ")
    text = _REPEATED_MARK.sub(r"\1", text)
    text = _SPACE_BEFORE_MARK.sub("", text)
    lines = (" ".join(line.split()) for line in text.split("\n"))
    return _LEADING_MARKS.sub("", " ".join(line for line in lines if line)).strip()
