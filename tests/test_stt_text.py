# SPDX-License-Identifier: GPL-3.0-or-later
"""Cleaning recognised text: Vosk re-spacing, Whisper tidying, idempotence."""

from __future__ import annotations

import random

import pytest

from device.stt.cleanup import clean_transcript

SAMPLE_VOSK = "그 는 디비전 이 피 하면서 기흥 옆으로 걸어갔 다"
SAMPLE_WHISPER = "그는 1위절이 피하면서 길 한 옆으로 걸어갔다."


def test_the_sample_recording_as_vosk_heard_it() -> None:
    assert clean_transcript(SAMPLE_VOSK, "vosk") == "그는 디비전이 피하면서 기흥 옆으로 걸어갔다"


@pytest.mark.parametrize(
    ("heard", "cleaned"),
    [
        # particles
        ("그 는 갔다", "그는 갔다"),
        ("사과 를 먹었다", "사과를 먹었다"),
        ("책 을 읽었다", "책을 읽었다"),
        ("학교 에 갔다", "학교에 갔다"),
        ("학교 에서 놀았다", "학교에서 놀았다"),
        ("학교 에 서 놀았다", "학교에서 놀았다"),
        ("친구 에게 줬어", "친구에게 줬어"),
        ("엄마 한테 말했어", "엄마한테 말했어"),
        ("집 으로 가자", "집으로 가자"),
        ("나 의 인형", "나의 인형"),
        ("너 처럼 귀여워", "너처럼 귀여워"),
        ("나 보다 커", "나보다 커"),
        ("아침 부터 저녁 까지", "아침부터 저녁까지"),
        ("빵 과 우유", "빵과 우유"),
        ("우유 와 빵", "우유와 빵"),
        ("사람 들 이 와요", "사람들이 와요"),
        ("선생 님 안녕", "선생님 안녕"),
        # a particle after a particle: only auxiliary ones follow a case particle
        ("학교 에서 는 조용히", "학교에서는 조용히"),
        ("집 에 도 있어", "집에도 있어"),
        ("여기 까지 만 하자", "여기까지만 하자"),
        ("나 는 도", "나는 도"),
        ("저 는 요", "저는요"),
        # verb endings
        ("먹 었 다", "먹었다"),
        ("먹 었 어", "먹었어"),
        ("먹 고 싶어", "먹고 싶어"),
        ("먹 어 서 배불러", "먹어서 배불러"),
        ("좋 네 요", "좋네요"),
        ("좋 죠", "좋죠"),
        ("밥 먹 자", "밥 먹자"),
        ("민준 아 놀자", "민준아 놀자"),
        ("먹 는 다", "먹는다"),
        ("먹 을 게", "먹을게"),
        ("하 ㅂ니다", "합니다"),
        ("감사 합니다", "감사합니다"),
        ("갔 습니다", "갔습니다"),
        ("그 게 뭐야", "그게 뭐야"),
        # 하다-forms join a bare noun, not an adverb or a word with a particle
        ("공부 하고 있어", "공부하고 있어"),
        ("사랑 해", "사랑해"),
        ("공부 를 하고", "공부를 하고"),
        ("많이 해", "많이 해"),
        ("안 해", "안 해"),
        ("열심히 했어", "열심히 했어"),
        ("그 하는 거", "그 하는 거"),
        # 이: particle after a final consonant, "this"/"two" before its noun
        ("사람 이 왔어", "사람이 왔어"),
        ("그 사람 이 책 을 읽었다", "그 사람 이 책을 읽었다"),
        ("오늘 이 시간 에", "오늘 이 시간에"),
        ("친구 이 야", "친구이야"),
        ("삼십 이 년", "삼십이 년"),
        ("나 이 사람 좋아", "나 이 사람 좋아"),
        # 가: particle after a vowel, the verb "go" at the end or before an ending
        ("친구 가 왔어", "친구가 왔어"),
        ("내 가 할게", "내가 할게"),
        ("학교 가", "학교 가"),
        ("학교 가 자", "학교 가자"),
        ("빨리 가 봐", "빨리 가 봐"),
        ("집 에 가 봐", "집에 가 봐"),
        ("책 가 있어", "책 가 있어"),
        # 다: the ending at the end or after a past stem, not "all"
        ("우리 다 먹었어", "우리 다 먹었어"),
        ("나 는 다 좋아", "나는 다 좋아"),
        # 지: "since" after an adnominal in ㄴ
        ("온 지 삼 년", "온 지 삼 년"),
        ("먹 지 마", "먹지 마"),
        # 네: ending only at the end or before 요; "yes yes" stays
        ("네 네", "네 네"),
        ("사과 네 개", "사과 네 개"),
        # 만: "only", or ten thousand before a counter
        ("나 만 좋아", "나만 좋아"),
        ("삼 만 원", "삼만 원"),
        ("그거 만 원 이야", "그거 만 원이야"),
        # nothing joins a word that does not end in Hangul, nor the first word
        ("ABC 는 좋아", "ABC 는 좋아"),
        ("는 그래", "는 그래"),
        ("요", "요"),
        # whitespace
        ("  그   는 \n 갔다 ", "그는 갔다"),
        ("", ""),
        ("   ", ""),
    ],
)
def test_vosk_respacing(heard: str, cleaned: str) -> None:
    assert clean_transcript(heard, "vosk") == cleaned


