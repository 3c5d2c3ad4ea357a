"""`chacha bench memory`: does 차차 find the right memory, how fast, and within budget?

Recall: the recall set (`device/bench/data/memory_recall.yaml`) holds facts about her life as
memories, each with an indirect later question that shares few words with it, and distractor
memories. The store is filled with the facts, the distractors and generated everyday filler up
to each size (100, 10,000); every memory gets a random importance (0.1–0.9) and a random age
(0–90 days), the same for every variant, so importance and recency are noise here, as they
often are in life. For every question the retrieval's top 5 is read: recall@1 and recall@5 of
the fact's memory, per retrieval variant.

Speed, on the cores it is pinned to: embedding one memory, and one whole retrieval (embedding
the query, scoring every memory, ranking, reading the rows) at the largest size; medians and
p99 in one run. Budget: the largest memory section any question put into a prompt.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib.resources import files
from pathlib import Path

import numpy as np

from device.bench.memory_corpus import RecallSet, load_recall_set, synthetic_memories
from inference_server.history import estimate_tokens
from inference_server.memory import MemoryService
from inference_server.memory.embed import DIM, Embedder
from inference_server.memory.service import RULES_HEADING
from inference_server.memory.text import canonical, clean
from inference_server.settings import MemorySettings, MemoryWeights
from inference_server.shared import paths
from inference_server.store import ConversationStore
from inference_server.yamlfile import parse_yaml

_LOGGER = logging.getLogger(__name__)

CONVERSATION = "bench"
DAY_S = 86_400.0
NOW = 1_796_000_000.0  # a fixed "now" (2026-11-30), so that ages repeat


@dataclass(frozen=True)
class Variant:
    name: str
    what: str
    settings: MemorySettings
    form: Callable[[str], str] = canonical
    cues: str | None = None  # which cue file, if any


CUES = "data/memory_cues.yaml"
"""20–24 cues a memory, as the shipped reflection prompt asks for."""
FEW_CUES = "data/memory_cues_few.yaml"
"""8–12 cues a memory: the first prompt's count, kept to show what the number is worth."""


