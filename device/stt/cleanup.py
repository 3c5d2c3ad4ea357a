# SPDX-License-Identifier: GPL-3.0-or-later
"""Recognised text made fit for the LLM and the logs.

Vosk's small Korean model writes many words as morphemes separated by spaces
("그 는 디비전 이 피 하면서 기흥 옆으로 걸어갔 다"); :func:`clean_transcript`
puts the particles and verb endings it split off back onto the word before
("그는 디비전이 피하면서 기흥 옆으로 걸어갔다").

The re-spacing is conservative: a token is joined only when it is a known
particle or ending, the word before ends in a Hangul syllable, and nothing
around it says that the token is a word of its own. Tokens that are also
whole words follow their own rules:

* 이 (subject particle, copula — but also "this", "two", "tooth") joins after a
  syllable with a final consonant (디비전 이 피 → 디비전이 피) or before a copula
  ending (친구 이 야 → 친구이야), but not before a noun or counter that "this" or
  "two" goes with (그 사람 이 책 stays); after a number word it is the number
  two (삼십 이 → 삼십이).
* 가 (subject particle — but also the verb "go") joins after a syllable without a
  final consonant, unless it ends the sentence, is followed by a verb ending or
  comes after an adverb (친구 가 왔어 → 친구가 왔어; 학교 가 → 학교 가).
* 다 (ending — but also "all") joins at the end of the sentence or after a past
  or future stem (걸어갔 다 → 걸어갔다; 우리 다 먹었어 stays).
* 하다-forms (하면서, 했어 …) join a bare noun (피 하면서 → 피하면서) but never a
  word that already carries a particle or an adverb (공부를 하고, 많이 해, 안 해).
* No particle joins a word that already ends in 을/를/은/는 (나는 도 stays; only
  polite 요 and the endings of 먹는다, 먹을게 may), and
  no case particle, ending or 하다-form joins a word that already ends in a case
  particle such as 에/에서/으로 (집에 가 봐 stays); topic and other "extra"
  particles may follow one (학교에서 는 → 학교에서는).

The price of caution is that some splits stay (회의 하자, 그 사람 이 책), which
costs nothing in the character error rate (spaces are ignored there) and little
for the LLM, while a wrong join ("영화를보다") could change the meaning.

Whisper writes normal spacing, punctuation and digits, but sometimes loops: for
it the text only gets its whitespace and punctuation tidied and any phrase that
repeats three or more times in a row cut to one — a phrase of one word or more:
"좋아 좋아 좋아" → "좋아", while "진짜 진짜" stays. Digits are left as digits.

Both cleanings are idempotent: ``clean_transcript(clean_transcript(t, e), e)``
equals ``clean_transcript(t, e)``.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from device.stt import registry
from device.stt.transcript import Transcript, then

if TYPE_CHECKING:
    from device.stt.auto import Choice

import re
import unicodedata

__all__ = ["clean_transcript"]

_SYLLABLE_FIRST, _SYLLABLE_LAST = 0xAC00, 0xD7A3
_FINAL_N, _FINAL_SS = 4, 20  # ㄴ and ㅆ as final consonants (jongseong index)
# Compatibility jamo that may start an ending written on its own ("하 ㅂ니다"),
# with their jongseong index.
_JAMO_FINALS = {"ㄴ": 4, "ㄹ": 8, "ㅁ": 16, "ㅂ": 17, "ㅆ": 20}


def _is_syllable(ch: str) -> bool:
    return _SYLLABLE_FIRST <= ord(ch) <= _SYLLABLE_LAST


def _final(ch: str) -> int:
    """Jongseong index of a Hangul syllable: 0 when it ends in a vowel."""
    return (ord(ch) - _SYLLABLE_FIRST) % 28


def _has_final(word: str) -> bool:
    return _final(word[-1]) != 0


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# --- the tokens Vosk splits off -------------------------------------------------------

# Case and adverbial particles: they attach to a bare noun.
_CASE = _words(
    "을 를 의 에 에서 에게 에게서 한테 한테서 께 께서 으로 로 으로서 로서 으로써 로써"
    " 으로부터 로부터 이랑 랑 처럼 마다 보다"
)
# Auxiliary particles: they may also follow a case particle (학교에서는, 집에도, 까지만).
_AUX = _words("은 는 도 만 까지 부터 조차 마저 밖에 이나 이라도 라도 이든 이든지 든지 야말로 이야말로 요")
# Verb, adjective and copula endings: they attach to a stem or to another ending.
_ENDINGS = _words(
    "었 았 였 겠 셨 었다 았다 였다 겠다 었어 았어 였어 었어요 았어요 였어요 었고 았고"
    " 었는데 았는데 었지 았지 었으면 았으면 었던 았던 었습니다 았습니다 였습니다 겠습니다"
    " 겠어요 셨어요 습니다 습니까 니다 니까 는데 은데 는다 는지 은지 면서 으면서 지만 거든"
    " 거든요 잖아 잖아요 어요 아요 어서 아서 어도 아도 어야 아야 으면 으니까 으니 으며 며"
    " 고요 네요 지요 세요 으세요 려고 으려고 러 으러 도록 던 다가 냐 냐고 자고 라고 다고"
    " 이다 이에요 예요 이야 이었 이었다 이었어 답니다 군요 는군요 구나 는구나 ㅂ니다 ㅂ니까"
    " ㅂ시다 ㄴ다 ㄴ데 ㄹ게 ㄹ까 ㄹ래"
    " 다 고 서 면 지 죠 네 야 어 아 게 기 자 니"
)
# Suffixes of nouns: plural and honorific.
_NOUN_SUFFIXES = frozenset({"들", "님"})
# Forms of 하다/되다 that make a verb of the noun before (피 하면서 → 피하면서).
_HA_FORMS = _words(
    "하다 하고 하면 하면서 하는 하는데 하지 하지만 하게 하기 하니까 하며 하여 하여서 하러"
    " 하려고 하던 하도록 하세요 하셨 하셨어요 하자 한다 합니다 합니까 합시다 해 해서 해도"
    " 해야 해요 해라 해줘 했 했다 했어 했어요 했고 했는데 했지만 했습니다 했던 했으면"
    " 할게 할게요 할래 할까 되다 되고 되면 되는 되어 돼 돼요 됐 됐다 됐어 됐어요 됩니다"
    " 된다"
)
_SPECIAL = frozenset({"이", "가", "와", "과"})
_JOINABLE = _CASE | _AUX | _ENDINGS | _NOUN_SUFFIXES | _HA_FORMS | _SPECIAL

# A word that ends in one of these already carries a particle ...
_CORE_PARTICLE_ENDS = ("을", "를", "은", "는")  # ... after which nothing more is added
_CASE_PARTICLE_ENDS = (  # ... after which only an auxiliary particle (or 서, 요) may come
    "에서", "에게", "한테", "께서", "으로", "부터", "까지", "처럼", "마다", "에",
)  # fmt: skip
# Common nouns that merely look as if they ended in a particle.
_LOOKALIKE_NOUNS = frozenset({"가을", "마을", "노을", "고을", "처음"})
# Particles that 서 completes (에 서 → 에서, 에게 서 → 에게서).
_TAKES_SEO = ("에게", "한테", "으로", "에", "로")

# Adverbs: 가 after one is the verb "go" (빨리 가); no 하다-form or 어/아 joins one.
_ADVERBS = _words(
    "안 못 잘 더 덜 꼭 또 좀 참 막 딱 다 늘 왜 곧 확 푹 쭉 꽉 뭘 너무 아주 정말 진짜 그냥 제일"
    " 가장 먼저 다시 계속 이제 지금 아직 벌써 같이 어서 빨리"
)
# Determiners, numerals and short pronouns: no 하다-form or 어/아 joins one (그 하는 거).
_DETERMINERS = _words("이 그 저 요 한 두 세 네 몇 뭐 난 넌 전 널 날")
# Words ending like this are adverbs (많이, 열심히, 멀리, 이렇게, 서로).
_ADVERB_ENDS = ("이", "히", "리", "게", "로")
# A 하다-form is not joined to a word whose last syllable may be a particle or ending ...
_MAYBE_PARTICLE_SYLLABLES = frozenset("이가을를은는도만에의로와과랑요다고서면지야네죠게")
# ... except to these common nouns that take 하다 (사랑 해 → 사랑해).
_HA_NOUNS = _words("사랑 요리 정리 처리 관리 수리 기도 시도 사과")
# Endings that may follow a word ending in 는 or 을 (먹는 다 → 먹는다, 먹을 게 → 먹을게).
_AFTER_CORE = {"는": frozenset({"다"}), "을": frozenset({"게"})}

# What may follow 이 when it is the copula or a particle rather than "this"/"two".
_COPULA_NEXT = _words(
    "야 에요 었 었다 었어 었어요 었는데 었고 라고 라서 라면 란 고 지 죠 니까 면 네 요 잖아 지만 며 면서 다가"
)
# What may follow the verb 가 ("go"): 가 요, 가 자, 가 서 …
_VERB_NEXT = _words(
    "요 자 야 서 고 면 지 네 게 라 세요 봐 봐요 버려 줘 주세요 도 는 니 냐 죠 지마 면서 려고"
    " 고요 서요 라고 기 던 다 다가 는데"
)
# Nouns and counters that 이 ("this", "two") goes with: 이 사람, 이 개, 이 년.
_DETERMINER_HEADS = _words(
    "사람 것 거 건 게 분 번 년 월 일 시 초 살 개 명 권 장 잔 대 층 원 달러 주 달 시간 번째"
    " 마리 가지 배 개월 때 곳 쪽 날 정도 중 안 밖 앞 뒤 위 아래 옆 근처 집 책 친구 아이 애 말"
    " 얘기 이야기 노래 세상 동네 방 옷 이름 순간 만큼 경우 문제 부분 자리 상황 편 그림 장난감"
    " 인형 동안 다음 정말 진짜 놈 녀석 쪽지 길"
)
_SINO_NUMERAL_SYLLABLES = frozenset("영일이삼사오육칠팔구십백천만억조")


def _ends_with_particle(word: str, particles: tuple[str, ...]) -> bool:
    if word in _LOOKALIKE_NOUNS:
        return False
    return any(word.endswith(p) and len(word) > len(p) for p in particles)


def _starts_with_head(word: str | None) -> bool:
    """Whether ``word`` is one of the determiner heads, maybe with a particle on it."""
    if word is None:
        return False
    for head in _DETERMINER_HEADS:
        if word == head:
            return True
        if word.startswith(head):
            rest = word[len(head) :]
            if any(rest.startswith(suffix) for suffix in _JOINABLE):
                return True
    return False


def _is_numeral(word: str) -> bool:
    return all(ch in _SINO_NUMERAL_SYLLABLES for ch in word)


def _is_adverb(word: str) -> bool:
    return word in _ADVERBS or (len(word) >= 2 and word.endswith(_ADVERB_ENDS))


# --- one decision ---------------------------------------------------------------------


def _joins(prev: str, token: str, following: str | None) -> bool:
    """Whether ``token`` should be written together with the word ``prev`` before it.

    ``following`` is the token after ``token`` (None at the end of the text).
    """
    if token not in _JOINABLE or not prev or not _is_syllable(prev[-1]):
        return False
    if token == "요":  # polite 요 goes on anything: 저는 요 → 저는요
        return True
    if _ends_with_particle(prev, _CORE_PARTICLE_ENDS):
        if token not in _AFTER_CORE.get(prev[-1], ()):
            return False
    elif token == "서" and _ends_with_particle(prev, _TAKES_SEO):
        return True  # 에 서 → 에서
    elif token in _AUX:
        return _aux_joins(prev, token, following)
    elif _ends_with_particle(prev, _CASE_PARTICLE_ENDS):
        return False
    rule = _RULES.get(token)
    if rule is not None:
        return rule(prev, following)
    if token in _HA_FORMS:
        if prev in _HA_NOUNS:
            return True
        return not _is_adverb(prev) and prev not in _DETERMINERS and prev[-1] not in _MAYBE_PARTICLE_SYLLABLES
    if token[0] in "으은을과":  # said only after a final consonant
        return _has_final(prev)
    if token[0] in "어아":  # 먹 어 → 먹어, 민준 아 → 민준아; not after 좀, 그 ...
        return _has_final(prev) and prev not in _ADVERBS and prev not in _DETERMINERS
    if token[0] in _JAMO_FINALS:  # 하 ㅂ니다 → 합니다
        return not _has_final(prev)
    return True


def _aux_joins(prev: str, token: str, following: str | None) -> bool:
    if token == "만":  # 만 is also ten thousand: 삼 만 → 삼만, but 만 원, 만 명
        return _is_numeral(prev) or not _starts_with_head(following)
    if token == "은":
        return _has_final(prev)
    return True


def _i_joins(prev: str, following: str | None) -> bool:
    """이: subject particle or copula, or "this"/"two"/"tooth"."""
    if _is_numeral(prev):
        return True  # 삼십 이 → 삼십이
    if following is None:
        return _has_final(prev)
    if following in _COPULA_NEXT:
        return True
    return _has_final(prev) and not _starts_with_head(following)


def _ga_joins(prev: str, following: str | None) -> bool:
    """가: subject particle (after a vowel), or the verb "go"."""
    if _has_final(prev) or _is_adverb(prev):
        return False
    return following is not None and following not in _VERB_NEXT


def _wa_joins(prev: str, following: str | None) -> bool:
    """와: "and/with" (after a vowel), or the verb "come" (이리 와, 빨리 와요)."""
    return _ga_joins(prev, following)


def _da_joins(prev: str, following: str | None) -> bool:
    """다: sentence ending, or the adverb "all" (우리 다 먹었어)."""
    return following is None or _final(prev[-1]) == _FINAL_SS or prev[-1] in "겠니"


def _ji_joins(prev: str, following: str | None) -> bool:
    """지: ending (먹 지), but "since" after an adnominal in ㄴ (온 지 삼 년)."""
    return _final(prev[-1]) != _FINAL_N


def _final_only(prev: str, following: str | None, allowed: frozenset[str]) -> bool:
    return following is None or following in allowed


def _ne_joins(prev: str, following: str | None) -> bool:
    """네: ending (좋 네), but also "yes", "your", "four"."""
    if prev in ("네", "예", "응", "어", "아", "음", "아니"):
        return False
    return _final_only(prev, following, frozenset({"요"}))


def _ja_joins(prev: str, following: str | None) -> bool:
    """자: "let's" (가 자), but also "well then"."""
    if prev in _ADVERBS or prev in _DETERMINERS:
        return False
    return _final_only(prev, following, frozenset({"고", "요", "고요"}))


def _ni_joins(prev: str, following: str | None) -> bool:
    """니: question ending (먹 니), but also "your"."""
    return _final_only(prev, following, frozenset())


def _boda_joins(prev: str, following: str | None) -> bool:
    """보다: "than" (나 보다 커), but the verb "see" at the end (오나 보다)."""
    return following is not None


def _noun_suffix_joins(prev: str, following: str | None) -> bool:
    """들, 님: plural and honorific suffixes (사람 들 → 사람들), not after 다, 그 ..."""
    return prev not in _ADVERBS and prev not in _DETERMINERS


_RULES: dict[str, Callable[[str, str | None], bool]] = {
    "이": _i_joins,
    "가": _ga_joins,
    "와": _wa_joins,
    "다": _da_joins,
    "지": _ji_joins,
    "네": _ne_joins,
    "자": _ja_joins,
    "니": _ni_joins,
    "보다": _boda_joins,
    "들": _noun_suffix_joins,
    "님": _noun_suffix_joins,
}


def _attach(prev: str, token: str) -> str:
    """``prev`` and ``token`` written together; a leading jamo becomes a final consonant."""
    if token[0] in _JAMO_FINALS and not _has_final(prev):
        syllable = chr(ord(prev[-1]) + _JAMO_FINALS[token[0]])
        return prev[:-1] + syllable + token[1:]
    return prev + token


def _rejoin_once(tokens: list[str]) -> list[str]:
    words: list[str] = []
    for i, token in enumerate(tokens):
        following = tokens[i + 1] if i + 1 < len(tokens) else None
        if words and _joins(words[-1], token, following):
            words[-1] = _attach(words[-1], token)
        else:
            words.append(token)
    return words


def _rejoin_vosk(text: str) -> str:
    tokens = text.split()
    while True:  # to a fixed point, so that cleaning clean text changes nothing
        joined = _rejoin_once(tokens)
        if joined == tokens:
            return " ".join(joined)
        tokens = joined


# --- Whisper --------------------------------------------------------------------------

_CLOSING_PUNCTUATION = ".,!?;:…)]}”’」』"
_SPACE_BEFORE_PUNCTUATION = re.compile(rf"\s+(?=[{re.escape(_CLOSING_PUNCTUATION)}])")
_SAME_MARK_RUN = re.compile(r"([?!,;:…])\1+")
_LONG_DOTS = re.compile(r"\.{4,}")
_LOOP_MIN_REPEATS = 3
_EDGE_PUNCTUATION = re.compile(r"^[^\w]+|[^\w]+$")


def _tidy_punctuation(text: str) -> str:
    text = " ".join(text.split())
    text = _SPACE_BEFORE_PUNCTUATION.sub("", text)
    text = _SAME_MARK_RUN.sub(r"\1", text)
    return _LONG_DOTS.sub("...", text)


def _key(word: str) -> str:
    return _EDGE_PUNCTUATION.sub("", word).casefold() or word


def _collapse_loops(words: list[str]) -> list[str]:
    """Any run of words repeated three or more times in a row, cut to one occurrence.

    The kept occurrence takes the punctuation of the last one ("좋아, 좋아, 좋아!" → "좋아!").
    """
    keys = [_key(word) for word in words]
    out: list[str] = []
    i = 0
    while i < len(words):
        for size in range(1, (len(words) - i) // _LOOP_MIN_REPEATS + 1):
            unit = keys[i : i + size]
            repeats = 1
            while keys[i + repeats * size : i + (repeats + 1) * size] == unit:
                repeats += 1
            if repeats >= _LOOP_MIN_REPEATS:
                end = i + repeats * size
                out.extend(words[i : i + size - 1])
                out.append(words[end - 1])
                i = end
                break
        else:
            out.append(words[i])
            i += 1
    return out


def _clean_whisper(text: str) -> str:
    while True:
        cleaned = " ".join(_collapse_loops(_tidy_punctuation(text).split()))
        if cleaned == text:
            return cleaned
        text = cleaned


# --- entry point ----------------------------------------------------------------------


def clean_transcript(text: str, engine: str) -> str:
    """Recognised ``text`` tidied for the LLM and the logs; "" stays "".

    ``engine`` is the recogniser that wrote it; its registration
    (``device.stt.registry``) says how its text is cleaned: "vosk" (re-spacing of
    split particles and endings), "whisper" (whitespace, punctuation and loops),
    "plain" (whitespace only, as for an engine nobody registered) or a function.
    """
    text = unicodedata.normalize("NFC", text)
    spec = registry.find(engine)
    cleanup = spec.cleanup if spec is not None else "plain"
    if callable(cleanup):
        return cleanup(text)
    return CLEANUPS[cleanup](text)


CLEANUPS: dict[str, Callable[[str], str]] = {
    "vosk": lambda text: _rejoin_vosk(text),
    "whisper": lambda text: _clean_whisper(" ".join(text.split())),
    "plain": lambda text: " ".join(text.split()),
}
"""The ways an engine's text is cleaned, by the name its registration gives."""


