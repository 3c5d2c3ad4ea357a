"""From collected chats to 차차's data: a phrasebook, few-shot examples, fine-tuning sets.

A pair is what she said and what he answered next. Consecutive messages of one person form one
turn (joined with spaces); a pair is made only when his turn follows hers within ``max_gap_s``.
Links, emoji and emoticons are removed (the doll speaks every word); a message left empty by
that is dropped, and media (stickers, photos, …) break a turn so a caption never pairs with a
reply to the picture. The bot's own replies count as his words, except those the offline
phrasebook made: feeding the phrasebook its own lines back would teach nothing.

A request to forget ("잊어줘", "새우 얘기 잊어줘") is never a pair: it would teach him to answer
it, and put the topic back into a prompt. What it asks to forget goes too: without a topic, her
turn just before it (and his answer); with one, every earlier pair of that chat naming the
topic. (What she asked 차차 himself to forget is already gone from the collection: the bot
applies the server's forget log.)

Everything is written to local files. Nothing here uploads anything anywhere.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path

import yaml

from telegram_collector.errors import TelegramError
from telegram_collector.store import CollectedMessage, CollectorStore

PHRASEBOOK_FILE = "phrasebook.yaml"
EXAMPLES_FILE = "examples.yaml"
OPENAI_FILE = "finetune-openai.jsonl"
GEMINI_FILE = "finetune-gemini.jsonl"

DEFAULT_MAX_GAP_S = 30 * 60
DEFAULT_MAX_CHARS = 300
DEFAULT_EXAMPLES = 12

_WORDS = {"text", "voice"}
_MADE_BY_RULE = {"phrasebook", "none", "memory", "disk-full"}  # his words by rule, not his own
_URL = re.compile(r"(?:https?://|ftp://|www\.)\S+|<\S+@\S+>", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
_HAS_WORD = re.compile(r"[0-9A-Za-z가-힣ㄱ-ㅎㅏ-ㅣ]")


@dataclass(frozen=True)
class Pair:
    """She said this; he answered that."""

    she: str
    he: str
    chat_id: int
    source: str
    date: float


@dataclass
class _Turn:
    role: str
    start: float
    end: float
    parts: list[str] = field(default_factory=list)
    usable: bool = True

    @property
    def text(self) -> str:
        return " ".join(self.parts)


def clean_text(text: str) -> str:
    """A message as a line he could say: no links, emoji or emoticons, spaces tidied."""
    from tts.chat_expressions import remove_emoji, remove_emoticons

    text = remove_emoticons(remove_emoji(_URL.sub(" ", text)))
    text = _SPACE.sub(" ", text).strip()
    return text if _HAS_WORD.search(text) else ""


def build_pairs(
    messages: Iterable[CollectedMessage],
    *,
    max_gap_s: float = DEFAULT_MAX_GAP_S,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> tuple[list[Pair], Counter[str]]:
    """The pairs in the messages, and what was left out and why."""
    from inference_server.memory.text import forget_request

    skipped: Counter[str] = Counter()
    pairs: list[Pair] = []
    seen: set[tuple[str, str]] = set()
    ordered = sorted(messages, key=lambda m: (m.chat_id, m.source, m.date, m.message_id))
    for (chat_id, source), group in groupby(ordered, key=lambda m: (m.chat_id, m.source)):
        turns = list(_turns(group, max_gap_s, skipped))
        chat_pairs: list[Pair] = []
        for hers, his in zip(turns, turns[1:], strict=False):
            if hers.role != "she":
                continue
            request = forget_request(hers.text)
            if request is not None:
                skipped["a request to forget"] += 1
                dropped = _forgotten(chat_pairs, request.topic)
                skipped["what she asked to forget"] += len(dropped)
                chat_pairs = [p for p in chat_pairs if p not in dropped]
                continue
            if his.role != "he":
                continue
            if not (hers.usable and his.usable):
                skipped["pair next to media or a phrasebook reply"] += 1
            elif his.start - hers.end > max_gap_s:
                skipped["reply came too late"] += 1
            elif len(hers.text) > max_chars or len(his.text) > max_chars:
                skipped["too long"] += 1
            elif (hers.text, his.text) in seen:
                skipped["duplicate"] += 1
            else:
                seen.add((hers.text, his.text))
                chat_pairs.append(Pair(hers.text, his.text, chat_id, source, hers.end))
        pairs.extend(chat_pairs)
    return pairs, skipped


def _forgotten(pairs: list[Pair], topic: str) -> list[Pair]:
    """The pairs a request to forget takes back: the last one, or those naming the topic."""
    if not topic:
        return pairs[-1:]
    words = [w for w in topic.split() if len(w) >= 2] or [topic]
    return [p for p in pairs if sum(w in p.she or w in p.he for w in words) * 2 >= len(words)]


def _turns(messages: Iterable[CollectedMessage], max_gap_s: float, skipped: Counter[str]) -> Iterator[_Turn]:
    turn: _Turn | None = None
    for m in messages:
        usable = (
            m.kind in _WORDS and m.role != "other" and not (m.role == "he" and m.backend in _MADE_BY_RULE)
        )
        text = clean_text(m.text) if usable else ""
        if usable and not text:
            skipped["emoji or link only"] += 1
            continue
        if not usable:
            skipped[
                "media" if m.kind not in _WORDS else "phrasebook reply" if m.role == "he" else "other"
            ] += 1
        same = turn is not None and turn.role == m.role and m.date - turn.end <= max_gap_s
        if not same:
            if turn is not None:
                yield turn
            turn = _Turn(m.role, m.date, m.date)
        turn.end = m.date
        if text:
            turn.parts.append(text)
        turn.usable = turn.usable and usable
    if turn is not None:
        yield turn


# --- choosing few-shot examples ---------------------------------------------------------------


def choose_examples(pairs: list[Pair], count: int = DEFAULT_EXAMPLES) -> list[Pair]:
    """The best few examples for the persona: short, and as different from each other as can be."""
    short = [p for p in pairs if 2 <= len(p.she) <= 40 and 4 <= len(p.he) <= 80]
    pool = sorted(short or pairs, key=lambda p: (abs(len(p.he) - 30), len(p.she), p.she))
    chosen: list[Pair] = []
    for threshold in (0.3, 0.5, 1.01):
        for pair in pool:
            if len(chosen) >= count:
                return chosen
            if pair in chosen:
                continue
            if all(
                _overlap(pair.she, c.she) < threshold and _overlap(pair.he, c.he) < threshold for c in chosen
            ):
                chosen.append(pair)
    return chosen


def _bigrams(text: str) -> set[str]:
    compact = text.replace(" ", "")
    return {compact[i : i + 2] for i in range(len(compact) - 1)} or {compact}


def _overlap(a: str, b: str) -> float:
    x, y = _bigrams(a), _bigrams(b)
    return len(x & y) / len(x | y)


# --- writing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Written:
    path: Path
    count: int
    what: str


@dataclass
class ExportReport:
    messages: int
    pairs: int
    skipped: Counter[str]
    written: list[Written]

    def lines(self) -> list[str]:
        out = [f"{self.pairs} pairs from {self.messages} collected messages"]
        if self.skipped:
            out.append("  left out: " + ", ".join(f"{r} {n}" for r, n in self.skipped.most_common()))
        width = max(len(str(w.path)) for w in self.written)
        out += [f"  {str(w.path):<{width}}  {w.count:>5} {w.what}" for w in self.written]
        return out


def system_line(name: str = "차차", partner: str = "진주") -> str:
    """The short persona line the fine-tuning sets carry as their system message."""
    return (
        f"너는 {name}이고, 여자친구 {partner}와 이야기한다. 연인 사이의 다정한 반말로, "
        "소리 내어 읽기 좋은 짧은 한두 문장으로 대답한다."
    )


def _dump_yaml(path: Path, header: str, data: dict) -> None:
    body = yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=4096, default_flow_style=False)
    path.write_text(header + body, encoding="utf-8")


def write_phrasebook(pairs: list[Pair], path: Path, *, not_understood_from: Path | None = None) -> int:
    """A phrasebook in the server's format, checked by loading it as the server will."""
    from inference_server.backends.phrasebook import Phrasebook, default_phrasebook_path
    from inference_server.errors import InferenceError
    from inference_server.yamlfile import load_yaml

    shipped = load_yaml(not_understood_from or default_phrasebook_path(), what="phrasebook")
    not_understood = list(shipped.get("not_understood") or []) if isinstance(shipped, dict) else []
    if not not_understood:
        raise TelegramError("the shipped phrasebook has no not_understood replies to copy")
    _dump_yaml(
        path,
        "# 차차's phrasebook made from your chats by `chacha telegram export`.\n"
        "# Use it with llm.phrasebook.file in chacha.yaml. Personal data: keep it to yourself.\n",
        {
            "pairs": [{"tag": "chat", "she": p.she, "he": p.he} for p in pairs],
            "not_understood": not_understood,
        },
    )
    try:
        Phrasebook.load(path)
    except InferenceError as exc:  # a bug here, not the user's: say so plainly
        raise TelegramError(f"the exported phrasebook does not load: {exc}") from None
    return len(pairs)