def load_cues(path: Path | None = None, *, name: str = CUES) -> dict[str, tuple[str, ...]]:
    """The recall set's cues (memory → words), as reflection would store them."""
    if path is None:
        path = Path(str(files("device.bench").joinpath(name)))
    data = parse_yaml(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ValueError(f"{path}: expected a mapping of memory → list of cues")
    return {str(k): tuple(str(c) for c in v) for k, v in data.items()}


def variants() -> list[Variant]:
    dense_only = MemoryWeights(importance=0.0, similarity=1.0, recency=0.0)
    shipped = MemorySettings()
    return [
        Variant(
            "e5",
            "embeddings of the memory as written, similarity only (the baseline)",
            MemorySettings(weights=dense_only, lexical_share=0.0),
            clean,
        ),
        Variant(
            "e5 canonical",
            "embeddings of the canonical form (the shared frame '진주가 …다고 했다' left out)",
            MemorySettings(weights=dense_only, lexical_share=0.0),
        ),
        Variant(
            "e5 canonical + stems",
            f"the same, plus {shipped.lexical_share:.0%} BM25 of shared Korean stems, similarity only",
            MemorySettings(weights=dense_only),
        ),
        Variant(
            "+ 8–12 cues",
            "the same, each memory embedded and counted with 8–12 cues from reflection",
            MemorySettings(weights=dense_only),
            cues=FEW_CUES,
        ),
        Variant(
            "+ 20–24 cues",
            "the same with 20–24 cues, as the shipped reflection prompt asks for",
            MemorySettings(weights=dense_only),
            cues=CUES,
        ),
        Variant(
            "shipped",
            "canonical + stems + 20–24 cues, ranked by importance + similarity + recency (default weights)",
            shipped,
            cues=CUES,
        ),
    ]


class CachedEmbedder(Embedder):
    """The real e5, remembering every passage it embedded (on disk for the generated filler)."""

    def __init__(self, cache: Path | None = None) -> None:
        super().__init__()
        self.cache = cache
        self._known: dict[str, np.ndarray] = {}
        if cache is not None and cache.is_file():
            try:
                with np.load(cache, allow_pickle=False) as data:
                    self._known = dict(zip(data["texts"].tolist(), data["vectors"], strict=True))
            except (OSError, ValueError, KeyError):
                _LOGGER.warning("ignoring an unreadable embedding cache %s", cache)

    def passages(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._known]
        if missing:
            for start in range(0, len(missing), 256):
                chunk = missing[start : start + 256]
                self._known.update(zip(chunk, super().passages(chunk), strict=True))
        return np.stack([self._known[t] for t in texts]) if texts else np.zeros((0, DIM), np.float32)

    def save(self) -> None:
        if self.cache is None or not self._known:
            return
        self.cache.parent.mkdir(parents=True, exist_ok=True)
        texts = list(self._known)
        scratch = self.cache.with_suffix(".new.npz")
        np.savez(scratch, texts=np.array(texts), vectors=np.stack([self._known[t] for t in texts]))
        scratch.replace(self.cache)


@dataclass
class RecallResult:
    variant: str
    what: str
    size: int
    split: str
    questions: int
    at1: int
    at5: int
    misses: list[str] = field(default_factory=list)

    @property
    def recall1(self) -> float:
        return self.at1 / self.questions if self.questions else 0.0

    @property
    def recall5(self) -> float:
        return self.at5 / self.questions if self.questions else 0.0


def _corpus(recall: RecallSet, facts: tuple, size: int) -> list[str]:
    """The asked facts, then distractors, then generated filler, `size` memories in all."""
    base = [f.memory for f in facts]
    if size < len(base):
        raise ValueError(f"size {size} is smaller than the facts asked about ({len(base)})")
    base += list(recall.distractors[: size - len(base)])
    return base + synthetic_memories(size - len(base), seed=size)


def _fill(
    service: MemoryService, memories: list[str], seed: int, cues: dict[str, tuple[str, ...]]
) -> dict[str, int]:
    rng = random.Random(seed)
    ids = {}
    for text in memories:
        importance = round(rng.uniform(0.1, 0.9), 2)
        at = NOW - rng.uniform(0.0, 90.0) * DAY_S
        ids[text] = service.add(CONVERSATION, text, importance=importance, now=at, cues=cues.get(text, ())).id
    return ids


def recall(
    variant: Variant, recall_set: RecallSet, size: int, embedder: Embedder, *, split: str = "test"
) -> tuple[RecallResult, MemoryService, tempfile.TemporaryDirectory]:
    """Fill a fresh store to `size` and ask every question of `split` (dev | test | all)."""
    folder = tempfile.TemporaryDirectory(prefix="chacha-memory-bench-")
    store = ConversationStore(Path(folder.name) / "memory.sqlite3")
    service = MemoryService(
        store, variant.settings, embedder=embedder, form=variant.form, use_cues=variant.cues
    )
    facts = recall_set.facts if split == "all" else recall_set.split(split)
    ids = _fill(
        service,
        _corpus(recall_set, facts, size),
        seed=size,
        cues=load_cues(name=variant.cues) if variant.cues else {},
    )
    result = RecallResult(variant.name, variant.what, size, split, len(facts), 0, 0)
    for fact in facts:
        found = [f.memory.id for f in service.search(CONVERSATION, fact.question, limit=5, now=NOW)]
        target = ids[fact.memory]
        result.at1 += bool(found[:1] == [target])
        result.at5 += target in found
        if target not in found:
            result.misses.append(fact.id)
    return result, service, folder


def _percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2)


