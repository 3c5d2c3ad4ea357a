"""The offline brain: 차차's reply picked from (what 진주 says → what 차차 answers) pairs.

Similarity is the cosine of character n-gram TF-IDF vectors (1- to 3-grams of Hangul
syllables, spaces removed, so Vosk's morpheme spacing does not matter). The corpus is a few
hundred to a few thousand pairs, so a dictionary-based implementation is small and instant;
scikit-learn would bring ~150 MB of SciPy onto the Pi for the same forty lines.
"""

from __future__ import annotations

import logging
import math
import random
import re
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inference_server.backends.base import BackendError, LLMRequest
from inference_server.backends.registry import BuildContext
from inference_server.errors import InferenceError
from inference_server.yamlfile import describe_validation_error, load_yaml

_LOGGER = logging.getLogger(__name__)

_NGRAM_SIZES = (1, 2, 3)
_TIE_MARGIN = 0.03
_KEEP = re.compile(r"[^0-9a-z가-힣ㄱ-ㅎㅏ-ㅣ]+")


class _Pair(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    she: str = Field(min_length=1)
    he: str = Field(min_length=1)
    tag: str | None = None


class _PhrasebookFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    pairs: list[_Pair] = Field(min_length=1)
    not_understood: list[str] = Field(min_length=1)


@dataclass(frozen=True)
class Match:
    reply: str
    similarity: float
    prompt: str | None  # the `she` line matched; None when he did not understand


def default_phrasebook_path() -> Path:
    return Path(str(files("inference_server").joinpath("data/phrasebook.yaml")))


def _ngrams(text: str) -> Counter[str]:
    compact = _KEEP.sub("", text.lower())
    grams: Counter[str] = Counter()
    for size in _NGRAM_SIZES:
        grams.update(compact[i : i + size] for i in range(len(compact) - size + 1))
    return grams


class Phrasebook:
    """TF-IDF index over the `she` lines; answers with the best `he` line."""

    def __init__(
        self,
        pairs: list[tuple[str, str]],
        not_understood: list[str],
        *,
        min_similarity: float = 0.35,
        rng: random.Random | None = None,
    ) -> None:
        if not pairs or not not_understood:
            raise ValueError("a phrasebook needs pairs and not_understood replies")
        self.pairs = pairs
        self.not_understood = not_understood
        self.min_similarity = min_similarity
        self._rng = rng or random.Random()
        counts = [_ngrams(she) for she, _ in pairs]
        df: Counter[str] = Counter()
        for grams in counts:
            df.update(grams.keys())
        n = len(pairs)
        self._idf = {g: math.log((1 + n) / (1 + d)) + 1.0 for g, d in df.items()}
        self._vectors = [self._weigh(grams) for grams in counts]

    @classmethod
    def load(cls, path: Path | None = None, *, min_similarity: float = 0.35) -> Phrasebook:
        path = path or default_phrasebook_path()
        try:
            parsed = _PhrasebookFile.model_validate(load_yaml(path, what="phrasebook"))
        except ValidationError as exc:
            raise InferenceError(
                f"phrasebook file {path}: {describe_validation_error(exc, _PhrasebookFile)}"
            ) from None
        return cls(
            [(p.she.strip(), p.he.strip()) for p in parsed.pairs],
            [r.strip() for r in parsed.not_understood],
            min_similarity=min_similarity,
        )

    def _weigh(self, grams: Counter[str]) -> dict[str, float]:
        vec = {g: (1 + math.log(c)) * self._idf[g] for g, c in grams.items() if g in self._idf}
        norm = math.sqrt(sum(w * w for w in vec.values())) or 1.0
        return {g: w / norm for g, w in vec.items()}

    def match(self, text: str, *, avoid: frozenset[str] = frozenset()) -> Match:
        """Best reply for `text`; among near-ties, one he has not just said (`avoid`)."""
        query = self._weigh(_ngrams(text))
        if not query:
            return Match(self._pick(self.not_understood, avoid), 0.0, None)
        scores = [sum(w * vec.get(g, 0.0) for g, w in query.items()) for vec in self._vectors]
        best = max(scores)
        if best < self.min_similarity:
            return Match(self._pick(self.not_understood, avoid), best, None)
        tied = [i for i, s in enumerate(scores) if s >= best - _TIE_MARGIN]
        fresh = [i for i in tied if self.pairs[i][1] not in avoid] or tied
        chosen = self._rng.choice(fresh)
        return Match(self.pairs[chosen][1], scores[chosen], self.pairs[chosen][0])

    def _pick(self, replies: list[str], avoid: frozenset[str]) -> str:
        fresh = [r for r in replies if r not in avoid] or replies
        return self._rng.choice(fresh)


class PhrasebookBackend:
    """Always available, never needs the network: the last link of the chain."""

    name = "phrasebook"
    hears_audio = False  # it reads the transcript only

    def __init__(self, phrasebook: Phrasebook) -> None:
        self.phrasebook = phrasebook

    @property
    def unavailable_reason(self) -> str | None:
        return None

    async def complete(self, request: LLMRequest) -> str:
        raise BackendError("unavailable", "the phrasebook cannot write new text")

    async def stream(self, request: LLMRequest) -> AsyncIterator[str]:
        recent = frozenset(t.text for t in request.history[-6:] if t.role == "model")
        found = self.phrasebook.match(request.text, avoid=recent)
        _LOGGER.debug("phrasebook similarity %.2f for prompt %r", found.similarity, found.prompt)
        yield found.reply


def build(context: BuildContext) -> PhrasebookBackend:
    """The backend as the registry builds it, from ``llm.phrasebook`` (as the server's start checks it)."""
    from inference_server.startup import load_phrasebook

    return PhrasebookBackend(load_phrasebook(context.llm))