def write_examples(pairs: list[Pair], path: Path, count: int = DEFAULT_EXAMPLES) -> int:
    """Few-shot examples to paste into the persona's ``examples:``."""
    chosen = choose_examples(pairs, count)
    _dump_yaml(
        path,
        "# Few-shot examples from your chats: paste them under `examples:` in your persona YAML.\n",
        {"examples": [{"she": p.she, "he": p.he} for p in chosen]},
    )
    return len(chosen)


def openai_line(pair: Pair, system: str) -> dict:
    return {
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": pair.she},
            {"role": "assistant", "content": pair.he},
        ]
    }


def gemini_line(pair: Pair, system: str) -> dict:
    """Vertex AI's supervised tuning format for Gemini (the Gemini API itself no longer tunes)."""
    return {
        "systemInstruction": {"role": "system", "parts": [{"text": system}]},
        "contents": [
            {"role": "user", "parts": [{"text": pair.she}]},
            {"role": "model", "parts": [{"text": pair.he}]},
        ],
    }


def write_jsonl(lines: Iterable[dict], path: Path) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
            count += 1
    return count


def export_all(
    store: CollectorStore,
    output: Path,
    *,
    persona_file: Path | None = None,
    max_gap_s: float = DEFAULT_MAX_GAP_S,
    examples: int = DEFAULT_EXAMPLES,
) -> ExportReport:
    """Write the phrasebook, the examples and both fine-tuning sets into ``output``."""
    from inference_server.errors import InferenceError
    from inference_server.persona import Persona

    messages = list(store.messages())
    pairs, skipped = build_pairs(messages, max_gap_s=max_gap_s)
    if not pairs:
        raise TelegramError(
            f"no pairs of what she said and what he answered among {len(messages)} collected messages: "
            "import a chat first (`chacha telegram import result.json --she NAME --he NAME`)"
        )
    try:
        persona = Persona.load(persona_file)
    except InferenceError as exc:
        raise TelegramError(str(exc)) from None
    system = system_line(persona.name, persona.partner)
    try:
        output.mkdir(parents=True, exist_ok=True)
        written = [
            Written(
                output / PHRASEBOOK_FILE,
                write_phrasebook(pairs, output / PHRASEBOOK_FILE),
                "phrasebook pairs",
            ),
            Written(
                output / EXAMPLES_FILE,
                write_examples(pairs, output / EXAMPLES_FILE, examples),
                "few-shot examples",
            ),
            Written(
                output / OPENAI_FILE,
                write_jsonl((openai_line(p, system) for p in pairs), output / OPENAI_FILE),
                "OpenAI chat fine-tuning lines",
            ),
            Written(
                output / GEMINI_FILE,
                write_jsonl((gemini_line(p, system) for p in pairs), output / GEMINI_FILE),
                "Gemini (Vertex AI) tuning lines",
            ),
        ]
    except OSError as exc:
        raise TelegramError(
            f"cannot write the export into {output}: {exc.strerror or exc} — use --output"
        ) from None
    return ExportReport(len(messages), len(pairs), skipped, written)
