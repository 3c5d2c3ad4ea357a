"""Korean text for memory: the raw observation of a turn, the canonical form that is embedded,
the words the lexical score counts, and "잊어줘" (pure functions, no models).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_HANGUL = re.compile(r"[가-힣]")
_WORD = re.compile(r"[0-9A-Za-z가-힣]+")

# The frame every observation shares ("진주가 … 했다고 했다"): it says nothing about the topic,
# so the canonical form that is embedded leaves it out.
_SUBJECT = re.compile(r"^\s*(?:진주|내|나|차차)(?:가|는|도|이|이가)?\s+")
_REPORTED = re.compile(r"(?:이?라)?고\s*(?:했다|말했다|얘기했다|이야기했다|했어|말했어)\s*[.!]?\s*$")
_QUOTE = re.compile(r"^\s*(?:진주|내|나)가\s+[\"“]?(.*?)[\"”]?\s*(?:이?라고|하고)\s*말했다\s*\.?\s*$")


def letters(text: str) -> int:
    """How many letters (Hangul, Latin, digits) a text has."""
    return sum(1 for c in text if c.isalnum())


def clean(text: str) -> str:
    """NFC, one line, single spaces: the form every memory is stored in."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def turn_observation(partner: str, text: str) -> str:
    """Her turn as 차차 remembers it before reflection: `진주가 "…"라고 말했다`."""
    return f'{partner}가 "{clean(text)}"라고 말했다'


def canonical(text: str) -> str:
    """What is embedded: the observation without its shared frame.

    "진주가 새우 알레르기가 있다고 했다" → "새우 알레르기가 있다";
    '진주가 "나 새우 먹으면 두드러기 나"라고 말했다' → "나 새우 먹으면 두드러기 나".
    """
    text = clean(text)
    quoted = _QUOTE.match(text)
    if quoted:
        return quoted.group(1).strip() or text
    core = _REPORTED.sub("", _SUBJECT.sub("", text, count=1))
    return core.strip() or text


# Words of talk that carry no topic ("너무", "진짜", "벌써"): a memory sharing one is no nearer.
_FILLERS = frozenset(
    [
        "너무",
        "진짜",
        "정말",
        "완전",
        "엄청",
        "되게",
        "벌써",
        "아직",
        "그냥",
        "조금",
        "하나도",
        "방금",
        "지금",
        "이제",
        "다시",
        "무슨",
        "어떻게",
        "뭐가",
        "뭐",
        "이거",
        "그거",
        "저거",
        "우리",
        "나도",
        "나는",
        "내가",
        "너는",
        "네가",
        "근데",
        "그런데",
        "그래서",
        "그리고",
        "오늘",
        "요즘",
        "자꾸",
        "계속",
        "또",
        "막",
        "좀",
        "많이",
        "같아",
        "있어",
        "없어",
        "했어",
        "하는데",
        "해서",
        "하고",
        "했는데",
        "거야",
        "건데",
        "것",
        "같아",
    ]
)

# One-syllable words that carry no topic (pronouns, adverbs, fillers); "밥", "약", "집" do.
_LITTLE_WORDS = frozenset(
    [
        "나",
        "너",
        "난",
        "넌",
        "내",
        "네",
        "저",
        "전",
        "제",
        "걔",
        "얘",
        "또",
        "좀",
        "더",
        "잘",
        "못",
        "안",
        "다",
        "그",
        "이",
        "저",
        "거",
        "것",
        "뭐",
        "왜",
        "수",
        "게",
        "걸",
        "건",
        "꼭",
        "막",
        "딱",
        "응",
        "음",
        "어",
        "아",
        "와",
        "흠",
        "참",
        "곧",
        "늘",
        "꽤",
        "왜",
        "한",
        "두",
        "세",
        "네",
    ]
)


MAX_PREFIX = 6


def word_terms(text: str) -> list[list[str]]:
    """The terms of a text word by word: a word meets a memory by its longest shared prefix."""
    groups: list[list[str]] = []
    for word in _WORD.findall(clean(text).lower()):
        found = terms(word)
        if found:
            groups.append(found)
    return groups


def terms(text: str) -> list[str]:
    """The lexical terms of a text: the leading 2–6 syllables of each Korean word, whole
    Latin/digit words, and one-syllable words that carry a topic.

    Korean glues particles and endings to the end of a stem ("알레르기가", "장마라던데"), so two
    words share their stem as a common prefix: "장마라던데" and "장마" meet at "장마", while
    "관자놀이" and "놀이" share no prefix and do not meet. A longer shared prefix shares more
    terms, and counts more.
    """
    found: list[str] = []
    for word in _WORD.findall(clean(text).lower()):
        if word in _FILLERS:
            continue
        if not _HANGUL.search(word):
            found.append(word)
        elif len(word) == 1:
            if word not in _LITTLE_WORDS:
                found.append(word)
        else:
            found.extend(word[:k] for k in range(2, min(len(word), MAX_PREFIX) + 1))
    return found


# --- "잊어줘" -------------------------------------------------------------------------------------

# Asking him to forget, at the end of what she says: 잊어줘 / 잊어 줘 / 잊어버려 / 잊어 주세요 /
# 잊자 / 기억하지 마 / 기억에서 지워 줘. "잊어버렸어" (I forgot) is not a request and does not match.
_FORGET = re.compile(
    r"(?:잊어\s*(?:버려|버려\s*줘|버려\s*주세요|버리자|줘|주세요|줄래|줄\s*수\s*있어)"
    r"|잊자|잊으라고|기억\s*하지\s*마(?:라|요)?|기억\s*(?:에서|속에서)\s*(?:지워|빼)\s*(?:줘|주세요)?)"
    r"(?:\s*(?:줘|요|라|제발))*\s*[.!?~…]*\s*$"
)
# Words that point at what to forget without naming it.
_POINTERS = re.compile(
    r"(?:^|\s)(?:그거|그것|그건|이거|이건|저거|그\s*얘기|그\s*이야기|그\s*말|방금|아까|내가|나|제발|그냥|좀|다|전부|말한|한|했던|얘기|이야기|말|것|거|건|은|는|을|를)(?=\s|$)"
)


@dataclass(frozen=True)
class ForgetRequest:
    """She asked him to forget something: `topic` names it, or is empty for "what I just said"."""

    topic: str


def forget_request(text: str) -> ForgetRequest | None:
    """The request to forget in what she said, if it is one."""
    text = clean(text)
    match = _FORGET.search(text)
    if match is None:
        return None
    rest = text[: match.start()]
    rest = re.sub(r"[.,!?~…\"'“”]", " ", rest)
    for _ in range(3):  # pointers can follow one another ("방금 내가 말한 거")
        rest = _POINTERS.sub(" ", rest)
    rest = re.sub(r"(?:얘기|이야기|말|거|건|것)(?:은|는|을|를|도)?(?=\s|$)", " ", rest)
    topic = " ".join(rest.split())
    return ForgetRequest(topic if letters(topic) >= 2 else "")
