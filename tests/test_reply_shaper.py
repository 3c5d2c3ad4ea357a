"""The reply shaper (inference_server/reply.py): a backend's text pieces → the sentences the doll speaks."""

from __future__ import annotations

import pytest

from inference_server.backends.base import HEARD_CLOSE, HEARD_OPEN
from inference_server.reply import FirstClause, HeardPrefix, ReplyShaper


def shape(pieces: list[str], *, max_sentences: int = 3, audio: bool = False, truncated: bool = False):
    shaper = ReplyShaper(max_sentences, audio=audio)
    out = []
    for piece in pieces:
        out += shaper.feed(piece)
        if shaper.full:
            break
    out += shaper.end(truncated=truncated)
    assert out == shaper.sentences
    return shaper


def test_pieces_become_whole_sentences_as_soon_as_they_are_complete():
    shaper = ReplyShaper(5)
    assert shaper.feed("오늘은 ") == []
    assert shaper.feed("비가 와. 우산 ") == ["오늘은 비가 와."]
    assert shaper.feed("챙겼어?") == []  # the splitter waits: the sentence might go on
    assert shaper.end() == ["우산 챙겼어?"]
    assert shaper.sentences == ["오늘은 비가 와.", "우산 챙겼어?"]


def test_markup_the_voice_cannot_say_is_cleaned_and_empty_sentences_dropped():
    assert shape(["**진짜** 좋다. 😀 ", "그치?"]).sentences == ["진짜 좋다.", "그치?"]


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        (["진주야, 오늘 ", "뭐 했어?"], ["진주야,", "오늘 뭐 했어?"]),
        (["응. 그래, 알겠어."], ["응. 그래, 알겠어."]),  # a sentence ended first: no early clause
        (["3,000원이야."], ["3,000원이야."]),  # a comma inside a number is no clause
        (["아, 진짜? ", "좋다, 좋아."], ["아, 진짜?", "좋다, 좋아."]),  # too short a clause waits
        (["진주야,"], ["진주야,"]),  # no space after the comma yet: it ends with the stream
    ],
)
def test_only_the_first_clause_goes_out_at_its_comma(pieces, expected):
    assert shape(pieces).sentences == expected


def test_the_first_clause_needs_two_letters():
    assert FirstClause.MIN_LETTERS == 2
    assert FirstClause().feed("응, 그래") == (None, "")
    assert FirstClause().feed("그래, 알") == ("그래,", " 알")


def test_the_cap_counts_whole_sentences():
    shaper = shape(["하나야. 둘이야. ", "셋이야. 넷이야. 다섯이야."], max_sentences=3)
    assert shaper.sentences == ["하나야.", "둘이야.", "셋이야."]
    assert shaper.full and shaper.feed("여섯이야. 일곱이야. ") == [] and shaper.end() == []


def test_an_early_first_clause_does_not_count_against_the_cap():
    shaper = shape(["진주야, 하나야. 둘이야. ", "셋이야. 넷이야."], max_sentences=2)
    assert shaper.sentences == ["진주야,", "하나야.", "둘이야."]
    assert shaper.full


def test_a_cap_of_one_with_the_first_clause():
    assert shape(["진주야, 오늘 ", "뭐 했어? 나는 좋았어."], max_sentences=1).sentences == [
        "진주야,",
        "오늘 뭐 했어?",
    ]


def test_a_truncated_stream_drops_its_unfinished_sentence():
    shaper = shape(["오늘은 비가 와. 우산 ", "챙겼어? 그리고 내일은"], truncated=True)
    assert shaper.sentences == ["오늘은 비가 와.", "우산 챙겼어?"]
    assert shaper.dropped == ["그리고 내일은"]
    whole = shape(["오늘은 비가 와. 우산 ", "챙겼어? 그리고 내일은"])
    assert whole.sentences[-1] == "그리고 내일은" and whole.dropped == []


def test_a_truncated_stream_keeps_only_what_the_splitter_has_let_go():
    shaper = shape(["오늘은 비가 와. 우산 챙겼어? "], truncated=True)
    assert shaper.sentences == ["오늘은 비가 와.", "우산 챙겼어?"] and shaper.dropped == []
    # without text after it, a last sentence cannot be told from an unfinished one: it is dropped too
    shaper = shape(["오늘은 비가 와."], truncated=True)
    assert shaper.sentences == [] and shaper.dropped == ["오늘은 비가 와."]


def test_the_heard_prefix_is_taken_off_in_audio_mode():
    pieces = [f"  {HEARD_OPEN}오늘 ", f"피곤해{HEARD_CLOSE} 진주야, ", "푹 쉬어."]
    shaper = shape(pieces, audio=True)
    assert shaper.heard == "오늘 피곤해"
    assert shaper.sentences == ["진주야,", "푹 쉬어."]


def test_without_audio_the_prefix_is_not_looked_for():
    shaper = shape(["오늘 피곤하구나. 푹 쉬어."], audio=True)  # the model gave no prefix
    assert shaper.heard is None and shaper.sentences == ["오늘 피곤하구나.", "푹 쉬어."]
    assert HeardPrefix(False).feed(f"{HEARD_OPEN}x{HEARD_CLOSE}") == f"{HEARD_OPEN}x{HEARD_CLOSE}"


def test_an_empty_heard_prefix_is_none():
    assert shape([f"{HEARD_OPEN} {HEARD_CLOSE}응, 알겠어."], audio=True).heard is None


def test_a_prefix_that_never_closes_is_given_up_after_400_characters():
    prefix = HeardPrefix(True)
    assert prefix.feed(HEARD_OPEN + "가" * 100) == ""
    text = prefix.feed("나" * HeardPrefix.GIVE_UP_CHARS)
    assert text == "가" * 100 + "나" * HeardPrefix.GIVE_UP_CHARS
    assert prefix.heard is None and prefix.feed("다") == "다"