def test_vosk_text_is_not_given_whisper_loop_cutting() -> None:
    assert clean_transcript("좋아 좋아 좋아", "vosk") == "좋아 좋아 좋아"


@pytest.mark.parametrize("engine", ["whisper", "hybrid"])
@pytest.mark.parametrize(
    ("heard", "cleaned"),
    [
        (SAMPLE_WHISPER, SAMPLE_WHISPER),
        ("  그는   1위절이\n피하면서 ", "그는 1위절이 피하면서"),
        ("뭐 해 ?", "뭐 해?"),
        ("좋아 , 그래 !", "좋아, 그래!"),
        ("정말??", "정말?"),
        ("정말?!", "정말?!"),
        ("와!!!", "와!"),
        ("그래서....", "그래서..."),
        ("그래서...", "그래서..."),
        ("음……", "음…"),
        ("3시에 만나자", "3시에 만나자"),
        ("사과 2개 주세요.", "사과 2개 주세요."),
        # loops of three or more are cut to one occurrence; a pair stays
        ("좋아 좋아 좋아 좋아", "좋아"),
        ("좋아 좋아 좋아", "좋아"),
        ("진짜 진짜", "진짜 진짜"),
        ("진짜 진짜 좋아", "진짜 진짜 좋아"),
        ("고마워 고마워 고마워 정말", "고마워 정말"),
        ("감사합니다. 감사합니다. 감사합니다. 감사합니다.", "감사합니다."),
        ("좋아, 좋아, 좋아!", "좋아!"),
        ("나는 네가 좋아 나는 네가 좋아 나는 네가 좋아", "나는 네가 좋아"),
        ("안녕 나는 차차야 나는 차차야 나는 차차야 반가워", "안녕 나는 차차야 반가워"),
        ("나는 차차야 나는 차차야 반가워", "나는 차차야 나는 차차야 반가워"),
        ("", ""),
        (" \t ", ""),
    ],
)
def test_whisper_cleanup(engine: str, heard: str, cleaned: str) -> None:
    assert clean_transcript(heard, engine) == cleaned


def test_whisper_keeps_digits_and_does_not_respace() -> None:
    assert clean_transcript("그 는 1 위", "whisper") == "그 는 1 위"


def test_unknown_engine_only_collapses_whitespace() -> None:
    assert clean_transcript("  그 는   좋아 좋아 좋아 ?? ", "other") == "그 는 좋아 좋아 좋아 ??"


def test_text_is_nfc() -> None:
    decomposed = "\u1100\u1173\u1102\u1173\u11ab"  # 그는 in conjoining jamo
    assert clean_transcript(decomposed, "whisper") == "그는"


_IDEMPOTENCE_CASES = [
    SAMPLE_VOSK,
    SAMPLE_WHISPER,
    "그 사람 이 책 을 읽 었 다",
    "영화 를 보다 가 잤 어",
    "학교 가 자 고 했 어",
    "a a a b a a a b a a a b",
    "좋아 좋아 좋아 ?? !! ....",
    "공부 하 고 싶 어 요",
]


@pytest.mark.parametrize("engine", ["vosk", "whisper", "hybrid", "other"])
@pytest.mark.parametrize("text", _IDEMPOTENCE_CASES)
def test_cleaning_twice_changes_nothing(engine: str, text: str) -> None:
    once = clean_transcript(text, engine)
    assert clean_transcript(once, engine) == once
    assert once == once.strip()


def test_cleaning_twice_changes_nothing_on_random_token_soup() -> None:
    soup = (
        "이 가 는 은 을 를 에 에서 서 도 만 다 고 지 네 요 야 어 아 었 하면서 해 했어 보다 와 과"
        " 그 사람 친구 학교 나 먹 갔 피 사랑 많이 안 삼십 원 개 ABC 1 좋아 , . ? !"
    )
    pool = soup.split()
    rng = random.Random(20240611)
    for _ in range(3000):
        text = " ".join(rng.choice(pool) for _ in range(rng.randint(1, 9)))
        for engine in ("vosk", "whisper"):
            once = clean_transcript(text, engine)
            assert clean_transcript(once, engine) == once, (engine, text)
