"""Ranking memories for one thing she said: priority = importance + similarity + recency.

Each part lies in 0–1 and has its weight in `memory.weights`:
- importance: rated by the LLM at reflection (0.3 for her raw words until then);
- similarity: (1 − lexical_share) × the embedding's cosine, spread over 0–1 from
  `SIMILARITY_FLOOR`, + lexical_share × the BM25 score of the words they share (Korean stems
  as common prefixes), as a share of what a memory holding every word of the query would score;
- recency: 0.5 ** (age in days / `recency_half_life_days`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inference_server.memory.index import Scores
from inference_server.settings import MemorySettings

SIMILARITY_FLOOR = 0.70
"""e5's cosine between unrelated Korean sentences rarely drops below this; it maps to 0."""

DAY_S = 86_400.0


@dataclass(frozen=True)
class Scored:
    id: int
    priority: float
    importance: float
    similarity: float
    recency: float
    dense: float  # the raw cosine
    lexical: float  # BM25 as a share of a memory holding every query word (0–1)


def rank(scores: Scores, settings: MemorySettings, *, now: float, limit: int) -> list[Scored]:
    """The `limit` alive memories with the highest priority, best first."""
    alive = np.flatnonzero(scores.alive)
    if not len(alive) or limit <= 0:
        return []
    dense = scores.dense[alive]
    spread = np.clip((dense - SIMILARITY_FLOOR) / (1.0 - SIMILARITY_FLOOR), 0.0, 1.0)
    lexical = scores.lexical[alive]
    ceiling = scores.lexical_ceiling
    lexical01 = np.clip(lexical / ceiling, 0.0, 1.0) if ceiling > 0 else np.zeros_like(lexical)
    share = settings.lexical_share
    similarity = (1.0 - share) * spread + share * lexical01
    age_days = np.maximum(now - scores.created_at[alive], 0.0) / DAY_S
    recency = np.power(0.5, age_days / settings.recency_half_life_days)
    importance = np.clip(scores.importance[alive], 0.0, 1.0)
    w = settings.weights
    priority = w.importance * importance + w.similarity * similarity + w.recency * recency
    count = min(limit, len(alive))
    top = np.argpartition(-priority, count - 1)[:count] if count < len(alive) else np.arange(len(alive))
    top = top[np.argsort(-priority[top], kind="stable")]
    return [
        Scored(
            id=int(scores.ids[alive[i]]),
            priority=round(float(priority[i]), 4),
            importance=round(float(importance[i]), 4),
            similarity=round(float(similarity[i]), 4),
            recency=round(float(recency[i]), 4),
            dense=round(float(dense[i]), 4),
            lexical=round(float(lexical01[i]), 4),
        )
        for i in top
    ]
