"""The last word's cue: endings the end-of-turn benchmark found misread (…게, …어야, …마)."""

from __future__ import annotations

import pytest

from device.doll.turn_end import ending_cue


@pytest.mark.parametrize(
    ("text", "cue"),
    [
        ("버스에서 내려서 어떻게", "continuing"),  # …게 of manner
        ("좀 예쁘게", "continuing"),
        ("이게", "continuing"),
        ("내가 할게", "final"),  # …ㄹ게, a promise
        ("밥 먹을게", "final"),
        ("돈이 있어야", "continuing"),  # …어야, a condition
        ("공부를 해야", "continuing"),
        ("이거 뭐야", "final"),
        ("우리 엄마", "neutral"),  # a noun ending in 마
        ("울지 마", "final"),
        ("가지마", "final"),
        ("오늘 학교에서 친구랑 싸웠는데", "continuing"),
        ("기분이 안 좋아", "final"),
    ],
)
def test_ending_cue(text: str, cue: str) -> None:
    assert ending_cue(text) == cue