# --- recognisers whose text comes out cleaned -------------------------------------------------


class CleanTranscriber:
    """Wraps a recogniser so its text comes out cleaned for the LLM and the logs."""

    def __init__(self, inner, choice: Choice) -> None:
        self.inner = inner
        self.choice = choice
        self.engine = inner.engine
        self.sample_rate = inner.sample_rate

    def transcribe(self, samples: np.ndarray) -> Transcript:
        return self._clean(self.inner.transcribe(samples))

    def stream(self) -> CleanUtterance:
        """Hear one utterance live: ``feed(chunk) -> partial``, ``finish() -> Transcript``.

        A recogniser registered as not streaming gets the whole utterance when she stops."""
        spec = registry.find(self.engine)
        if not (spec.streams if spec is not None else hasattr(self.inner, "stream")):
            return CleanUtterance(self, _BufferedUtterance(self.inner))
        return CleanUtterance(self, self.inner.stream())

    def transcribe_file(self, path: Path) -> Transcript:
        return self._clean(self.inner.transcribe_file(path))

    def _clean(self, transcript: Transcript) -> Transcript:
        text = clean_transcript(transcript.text, transcript.engine)
        vosk_text = (
            clean_transcript(transcript.vosk_text, "vosk") if transcript.vosk_text else transcript.vosk_text
        )
        return replace(transcript, text=text, vosk_text=vosk_text)


