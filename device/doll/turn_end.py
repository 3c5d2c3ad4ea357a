# SPDX-License-Identifier: GPL-3.0-or-later
"""Has she finished her turn? How long a silence to wait for, from the words heard so far.

A fixed wait is either slow (it waits as long after a finished sentence as after a pause for
breath) or unsafe (a 600 ms pause in the middle of a sentence ends her turn). Korean marks
the end of a sentence in its last word: a final ending (…요, …다, …까, …죠, …지, …어/아 …)
makes an end likely; a connective ending (…는데, …고, …서, …면), a particle (…은/는, …을/를,
…에서) or a filler (음, 어, 그…) makes it unlikely. :func:`ending_cue` reads the last word of
the streaming recogniser's partial text; :class:`TurnEnd` turns the cue into the silence to
wait for, between ``loop.min_silence_ms`` and ``loop.max_silence_ms``.

The cue is only as good as the partial text: a misheard last word gives the wrong cue, and
with no words (a recogniser without partials, or speech it cannot read) the wait is the
neutral ``loop.silence_ms``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Cue = Literal["final", "continuing", "neutral"]


def _listed(*lines: str) -> list[str]:
    return " ".join(lines).split()


def _longest_first(*lines: str) -> tuple[str, ...]:
    return tuple(sorted(set(_listed(*lines)), key=len, reverse=True))


# Whole words that say more is coming: fillers, and conjunctions that open a clause.
_CONTINUING_WORDS = frozenset(
    _listed(
        "음 음음 으음 어 어어 아 그 저 저기 막 좀 이제 뭐 뭔가 약간 그냥 만약 만약에 또 또는 및",
        "그래서 그러니까 그니까 근까 근데 그런데 그리고 그러면 그럼 그러다가 왜냐하면 아니면",
    )
)
# Word endings that continue the sentence: connective endings and particles.
_CONTINUING_ENDINGS = _longest_first(
    "는데 은데 던데 인데 한데 는데도",
    "면서 으면서 면 으면 려면 려고 으려고 러 으러 도록 거나 든지 든가",
    "지만 어도 아도 여도 해도 라도 어야 아야 여야 해야",  # …어야: a condition
    "어서 아서 여서 해서 서 고 며 으며 니까 으니까 므로 다가 다면 자면 라면",
    "은 는 이 가 을 를 에 에서 에게 한테 께 의 와 과 랑 이랑 하고 도 만 로 으로",
    "부터 까지 보다 처럼 같이 이나 나 이든 든",
    "게",  # …게 of manner (어떻게, 예쁘게); a promise (할게) is told apart in ending_cue
)
# Word endings that close a sentence: statements, questions, suggestions, requests.
_FINAL_ENDINGS = _longest_first(
    "요 다 까 죠 지 네 래 냐 니 자 어 아 야 해 걸 군 구나 거든 잖아 대 더라 랴 지마 세 오 소",
    "니다 니까요 나요 가요 래요 데요 할래 줘 봐 와 가 돼 했어 했다",
)
_WORD = re.compile(r"[가-힣]+")


def last_word(text: str) -> str:
    """The last run of Hangul syllables in ``text`` ("" when there is none)."""
    words = _WORD.findall(text)
    return words[-1] if words else ""


def ending_cue(text: str) -> Cue:
    """Whether the last word of ``text`` ends a sentence, continues one, or gives no cue.

    Question and exclamation marks end a sentence whatever the word; a filler or a
    conjunction alone continues it; otherwise the longest matching ending decides, a
    continuing ending winning a tie (a pause after "먹고" is more likely a breath than an end).
    """
    stripped = text.rstrip()
    if stripped.endswith(("?", "!", ".")):
        return "final"
    word = last_word(stripped)
    if not word:
        return "neutral"
    if word in _CONTINUING_WORDS:
        return "continuing"
    if word == "마" or _is_promise(word):  # 하지 마; 할게, 먹을게
        return "final"
    if word.endswith("요"):  # polite speech: …는데요 and …거든요 end a sentence too
        return "final"
    continuing = next((e for e in _CONTINUING_ENDINGS if word.endswith(e)), "")
    final = next((e for e in _FINAL_ENDINGS if word.endswith(e)), "")
    if not continuing and not final:
        return "neutral"
    if len(final) > len(continuing):
        return "final"
    return "continuing"


def _is_promise(word: str) -> bool:
    """…ㄹ게 (할게, 갈게, 먹을게): "게" after a syllable ending in ㄹ closes a sentence."""
    if len(word) < 2 or not word.endswith("게") or not "가" <= word[-2] <= "힣":
        return False
    return (ord(word[-2]) - ord("가")) % 28 == 8  # final consonant ㄹ


@dataclass(frozen=True)
class TurnEnd:
    """The silence after which her turn is over, given the words heard so far.

    ``fixed``: always ``neutral_s`` (the old behaviour, kept as a baseline and an option).
    ``adaptive``: ``final_s`` after a finished sentence, ``continuing_s`` after a connective
    or a filler, ``neutral_s`` when the words say neither.
    """

    mode: Literal["adaptive", "fixed"] = "adaptive"
    final_s: float = 0.3
    neutral_s: float = 0.7
    continuing_s: float = 1.5

    def silence_s(self, text: str) -> float:
        if self.mode == "fixed":
            return self.neutral_s
        return {"final": self.final_s, "continuing": self.continuing_s, "neutral": self.neutral_s}[
            ending_cue(text)
        ]
