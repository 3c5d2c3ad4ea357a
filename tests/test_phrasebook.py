"""The offline brain: the shipped phrasebook and the similarity matcher."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest

from inference_server.backends.base import HistoryTurn, LLMRequest
from inference_server.backends.phrasebook import Phrasebook, PhrasebookBackend
from inference_server.errors import InferenceError

TAGS = {"greeting", "tired", "food", "missing", "work_study", "sleep", "weather", "love", "unclear"}


def test_shipped_phrasebook_covers_the_topics(phrasebook: Phrasebook):
    assert len(phrasebook.pairs) >= 150
    assert len({she for she, _ in phrasebook.pairs}) == len(phrasebook.pairs)
    assert len(phrasebook.not_understood) >= 8
    import yaml

    from inference_server.backends.phrasebook import default_phrasebook_path

    tags = Counter(p["tag"] for p in yaml.safe_load(default_phrasebook_path().read_text())["pairs"])
    assert set(tags) >= TAGS, TAGS - set(tags)
    assert all(tags[t] >= 8 for t in TAGS)


def test_every_prompt_finds_its_own_answer(phrasebook: Phrasebook):
    replies = frozenset(he for _, he in phrasebook.pairs)
    for she, he in phrasebook.pairs:
        found = phrasebook.match(she)
        assert found.similarity > 0.99
        assert found.prompt != she or found.reply == he, (she, found)
        # a near-duplicate prompt may tie with hers and be chosen instead; her own pair must be
        # among the ties, so with every other reply to avoid it is the one chosen
        own = phrasebook.match(she, avoid=replies - {he})
        assert own.reply == he, (she, own)


@pytest.mark.parametrize(
    ("heard", "topic_words"),
    [
        ("아 오늘 진짜 너무 피곤하다", ("피곤", "쉬", "자", "고생")),
        ("배고파 죽겠어", ("먹", "밥", "배고")),
        ("보고 싶어 차차", ("보고", "나도", "곧")),
        ("잘 자 차차", ("자", "꿈", "잘")),
    ],
)
def test_paraphrases_land_on_the_topic(phrasebook: Phrasebook, heard, topic_words):
    found = phrasebook.match(heard)
    assert found.prompt is not None, f"{heard!r} was not understood"
    assert any(w in found.reply for w in topic_words), (heard, found)


def test_vosk_morpheme_spacing_does_not_matter(phrasebook: Phrasebook):
    assert phrasebook.match("배 고파 죽 겠 어").prompt == phrasebook.match("배고파 죽겠어").prompt


@pytest.mark.parametrize("heard", ["", "   ", "블록체인 양자역학", "그 는 디비전 이 피 하면서"])
def test_unrelated_or_empty_speech_gets_a_not_understood_reply(phrasebook: Phrasebook, heard):
    found = phrasebook.match(heard)
    assert found.prompt is None
    assert found.reply in phrasebook.not_understood


def test_near_ties_avoid_what_he_just_said():
    book = Phrasebook([("안녕", "안녕 A"), ("안녕!", "안녕 B")], ["응?"], rng=random.Random(1))
    for _ in range(20):
        assert book.match("안녕", avoid=frozenset({"안녕 A"})).reply == "안녕 B"


def test_backend_streams_one_reply_and_avoids_repeats(phrasebook: Phrasebook):
    backend = PhrasebookBackend(phrasebook)
    first = phrasebook.match("안녕 차차").reply
    request = LLMRequest("c", "안녕 차차", "sys", (HistoryTurn("model", first),))

    async def collect() -> list[str]:
        return [piece async for piece in backend.stream(request)]

    pieces = asyncio.run(collect())
    assert len(pieces) == 1 and pieces[0]
    assert backend.unavailable_reason is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("pairs: [\n", "not valid YAML"),
        ("pairs: []\nnot_understood: ['응?']\n", "pairs"),
        ("pairs:\n  - she: 안녕\n    he: 응\nnot_understood: ['응?']\nextra: 1\n", "extra: unknown key"),
        ("pairs:\n  - she: 안녕\nnot_understood: ['응?']\n", "pairs.0.he"),
    ],
)
def test_a_bad_phrasebook_file_names_the_problem(tmp_path, content, message):
    path = tmp_path / "book.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InferenceError, match=message) as info:
        Phrasebook.load(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_missing_phrasebook_file_says_so(tmp_path):
    with pytest.raises(InferenceError, match="not found"):
        Phrasebook.load(tmp_path / "nope.yaml")
