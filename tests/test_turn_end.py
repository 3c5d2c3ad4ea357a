# SPDX-License-Identifier: GPL-3.0-or-later
"""The end of her turn: the cue in her last word, and the silence it asks for (audio time only)."""

from __future__ import annotations

import pytest

from device.doll.settings import LoopSettings
from device.doll.turn_end import TurnEnd, ending_cue, last_word
from device.doll.vad import EndpointDetector, PauseBegan, SpeechEnded, SpeechResumed

BLOCK_S = 0.03


@pytest.mark.parametrize(
    ("text", "cue"),
    [
        ("어떻게 찾아가죠", "final"),
        ("길 한 옆으로 걸어갔다", "final"),
        ("기분이 안 좋아", "final"),
        ("오늘 뭐 먹을까", "final"),
        ("배고픈데요", "final"),  # …는데 is a connective, …는데요 ends a sentence
        ("진짜?", "final"),
        ("버스에서 내려서", "continuing"),
        ("오늘 학교에서 친구랑 싸웠는데", "continuing"),
        ("그는 이리저리 피하면서", "continuing"),
        ("밥 먹고", "continuing"),
        ("길 한 옆으로", "continuing"),
        ("음", "continuing"),
        ("그래서", "continuing"),
        ("기흥", "neutral"),
        ("", "neutral"),
        ("hello", "neutral"),
    ],
)
def test_the_last_word_says_whether_more_is_coming(text, cue):
    assert ending_cue(text) == cue


def test_the_last_word_is_the_last_run_of_hangul():
    assert last_word("그 는 디비전 이 피 하면서") == "하면서"
    assert last_word("OK 좋아!") == "좋아"
    assert last_word("123") == ""


def test_fixed_waits_the_same_whatever_she_said():
    fixed = TurnEnd("fixed", neutral_s=0.7)
    assert fixed.silence_s("걸어갔다") == fixed.silence_s("내려서") == 0.7


def test_the_silences_must_be_in_order():
    with pytest.raises(ValueError, match="min_silence_ms"):
        LoopSettings(min_silence_ms=800, silence_ms=700)
    LoopSettings(end_of_turn="fixed", silence_ms=3000)  # fixed does not use the other two


def detector() -> EndpointDetector:
    return EndpointDetector.from_settings(LoopSettings(), None, 16000)


def speak(d: EndpointDetector, seconds: float) -> list:
    return [e for _ in range(round(seconds / BLOCK_S)) if (e := d.push_probability(0.9, BLOCK_S))]


def silence_until_end(
    d: EndpointDetector, texts: dict[float, str], limit_s: float = 3.0
) -> tuple[float, list]:
    """Silent blocks until the turn ends; ``texts``: the recogniser's text from that time in the pause."""
    events, t = [], 0.0
    while t < limit_s:
        for at, text in texts.items():
            if t >= at - 1e-9:
                d.hear_text(text)
        t += BLOCK_S
        event = d.push_probability(0.0, BLOCK_S)
        if event is not None:
            events.append(event)
        if isinstance(event, SpeechEnded):
            return t, events
    raise AssertionError(f"the turn did not end within {limit_s} s of silence")


def test_a_finished_sentence_ends_the_turn_once_its_last_word_is_in():
    d = detector()
    d.hear_text("길 한 옆으로")
    speak(d, 1.0)
    # her last word reaches the text 0.36 s into the pause, as Vosk's does
    ended, events = silence_until_end(d, {0.36: "길 한 옆으로 걸어갔다"})
    assert ended == pytest.approx(0.39, abs=0.031)  # at once: more than min_silence_ms has passed
    assert isinstance(events[0], PauseBegan)  # Whisper was asked to start reading at 150 ms


def test_a_finished_sentence_already_in_the_text_waits_for_a_word_that_may_still_come():
    """ "먹었어" is in the text when the pause begins: it may be the word before her last one."""
    d = detector()
    d.hear_text("밥 먹었어")
    speak(d, 1.0)
    ended, _ = silence_until_end(d, {})
    assert ended == pytest.approx(0.45, abs=0.031)


def test_a_connective_that_comes_in_late_keeps_the_turn_open():
    d = detector()
    d.hear_text("밥 먹었어")
    speak(d, 1.0)
    ended, _ = silence_until_end(d, {0.36: "밥 먹었어 근데"})
    assert ended == pytest.approx(1.5, abs=0.031)  # max_silence_ms


def test_going_on_after_a_pause_is_an_event():
    d = detector()
    d.hear_text("버스에서 내려서")
    speak(d, 1.0)
    paused = [d.push_probability(0.0, BLOCK_S) for _ in range(20)]  # 0.6 s
    assert any(isinstance(e, PauseBegan) for e in paused)
    assert not any(isinstance(e, SpeechEnded) for e in paused)
    assert any(isinstance(e, SpeechResumed) for e in speak(d, 0.3))
