"""Digits in a sentence turned into Korean words, the way a Korean speaker reads them.

Sino-Korean (일, 이, 삼 …) is the default. Native Korean (한, 두, 세 …) is used for 1‥99
right before the counters that take it (세 시, 두 개, 스무 살, 한 시간); beyond 99 Korean
goes back to Sino-Korean (백 개). Clock times, ISO dates, months and days, percentages,
decimals, negative numbers, ranges with "~" and phone-like digit strings have their own
readings.
"""

from __future__ import annotations

import re

from tts import korean_numbers as kn

# Counters read with native Korean numbers (hour, things, people, age, times, animals …).
_NATIVE_COUNTERS = (
    "시간", "번째", "마리", "송이", "그루", "켤레", "가지", "군데", "사람", "모금",
    "개", "명", "살", "번", "잔", "병", "달", "권", "장", "대", "벌", "곳", "시", "척",
    "채", "통", "줄", "판", "쌍", "조각", "그릇", "접시", "컵", "봉지", "상자", "바퀴",
    "걸음", "마디", "방울", "숟가락", "알",
)  # fmt: skip
# Words after a number read in Sino-Korean, set off by a space (삼십 분, 오천 원). Some of
# them start like a native counter (개월, 달러, 번지, 시즌) and must win over it.
_SINO_COUNTERS = (
    "개월", "달러", "시즌", "시리즈", "번지", "번호", "학년", "교시", "주년", "주일",
    "퍼센트", "킬로", "미터", "센티", "밀리", "그램", "리터", "메가", "기가", "테라",
    "분", "초", "년", "원", "층", "도", "주", "세", "점", "회", "호", "배", "위", "등",
)  # fmt: skip
# Read in Sino-Korean and written together with the number (십이월, 이십오일).
_ATTACHED_COUNTERS = ("월", "일")

_COUNTER_PATTERN = "|".join(
    sorted(_NATIVE_COUNTERS + _SINO_COUNTERS + _ATTACHED_COUNTERS, key=len, reverse=True)
)
_NUMBER_PATTERN = r"\d{1,3}(?:,\d{3})+(?!\d)|\d+"

_ISO_DATE = re.compile(r"(?<!\d)(\d{4})[-./](\d{1,2})[-./](\d{1,2})(?![\d])")
_CLOCK_TIME = re.compile(r"(?<![\d:])([01]?\d|2[0-4]):([0-5]\d)(?::([0-5]\d))?(?![\d:])")
# 010-1234-5678, 02-123-4567, +82 10-1234-5678, 1588-1234 — but not 2023-2024.
_PHONE = re.compile(r"(?<![\d-])(?:(?:\+\d{1,3}[ -]?)?0?\d{1,2}-\d{3,4}-\d{4}|1[5-9]\d{2}-\d{4})(?![\d-])")
# 3시~5시 → 3시에서 5시: the "~" of a range whose first end has its own counter.
_COUNTED_RANGE_START = re.compile(rf"(?<![\d.])(\d+\s?(?:{_COUNTER_PATTERN}))\s*~\s*(?=\d)")
_RANGE = re.compile(rf"(?<![\d.])(\d{{1,6}})\s*~\s*(\d{{1,6}})(?![\d.,])(\s?)({_COUNTER_PATTERN})?")
_NUMBER = re.compile(
    rf"(?<![\d.])(?P<sign>(?<![^\s(\[\"'])-)?(?P<whole>{_NUMBER_PATTERN})"
    rf"(?:\.(?P<fraction>\d+))?"
    rf"(?:(?P<percent>\s?%)|(?P<space>\s?)(?P<counter>{_COUNTER_PATTERN}))?"
)
_DEGREES = re.compile(r"\s?(?:°C|℃|°)")
_DIGITS = re.compile(r"\d+")
_LONGEST_NUMBER = 20  # digits; longer runs are read digit by digit


def _native_counter(counter: str | None, n: int) -> bool:
    if counter not in _NATIVE_COUNTERS:
        return False
    if counter == "대":  # 세 대 (cars), but 이십 대 (one's twenties)
        return n < 10
    return 1 <= n <= kn.NATIVE_MAX


def _with_counter(n: int, counter: str | None) -> str:
    """A whole number and the counter after it: (3, 개) → 세 개, (12, 월) → 십이월."""
    if counter is None:
        return kn.sino(n)
    if counter == "번째" and n == 1:
        return "첫 번째"
    if _native_counter(counter, n):
        return f"{kn.native(n)} {counter}"
    if counter == "월" and 1 <= n <= 12:
        return kn.month(n)
    if counter in _ATTACHED_COUNTERS:
        return kn.sino(n) + counter
    return f"{kn.sino(n)} {counter}"


def _read_iso_date(match: re.Match[str]) -> str:
    year, month, day = (int(group) for group in match.groups())
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return match.group(0)
    return f"{kn.sino(year)} 년 {kn.month(month)} {kn.sino(day)}일"


def _read_clock_time(match: re.Match[str]) -> str:
    hour, minute, second = match.groups()
    words = [f"{kn.native(int(hour)) if int(hour) else '영'} 시"]
    if int(minute):
        words.append(f"{kn.sino(int(minute))} 분")
    if second and int(second):
        words.append(f"{kn.sino(int(second))} 초")
    return " ".join(words)


def _read_phone(match: re.Match[str]) -> str:
    return kn.phone_number(re.findall(r"\d+", match.group(0)))


def _read_range(match: re.Match[str]) -> str:
    low, high, _space, counter = match.groups()
    low_n, high_n = int(low), int(high)
    if _native_counter(counter, high_n) and _native_counter(counter, low_n):
        return f"{kn.native(low_n)} {_with_counter(high_n, counter)}"
    high_words = _with_counter(high_n, counter)
    return f"{kn.sino(low_n)}에서 {high_words}"


def _read_number(match: re.Match[str]) -> str:
    whole_text = match.group("whole").replace(",", "")
    fraction = match.group("fraction")
    counter = match.group("counter")
    negative = match.group("sign") is not None
    if len(whole_text) > _LONGEST_NUMBER:
        return " ".join(
            kn.digit_by_digit(digits, zero="영") for digits in _DIGITS.findall(match.group(0))
        ) + (f" {counter}" if counter else "")
    if len(whole_text) > 1 and whole_text.startswith("0") and fraction is None:
        words = kn.digit_by_digit(whole_text)  # 010, 007: digits one by one
        tail = f" {counter}" if counter else ""
    elif fraction is not None or negative:
        number = int(whole_text)
        words = kn.decimal(number, fraction) if fraction is not None else kn.sino(number)
        if negative:
            words = "마이너스 " + words
        tail = f" {counter}" if counter else ""
    else:
        words = _with_counter(int(whole_text), counter)
        tail = ""
    if match.group("percent"):
        tail = " 퍼센트"
    before = match.string[match.start() - 1] if match.start() else ""
    lead = " " if before.isalpha() else ""
    return lead + words + tail


def read_numbers(text: str) -> str:
    """Replace every number in ``text`` by its Korean reading; no digit is left behind."""
    text = _DEGREES.sub("도", text)
    text = _ISO_DATE.sub(_read_iso_date, text)
    text = _CLOCK_TIME.sub(_read_clock_time, text)
    text = _PHONE.sub(_read_phone, text)
    text = _COUNTED_RANGE_START.sub(r"\1에서 ", text)
    text = _RANGE.sub(_read_range, text)
    text = _NUMBER.sub(_read_number, text)
    return _DIGITS.sub(lambda m: kn.digit_by_digit(m.group(0), zero="영"), text)
