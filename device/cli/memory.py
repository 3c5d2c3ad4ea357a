"""`chacha memory …`: list, search, add, forget and reflect on 차차's long-term memory.

Every command works on the conversation `client.conversation`, through the configured server
(or one started in this process when `client.url` is not set), like `chacha status`.
"""

from __future__ import annotations

import argparse
import json
import sys
from argparse import Namespace
from datetime import datetime
from typing import TYPE_CHECKING

from device.cli.admin import _with_client
from device.cli.errors import CommandError

if TYPE_CHECKING:
    from device.config import ChachaConfig
    from inference_server.api.models import MemoriesForgotten, MemoryItem, MemoryScore
    from inference_server.settings import MemoryWeights

SEARCH_LIMIT = 10
_PRIORITY_TOLERANCE = 0.002
"""How far the weighted sum may miss the server's priority (its parts are rounded to 4 digits)."""


def _importance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, not {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1 (0.7 = matters a lot), not {text}")
    return value


def _shown(text: str) -> str:
    """What was typed, for an error: cut short when long (a 5,000-digit id is not repeated)."""
    return repr(text) if len(text) <= 24 else f"{text[:20]!r}… ({len(text):,} characters)"


def _positive_int(text: str) -> int:
    try:
        value = int(text) if len(text.strip()) <= 30 else None
    except ValueError:
        value = None
    if value is None:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {_shown(text)}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
    return value


def _memory_id(text: str) -> int:
    """A memory's id as the server stores it: a whole number from 1 to 2^63 - 1 (SQLite's INTEGER)."""
    from inference_server.api.models import MAX_ID

    digits = text.strip()
    if digits.isascii() and digits.isdigit() and (len(digits) > 30 or not 1 <= int(digits) <= MAX_ID):
        raise argparse.ArgumentTypeError(
            f"must be a memory's id, from 1 to 2^63 - 1 ({MAX_ID}), not {_shown(text)}: "
            "see `chacha memory list`"
        )
    return _positive_int(text)


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `memory list|search|add|forget|reflect` to the CLI."""
    p = subparsers.add_parser(
        "memory",
        help="차차's long-term memory: list, search, add, forget, reflect",
        description="Works on the conversation client.conversation, through the configured server.",
    )
    sub = p.add_subparsers(dest="memory_command", required=True, metavar="WHAT")

    s = sub.add_parser("list", help="every memory: id, kind, importance, state, date, channel, text")
    s.add_argument("--json", action="store_true", help="print the server's answer as JSON")
    s.set_defaults(func=list_memories)

    s = sub.add_parser("search", help="the memories that would come up for QUERY, with their scores")
    s.add_argument("query", metavar="QUERY", help="what she might say")
    s.add_argument(
        "--limit",
        type=_positive_int,
        default=SEARCH_LIMIT,
        metavar="N",
        help=f"at most N results (default {SEARCH_LIMIT})",
    )
    s.add_argument("--json", action="store_true", help="print the server's answer as JSON")
    s.set_defaults(func=search)

    s = sub.add_parser("add", help="add a memory by hand (one sentence)")
    s.add_argument("text", metavar="TEXT", help='e.g. "진주는 고양이를 무서워한다"')
    s.add_argument(
        "--importance",
        type=_importance,
        metavar="X",
        help="how much it matters, 0 to 1 (default: the server's, 0.7)",
    )
    s.add_argument(
        "--cue",
        action="append",
        default=[],
        metavar="WORD",
        help="a word it should come up for (repeat for more)",
    )
    s.set_defaults(func=add)

    s = sub.add_parser("forget", help="delete one memory by id, or every one with --all")
    which = s.add_mutually_exclusive_group(required=True)
    which.add_argument("id", type=_memory_id, nargs="?", metavar="ID", help="the memory's id (see list)")
    which.add_argument("--all", action="store_true", help="every memory of the conversation")
    s.add_argument("--yes", action="store_true", help="with --all: do not ask first")
    s.set_defaults(func=forget)

    s = sub.add_parser("reflect", help="end the current session and reflect on what waits, now")
    s.set_defaults(func=reflect)
    return p


def _dump(model) -> None:
    print(json.dumps(model.model_dump(mode="json"), ensure_ascii=False, indent=2))


def _when(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s).astimezone().strftime("%Y-%m-%d %H:%M")


def _text(memory: MemoryItem) -> str:
    if memory.reason_ids:
        return f"{memory.text}  ← reasons: {', '.join(str(i) for i in memory.reason_ids)}"
    return memory.text


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


# --- list ----------------------------------------------------------------------------------------


def list_memories(args: Namespace, config: ChachaConfig) -> int:
    conversation = config.client.conversation
    found = _with_client(config, lambda client: client.memories(conversation))
    if args.json:
        _dump(found)
        return 0
    if not found.memories:
        print(f"No memories of conversation {conversation!r} yet.")
        return 0
    print(f"{_plural(len(found.memories), 'memory', 'memories')} of conversation {conversation!r}:")
    width = max(2, *(len(str(m.id)) for m in found.memories))
    print(f"{'id':>{width}}  {'kind':<11} {'imp.':>4}  {'state':<6} {'date':<16}  {'channel':<10} text")
    for m in found.memories:
        print(
            f"{m.id:>{width}}  {m.kind:<11} {m.importance:>4.2f}  {m.state:<6} {_when(m.created_at):<16}  "
            f"{m.channel:<10} {_text(m)}"
        )
    return 0


# --- search --------------------------------------------------------------------------------------


def _priority(score: MemoryScore, weights: MemoryWeights) -> str:
    """How the priority is made: with this config's weights when they give the server's number."""
    parts = (("importance", score.importance), ("similarity", score.similarity), ("recency", score.recency))
    weighted = (
        weights.importance * score.importance
        + weights.similarity * score.similarity
        + weights.recency * score.recency
    )
    if abs(weighted - score.priority) <= _PRIORITY_TOLERANCE:
        terms = zip((weights.importance, weights.similarity, weights.recency), parts, strict=True)
        sum_ = " + ".join(f"{w:g}·{name} {value:.3f}" for w, (name, value) in terms)
        return f"priority {score.priority:.3f} = {sum_}"
    # The server weighs with its own memory.weights, not this config's.
    listed = ", ".join(f"{name} {value:.3f}" for name, value in parts)
    return f"priority {score.priority:.3f} from {listed} (weighted by the server's memory.weights)"


def search(args: Namespace, config: ChachaConfig) -> int:
    conversation = config.client.conversation
    found = _with_client(
        config, lambda client: client.search_memories(conversation, args.query, limit=args.limit)
    )
    if args.json:
        _dump(found)
        return 0
    if not found.results:
        print(f"No memories of conversation {conversation!r} to search yet.")
        return 0
    print(f"{_plural(len(found.results), 'memory', 'memories')} for {args.query!r}, best first:")
    for hit in found.results:
        m, score = hit.memory, hit.score
        print(f"#{m.id} [{m.kind}, {_when(m.created_at)}] {_text(m)}")
        print(f"    {_priority(score, config.memory.weights)}")
        print(
            f"    similarity from dense {score.dense:.3f} (cosine), "
            f"lexical {score.lexical:.3f} (shared words)"
        )
    return 0


# --- add -----------------------------------------------------------------------------------------


def add(args: Namespace, config: ChachaConfig) -> int:
    from inference_server.api.models import MAX_MEMORY_CHARS

    text = args.text.strip()
    if not text:
        raise CommandError('the memory is empty: chacha memory add "진주는 고양이를 무서워한다"')
    if len(text) > MAX_MEMORY_CHARS:
        raise CommandError(
            f"the memory is {len(text)} characters long: "
            f"keep it to one sentence of at most {MAX_MEMORY_CHARS}"
        )
    cues = [c.strip() for c in args.cue if c.strip()]
    conversation = config.client.conversation
    added = _with_client(
        config,
        lambda client: client.add_memory(conversation, text, importance=args.importance, cues=cues),
    )
    cued = f"; cues: {', '.join(added.cues)}" if added.cues else ""
    print(
        f"Added memory {added.id} to conversation {conversation!r} (importance {added.importance:.2f}{cued})."
    )
    return 0


# --- forget --------------------------------------------------------------------------------------


def _forgotten(done: MemoriesForgotten, memory_id: int) -> str:
    """What forgetting one memory deleted: it, the insights resting on it, words in the history."""
    line = f"Deleted {_plural(done.deleted, 'memory', 'memories')} of conversation {done.conversation!r}"
    others = [i for i in done.ids if i != memory_id]
    if others:
        resting = _plural(len(others), "insight", "insights")
        line += f": {memory_id} and the {resting} resting on it ({', '.join(map(str, others))})"
    line += "."
    if done.turns_erased:
        turns = _plural(done.turns_erased, "turn", "turns")
        line += f" Its words were erased from {turns} of the history too."
    return line


def forget(args: Namespace, config: ChachaConfig) -> int:
    conversation = config.client.conversation
    if not args.all:
        done = _with_client(config, lambda client: client.forget_memory(conversation, args.id))
        print(_forgotten(done, args.id))
        return 0
    if not args.yes and not sys.stdin.isatty():
        raise CommandError(
            f"`chacha memory forget --all` deletes every memory of conversation {conversation!r} "
            "and cannot ask here (stdin is not a terminal): add --yes"
        )

    async def job(client):
        if not args.yes:
            count = len((await client.memories(conversation)).memories)
            if not count:
                return None
            question = (
                f"Delete all {_plural(count, 'memory', 'memories')} of conversation {conversation!r}? "
                "This cannot be undone. [y/N] "
            )
            try:
                answer = input(question)
            except EOFError:
                answer = ""
            if answer.strip().lower() not in ("y", "yes"):
                raise CommandError("nothing deleted")
        return await client.forget_all_memories(conversation)

    done = _with_client(config, job)
    if done is None or not done.deleted:
        print(f"No memories of conversation {conversation!r} to delete.")
        return 0
    print(
        f"Deleted {_plural(done.deleted, 'memory', 'memories')} of conversation {conversation!r} "
        "(insights included); its history is unchanged."
    )
    return 0


# --- reflect -------------------------------------------------------------------------------------

_STATUS = {
    "reflected": "reflected by {detail}",
    "postponed": "postponed: {detail} (her raw words stay memories; tried again later)",
    "raw": "raw only: {detail} (gave up; her raw words stay memories)",
    "nothing": "nothing: {detail}",
}


def reflect(args: Namespace, config: ChachaConfig) -> int:
    conversation = config.client.conversation
    report = _with_client(config, lambda client: client.reflect(conversation))
    if not report.sessions:
        print(f"Nothing to reflect on: conversation {conversation!r} has no session waiting.")
        return 0
    for s in report.sessions:
        status = _STATUS.get(s.status, s.status + ": {detail}").format(detail=s.detail)
        counts = f"{_plural(s.memories, 'memory', 'memories')}, {_plural(s.insights, 'insight', 'insights')}"
        print(f"session {s.session_id}: {status} — {counts}")
    return 0
