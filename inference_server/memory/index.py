"""The searchable form of one conversation's memories, held in RAM: an embedding matrix and a
lexical index of Korean stems (word prefixes), scored together with numpy.

Brute force is enough: 10,000 memories are a 10,000 × 384 float32 matrix (15 MB) and one
matrix–vector product; the lexical score touches only the query's terms. Rows are never moved:
a forgotten memory's row is switched off, and the index is rebuilt when too many are.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from inference_server.memory.embed import DIM


@dataclass(frozen=True)
class Entry:
    """What the index needs of one memory."""

    id: int
    vector: np.ndarray  # (384,) unit
    terms: Sequence[str]  # lexical terms (terms)
    importance: float
    created_at: float


class MemoryIndex:
    def __init__(self, capacity: int = 256) -> None:
        self._matrix = np.zeros((capacity, DIM), dtype=np.float32)
        self._importance = np.zeros(capacity, dtype=np.float32)
        self._created = np.zeros(capacity, dtype=np.float64)
        self._alive = np.zeros(capacity, dtype=bool)
        self._ids: list[int] = []
        self._row: dict[int, int] = {}
        self._postings: dict[str, dict[int, int]] = defaultdict(dict)  # term → row → count
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self._row)

    def __contains__(self, memory_id: int) -> bool:
        return memory_id in self._row

    @property
    def dead_share(self) -> float:
        return 1.0 - len(self._row) / len(self._ids) if self._ids else 0.0

    def add(self, entry: Entry) -> None:
        if entry.id in self._row:
            self.remove(entry.id)
        row = len(self._ids)
        if row == len(self._matrix):
            self._grow()
        self._matrix[row] = entry.vector
        self._importance[row] = entry.importance
        self._created[row] = entry.created_at
        self._alive[row] = True
        self._ids.append(entry.id)
        self._row[entry.id] = row
        for term in entry.terms:
            self._postings[term][row] = self._postings[term].get(row, 0) + 1
            self._arrays.pop(term, None)

    def remove(self, memory_id: int) -> bool:
        row = self._row.pop(memory_id, None)
        if row is None:
            return False
        self._alive[row] = False
        return True

    def set_importance(self, memory_id: int, importance: float) -> None:
        row = self._row.get(memory_id)
        if row is not None:
            self._importance[row] = importance

    def _grow(self) -> None:
        size = len(self._matrix) * 2
        self._matrix = np.resize(self._matrix, (size, DIM))
        for name in ("_importance", "_created", "_alive"):
            old = getattr(self, name)
            new = np.zeros(size, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def _posting(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        arrays = self._arrays.get(term)
        if arrays is None:
            posting = self._postings.get(term, {})
            arrays = (
                np.fromiter(posting.keys(), dtype=np.int64, count=len(posting)),
                np.fromiter(posting.values(), dtype=np.float32, count=len(posting)),
            )
            self._arrays[term] = arrays
        return arrays

    def _idf(self, df: int) -> float:
        count = len(self._row)
        return math.log(1.0 + (count - df + 0.5) / (df + 0.5))

    def scores(self, query: np.ndarray, words: Sequence[Sequence[str]]) -> Scores:
        """Dense cosine and the lexical score of every row for one query (dead rows included;
        see `alive`).

        `words` holds each query word's terms (its prefixes). A word counts once per memory,
        with the rarest (highest-idf) of its prefixes that the memory holds: "회식을" meeting
        "회식을" does not count twice for also meeting "회식". Length is not held against a
        memory: its cues make it long on purpose.
        """
        n = len(self._ids)
        dense = self._matrix[:n] @ query
        lexical = np.zeros(n, dtype=np.float32)
        alive = self._alive[:n]
        ceiling = 0.0
        if len(self._row):
            for prefixes in words:
                best = np.zeros(n, dtype=np.float32)
                top = 0.0
                for term in dict.fromkeys(prefixes):
                    rows, _counts = self._posting(term)
                    if not len(rows):
                        continue
                    df = int(alive[rows].sum())
                    if not df:
                        continue
                    idf = self._idf(df)
                    best[rows] = np.maximum(best[rows], idf)  # a posting names each row once
                    top = max(top, idf)
                lexical += best
                ceiling += top
        return Scores(
            ids=np.asarray(self._ids, dtype=np.int64),
            dense=dense,
            lexical=lexical,
            lexical_ceiling=ceiling,
            importance=self._importance[:n],
            created_at=self._created[:n],
            alive=alive,
        )


@dataclass(frozen=True)
class Scores:
    ids: np.ndarray
    dense: np.ndarray
    lexical: np.ndarray
    lexical_ceiling: float  # what a memory holding every query term once would score
    importance: np.ndarray
    created_at: np.ndarray
    alive: np.ndarray
