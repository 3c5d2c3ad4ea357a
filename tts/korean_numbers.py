"""Numbers read out in Korean: Sino-Korean (일, 이, 삼 …) and native Korean (하나, 둘 …)."""

from __future__ import annotations

_SINO_DIGITS = ("영", "일", "이", "삼", "사", "오", "육", "칠", "팔", "구")
_SMALL_UNITS = ("", "십", "백", "천")
_BIG_UNITS = ("", "만", "억", "조", "경")

_NATIVE_TENS = ("", "열", "스물", "서른", "마흔", "쉰", "예순", "일흔", "여든", "아흔")
_NATIVE_ONES = ("", "하나", "둘", "셋", "넷", "다섯", "여섯", "일곱", "여덟", "아홉")
# The forms a number takes right before a counter: 한 개, 두 명, 세 시, 네 살, 스무 살.
_NATIVE_ONES_BEFORE_COUNTER = ("", "한", "두", "세", "네", "다섯", "여섯", "일곱", "여덟", "아홉")

NATIVE_MAX = 99
"""The largest number read in native Korean; beyond it Korean switches to Sino-Korean."""

_SINO_MAX = 10**20 - 1


def _sino_below_10000(n: int) -> str:
    words = []
    for power in (3, 2, 1, 0):
        digit = n // 10**power % 10
        if digit == 0:
            continue
        if digit == 1 and power > 0:
            words.append(_SMALL_UNITS[power])  # 십, 백, 천 — never 일십, 일백, 일천
        else:
            words.append(_SINO_DIGITS[digit] + _SMALL_UNITS[power])
    return "".join(words)


def sino(n: int) -> str:
    """Sino-Korean reading of a whole number: 2024 → 이천이십사, 10000 → 만, -3 → 마이너스 삼."""
    if n < 0:
        return "마이너스 " + sino(-n)
    if n == 0:
        return _SINO_DIGITS[0]
    if n > _SINO_MAX:
        return digit_by_digit(str(n), zero="영")
    groups = []
    group_index = 0
    while n:
        n, group = divmod(n, 10000)
        if group:
            words = "" if group == 1 and group_index == 1 else _sino_below_10000(group)
            groups.append(words + _BIG_UNITS[group_index])
        group_index += 1
    return " ".join(reversed(groups))


def native(n: int, before_counter: bool = True) -> str:
    """Native Korean reading of 1‥99: 3 → 세 (before a counter) or 셋, 20 → 스무 or 스물.

    Outside 1‥99 the Sino-Korean reading is returned, as Korean speakers do (백 개).
    """
    if not 1 <= n <= NATIVE_MAX:
        return sino(n)
    tens, ones = divmod(n, 10)
    if before_counter and n == 20:
        return "스무"
    ones_words = _NATIVE_ONES_BEFORE_COUNTER if before_counter else _NATIVE_ONES
    return _NATIVE_TENS[tens] + ones_words[ones]


def digit_by_digit(digits: str, zero: str = "공") -> str:
    """Each digit on its own, as phone numbers are read: 010 → 공일공."""
    names = (zero,) + _SINO_DIGITS[1:]
    return "".join(names[int(ch)] for ch in digits if ch.isdigit())


def decimal(whole: int, fraction: str) -> str:
    """A decimal number: (3, "5") → 삼 점 오; the digits after the point are read one by one."""
    return f"{sino(whole)} 점 {digit_by_digit(fraction, zero='영')}"


def month(n: int) -> str:
    """The name of a month: 6 → 유월, 10 → 시월, 12 → 십이월."""
    if n == 6:
        return "유월"
    if n == 10:
        return "시월"
    return sino(n) + "월"


def phone_number(groups: list[str]) -> str:
    """Digit groups of a phone-like number, each read digit by digit: 공일공 일이삼사 …"""
    return " ".join(digit_by_digit(group) for group in groups)
