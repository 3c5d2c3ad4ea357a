"""The recall set: does retrieval find the right memory for an indirect question?

`chacha bench memory` reports every variant at 100 and 10,000 memories (docs/memory.md); here
the 100-memory store runs in the suite with the real e5 embedder, so a change that loses
recall fails a test instead of waiting for the next benchmark.
"""

from __future__ import annotations

import pytest

from device.bench.memory import load_cues, render, run
from device.bench.memory_corpus import load_recall_set

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_the_recall_set_is_what_the_issue_asks_for() -> None:
    recall = load_recall_set()
    assert len(recall.split("test")) >= 40 and len(recall.distractors) >= 40
    cues = load_cues()
    assert all(len(cues[f.memory]) >= 20 for f in recall.facts)
    assert all(d in cues for d in recall.distractors)  # distractors get cues too: no head start


def test_retrieval_finds_the_right_memory_among_100() -> None:
    report = run([100], split="test", disk_cache=False)
    by_variant = {r["variant"]: r for r in report["recall"]}
    baseline, cued, shipped = by_variant["e5"], by_variant["+ 20–24 cues"], by_variant["shipped"]
    assert shipped["questions"] == 40
    # Measured (docs/memory.md): e5 alone 13/40 in the top 5; with the cues 36/40 (the 90 %
    # target); shipped, where this set's random importance and age only add noise, 33/40.
    # The floors leave two questions for another CPU's rounding of the 4-bit model.
    assert cued["at5"] >= 34, render(report)
    assert shipped["at5"] >= 31, render(report)
    assert shipped["at5"] >= baseline["at5"] + 15, render(report)
    speed = report["speed"]
    assert speed["section_tokens_max"] <= speed["prompt_tokens_budget"] + 30  # + its headings