def speed(service: MemoryService, recall_set: RecallSet, *, repeats: int = 3) -> dict:
    """Embedding one memory and one whole retrieval, in ms, on this process's cores."""
    plain = Embedder()
    texts = [canonical(f.memory) for f in recall_set.facts] + [canonical(d) for d in recall_set.distractors]
    plain.passage(texts[0])  # load the model outside the timing
    embed_ms = []
    for text in texts:
        started = time.perf_counter()
        plain.passage(text)
        embed_ms.append((time.perf_counter() - started) * 1000)
    retrieve_ms, ranking_ms = [], []
    section_tokens = []
    settings = service.settings
    for _ in range(repeats):
        for fact in recall_set.facts:
            started = time.perf_counter()
            vector = service.embedder.query(fact.question)
            embedded = time.perf_counter()
            service.search_vector(CONVERSATION, vector, fact.question, limit=settings.top_n, now=NOW)
            done = time.perf_counter()
            retrieve_ms.append((done - started) * 1000)
            ranking_ms.append((done - embedded) * 1000)
    for fact in recall_set.facts:
        context = service.context(CONVERSATION, fact.question, visible_turns=set(), now=NOW)
        section = context.section or ""
        memories = section.split(RULES_HEADING)[0]
        section_tokens.append((estimate_tokens(memories), estimate_tokens(section)))
    return {
        "memories": len(service.list(CONVERSATION)),
        "embed_ms": {
            "median": _percentile(embed_ms, 50),
            "p99": _percentile(embed_ms, 99),
            "n": len(embed_ms),
        },
        "retrieve_ms": {
            "median": _percentile(retrieve_ms, 50),
            "p99": _percentile(retrieve_ms, 99),
            "n": len(retrieve_ms),
        },
        # the same without embedding the query: scoring every memory, ranking, reading the rows
        "rank_ms": {"median": _percentile(ranking_ms, 50), "p99": _percentile(ranking_ms, 99)},
        "section_tokens_max": max(m for m, _ in section_tokens),  # the memories, with their headings
        "section_with_rules_tokens_max": max(w for _, w in section_tokens),
        "prompt_tokens_budget": settings.prompt_tokens,
    }


def run(
    sizes: list[int], *, recall_path: Path | None = None, split: str = "test", disk_cache: bool = True
) -> dict:
    """Every variant at every size; speed at the largest size with the shipped variant.

    With `disk_cache` the embeddings of the generated filler are kept in the cache folder, so a
    second run does not embed 10,000 sentences again (the timings never use the cache).
    """
    recall_set = load_recall_set(recall_path)
    digest = hashlib.sha256(repr(sizes).encode()).hexdigest()[:12]
    embedder = CachedEmbedder(paths.cache_dir() / f"bench-memory-{digest}.npz" if disk_cache else None)
    results = []
    timing = None
    try:
        for size in sizes:
            for variant in variants():
                _LOGGER.info("memory recall: %s at %d memories …", variant.name, size)
                result, service, folder = recall(variant, recall_set, size, embedder, split=split)
                results.append(result)
                try:
                    if size == max(sizes) and variant.name == "shipped":
                        timing = speed(service, recall_set)
                finally:
                    service.conversations.close()
                    folder.cleanup()
    finally:
        embedder.save()
    return {
        "cores": len(os.sched_getaffinity(0)),
        "split": split,
        "facts": len(recall_set.split(split)) if split != "all" else len(recall_set.facts),
        "recall": [asdict(r) | {"recall1": r.recall1, "recall5": r.recall5} for r in results],
        "speed": timing,
    }


def render(report: dict) -> str:
    lines = [
        f"Recall of the right memory ({report['facts']} questions, split {report['split']}; "
        f"{report['cores']} core(s))",
        "",
        "| variant | memories | recall@1 | recall@5 |",
        "|---|---|---|---|",
    ]
    for r in report["recall"]:
        lines.append(
            f"| {r['variant']} | {r['size']:,} | {r['at1']}/{r['questions']} ({r['recall1']:.0%}) | "
            f"{r['at5']}/{r['questions']} ({r['recall5']:.0%}) |"
        )
    timing = report.get("speed")
    if timing:
        embed, retrieve = timing["embed_ms"], timing["retrieve_ms"]
        lines += [
            "",
            f"At {timing['memories']:,} memories: embedding one memory {embed['median']} ms median, "
            f"{embed['p99']} ms p99; one retrieval {retrieve['median']} ms median, "
            f"{retrieve['p99']} ms p99 "
            f"(n={retrieve['n']}), of which scoring and ranking {timing['rank_ms']['median']} ms median, "
            f"{timing['rank_ms']['p99']} ms p99; the largest memory section "
            f"{timing['section_tokens_max']} tokens "
            f"(budget {timing['prompt_tokens_budget']}), "
            f"{timing['section_with_rules_tokens_max']} with the rules.",
        ]
    return "\n".join(lines)