class CleanUtterance:
    """A live utterance whose partials and final text come out cleaned."""

    def __init__(self, owner: CleanTranscriber, inner) -> None:
        self._owner = owner
        self._inner = inner

    def feed(self, chunk: np.ndarray) -> str:
        return clean_transcript(self._inner.feed(chunk), "vosk")

    def finish(self) -> Transcript:
        return self._owner._clean(self._inner.finish())

    def finish_later(self) -> tuple[Transcript, Future[Transcript] | None]:
        """The draft text now and the final text as a future; None when the draft is final."""
        if not hasattr(self._inner, "finish_later"):
            return self.finish(), None
        draft, final = self._inner.finish_later()
        draft = replace(draft, text=clean_transcript(draft.text, "vosk"))  # the quick text is Vosk's
        return draft, None if final is None else then(final, self._owner._clean)

    def pause(self, last_speech_s: float) -> None:
        """A pause in her speech began: a recogniser that reads ahead starts now."""
        if hasattr(self._inner, "pause"):
            self._inner.pause(last_speech_s)

    def resume(self) -> None:
        """She went on after a pause: what was read ahead is dropped."""
        if hasattr(self._inner, "resume"):
            self._inner.resume()

    def cancel(self) -> None:
        self._inner.cancel()

    def __enter__(self) -> CleanUtterance:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cancel()


class _BufferedUtterance:
    """For a recogniser that cannot stream (Whisper alone): keep the audio, read it at the end."""

    def __init__(self, transcriber) -> None:
        self._transcriber = transcriber
        self._pieces: list[np.ndarray] = []
        self._done = False

    def feed(self, chunk: np.ndarray) -> str:
        self._pieces.append(np.asarray(chunk, dtype=np.int16).reshape(-1))
        return ""

    def finish(self) -> Transcript:
        self._done = True
        audio = np.concatenate(self._pieces) if self._pieces else np.zeros(0, np.int16)
        return self._transcriber.transcribe(audio)

    def cancel(self) -> None:
        self._pieces.clear()
