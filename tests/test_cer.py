# SPDX-License-Identifier: GPL-3.0-or-later
"""Character error rate: normalising, hand-counted values, pooling."""

from __future__ import annotations

import pytest

from device.bench.cer import cer, char_edits, normalise_for_cer, pooled_cer
from device.stt.cleanup import clean_transcript

REFERENCE = "그는 이리저리 피하면서 길 한 옆으로 걸어갔다"  # 19 characters without spaces
VOSK = "그 는 디비전 이 피 하면서 기흥 옆으로 걸어갔 다"
WHISPER = "그는 1위절이 피하면서 길 한 옆으로 걸어갔다."


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("그는 이리저리", "그는이리저리"),
        ("  그는\t이리\n저리 ", "그는이리저리"),
        ("그는, 이리저리!?", "그는이리저리"),
        ("“정말”… (그래) ~ ♥ ^^", "정말그래"),
        ("OK Google", "okgoogle"),
        ("1위", "일위"),
        ("3시 5분", "세시오분"),
        ("2024년", "이천이십사년"),
        ("10%", "십퍼센트"),
        ("\u1100\u1173\u1102\u1173\u11ab", "그는"),  # conjoining jamo → NFC syllables
        ("", ""),
        ("?!. ,", ""),
    ],
)
def test_normalise_for_cer(text: str, normalised: str) -> None:
    assert normalise_for_cer(text) == normalised


def test_spaces_are_ignored() -> None:
    assert cer("그는 이리저리", "그는 이리 저리") == 0.0
    assert cer("그는 이리저리", "그는이리저리") == 0.0


def test_punctuation_and_case_are_ignored() -> None:
    assert cer("안녕, 차차!", "안녕 차차") == 0.0
    assert cer("OK 차차", "ok 차차.") == 0.0


def test_one_substitution_in_six_characters() -> None:
    assert cer("그는이리저리", "그는이리조리") == pytest.approx(1 / 6)


def test_one_deletion_and_one_insertion() -> None:
    assert cer("그는이리저리", "그는이리저") == pytest.approx(1 / 6)
    assert cer("그는이리저리", "그는이리저리요") == pytest.approx(1 / 6)
    assert cer("가나다", "가다라") == pytest.approx(2 / 3)  # 나 deleted, 라 inserted


def test_digits_and_korean_numbers_compare_equal() -> None:
    assert cer("일 위", "1위") == 0.0
    assert cer("세 시 오 분", "3시 5분") == 0.0
    assert cer("이천이십사 년", "2024년") == 0.0


def test_cer_can_exceed_one() -> None:
    assert cer("가", "나다라") == pytest.approx(3.0)  # one substitution, two insertions


def test_empty_reference_and_empty_hypothesis() -> None:
    assert cer("", "") == 0.0
    assert cer("...", " ") == 0.0
    assert cer("", "가나") == 1.0
    assert cer("가나", "") == 1.0
    assert char_edits("", "가나") == (2, 0)
    assert char_edits("가나", "") == (2, 2)


def test_the_sample_recording() -> None:
    # 이리저리 → 디비전이 (4 substitutions), 길한 → 기흥 (2): 6 edits in 19 characters.
    assert char_edits(REFERENCE, VOSK) == (6, 19)
    assert cer(REFERENCE, VOSK) == pytest.approx(6 / 19)
    # Re-spacing changes nothing: spaces do not count.
    assert cer(REFERENCE, clean_transcript(VOSK, "vosk")) == pytest.approx(6 / 19)
    # 이리저리 → 1위절이 = 일위절이: 4 substitutions.
    assert cer(REFERENCE, WHISPER) == pytest.approx(4 / 19)


def test_pooled_is_total_edits_over_total_reference_characters() -> None:
    pairs = [
        ("가나", "가다"),  # 1 edit in 2 characters: CER 0.5
        ("가나다라마바사아자차", "가나다라마바사아자차"),  # 0 edits in 10: CER 0.0
    ]
    assert pooled_cer(pairs) == pytest.approx(1 / 12)
    mean = sum(cer(ref, hyp) for ref, hyp in pairs) / len(pairs)
    assert mean == pytest.approx(0.25)
    assert pooled_cer(pairs) != pytest.approx(mean)


def test_pooled_accepts_any_iterable_and_counts_insertions_of_empty_references() -> None:
    pairs = iter([("가나", "가나"), ("", "다라")])
    assert pooled_cer(pairs) == pytest.approx(2 / 2)
    assert pooled_cer([]) == 0.0
    assert pooled_cer([("", "")]) == 0.0
    assert pooled_cer([("", "가")]) == 1.0


def test_pooled_of_one_pair_is_its_cer() -> None:
    assert pooled_cer([(REFERENCE, VOSK)]) == pytest.approx(cer(REFERENCE, VOSK))
