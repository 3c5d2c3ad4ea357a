"""Reflection: one LLM call per ended session turns its talk into memories and insights.

The model reads the session's turns (each with its id) and answers JSON: the facts worth
keeping, as short sentences from 차차's side with an importance, and a few insights resting on
them (`reasons`: indexes into the facts, stored as the facts' memory ids, `reason_ids`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

from inference_server.memory.text import clean
from inference_server.persona import format_korean_time
from inference_server.store import Turn

MAX_TRANSCRIPT_CHARS = 8000
"""A session longer than this is reflected on its newest turns (the rest stay as raw memories)."""
MAX_FACTS = 20
MAX_INSIGHTS = 3
MAX_TEXT_CHARS = 200
MAX_CUES = 24
MAX_CUE_CHARS = 30
OUTPUT_TOKENS = 2048

INSTRUCTION = """You keep {name}'s long-term memory of his conversations with {partner}, his girlfriend.
Below is one conversation between them; every line starts with its turn id in brackets. It began {when}.

1. Write down what is worth remembering for weeks: facts about {partner}'s life (health, family,
   friends, work, plans, dates, likes and dislikes, worries) and what {name} himself said or
   promised. One fact per short Korean sentence from {name}'s side: "{partner}가 …다고 했다",
   "내가 …다고 말했다". Keep names, places, numbers; turn relative dates ("내일", "다음 주")
   into dates. Leave out greetings and small talk. Write nothing that was not said.
2. Rate each fact's importance from 0 to 1 (1: health, family, big events, dates to remember;
   0.1: trivia), and give the ids of the turns it comes from.
   Give each fact 15–20 cues: Korean words or short phrases (1–3 words) she might use weeks later
   when it matters without saying its words — for "새우 알레르기": 해산물, 게, 조개, 초밥, 뷔페,
   회식 메뉴, 짬뽕, 두드러기, 가려움, 응급실, 성분표, … — the concrete things, parts, symptoms,
   people, places, steps and consequences, casual words included.
3. Then at most {insights} insights: conclusions about {partner} that rest on two or more facts,
   with the indexes (0-based) of those facts in your list.

Answer with JSON only, no other text:
{{"memories": [{{"text": "…", "importance": 0.8, "turns": [12], "cues": ["…", "…"]}}],
 "insights": [{{"text": "…", "importance": 0.6, "reasons": [0, 2]}}]}}
If nothing is worth remembering, answer {{"memories": [], "insights": []}}."""


class ReflectionError(ValueError):
    """The model's answer is not the JSON asked for."""


@dataclass(frozen=True)
class Fact:
    text: str
    importance: float
    turn_ids: tuple[int, ...]
    cues: tuple[str, ...] = ()


@dataclass(frozen=True)
class Insight:
    text: str
    importance: float
    reasons: tuple[int, ...]  # indexes into the facts


@dataclass(frozen=True)
class Reflection:
    facts: tuple[Fact, ...]
    insights: tuple[Insight, ...]


def instruction(*, name: str, partner: str, started: datetime) -> str:
    return INSTRUCTION.format(
        name=name, partner=partner, when=format_korean_time(started), insights=MAX_INSIGHTS
    )


def transcript(turns: list[Turn], *, name: str, partner: str) -> str:
    """The session's turns as lines "[id] speaker: words", newest kept when it is too long."""
    lines = [f"[{t.id}] {partner if t.role == 'user' else name}: {clean(t.for_model)}" for t in turns]
    kept: list[str] = []
    size = 0
    for line in reversed(lines):
        size += len(line) + 1
        if size > MAX_TRANSCRIPT_CHARS and kept:
            break
        kept.append(line)
    return "\n".join(reversed(kept))


def _json_object(answer: str) -> dict:
    text = answer.strip()
    fenced = re.match(r"^```(?:json)?\s*(.*?)\s*```$", text, re.DOTALL)
    if fenced:
        text = fenced.group(1)
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise ReflectionError("the answer holds no JSON object")
    try:
        data = json.loads(text[start : end + 1])
    except json.JSONDecodeError as exc:
        raise ReflectionError(f"the answer is not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise ReflectionError("the answer is not a JSON object")
    return data


def _importance(value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.5
    if number != number:  # NaN
        return 0.5
    return min(max(number, 0.0), 1.0)


def _ints(value: object) -> list[int]:
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, int) and not isinstance(v, bool)]


def _cues(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    cues = (clean(v)[:MAX_CUE_CHARS] for v in value if isinstance(v, str))
    return tuple(dict.fromkeys(c for c in cues if c))[:MAX_CUES]


def parse(answer: str, *, turn_ids: set[int]) -> Reflection:
    """The facts and insights of the model's answer; ids it made up are dropped."""
    data = _json_object(answer)
    raw_facts, raw_insights = data.get("memories", []), data.get("insights", [])
    if not isinstance(raw_facts, list) or not isinstance(raw_insights, list):
        raise ReflectionError("'memories' and 'insights' must be lists")
    facts: list[Fact] = []
    for item in raw_facts[:MAX_FACTS]:
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            continue
        text = clean(item["text"])[:MAX_TEXT_CHARS]
        if text:
            turns = tuple(t for t in _ints(item.get("turns")) if t in turn_ids)
            facts.append(Fact(text, _importance(item.get("importance")), turns, _cues(item.get("cues"))))
    insights: list[Insight] = []
    for item in raw_insights[:MAX_INSIGHTS]:
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            continue
        text = clean(item["text"])[:MAX_TEXT_CHARS]
        reasons = tuple(dict.fromkeys(r for r in _ints(item.get("reasons")) if 0 <= r < len(facts)))
        if text and reasons:  # an insight with nothing under it would be made up
            insights.append(Insight(text, _importance(item.get("importance")), reasons))
    return Reflection(tuple(facts), tuple(insights))
