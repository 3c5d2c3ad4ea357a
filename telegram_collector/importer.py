"""Importing a Telegram Desktop chat export (result.json) into the collector.

Telegram Desktop → Settings → Advanced → Export Telegram data (or a chat's ⋮ → Export chat
history), format "Machine-readable JSON". A single chat's export is one object
``{name, type, id, messages: [...]}``; a whole account's export holds its chats under
``chats.list``. Each message is ``{id, type: "message"|"service", date, date_unixtime, from,
from_id: "user123…", text, text_entities, reply_to_message_id, edited, media_type, photo, file,
sticker_emoji, forwarded_from, …}``, where ``text`` is a string or a list of strings and entity
objects ``{type, text}`` (bold, italic, link, text_link, mention, custom_emoji, …).

Only words are kept: stickers, photos, files and voice or video messages without a caption
are skipped and counted, as are service messages (calls, pins, …), forwarded messages (not
their words) and anybody but the two of them. Importing the same export again adds nothing.

An export whose shape is not Telegram's (a chat that is not an object, a message id that is
not a whole number below 2^63 or has thousands of digits, JSON nested deeper than Python's
reader follows, …) is refused as a whole, naming the chat, the message's index and the field;
nothing is written. A message whose date cannot be read is not imported either,
but counted and listed apart ("bad date") so that it is never lost unseen.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from inference_server.shared.text import mend_text
from telegram_collector.errors import TelegramError
from telegram_collector.store import CollectedMessage, CollectorStore, Speaker

_USER_ID = re.compile(r"^(?:user)?(\d+)$")
_MAX_ID = 2**63 - 1  # SQLite's INTEGER
_MAX_DIGITS = 30  # a number with more digits is never an id; it is not even made an int
_MAX_TEXT_DEPTH = 16  # entities within entities in a message's text; Telegram writes 2
_EXPORT_DEPTH = 6  # how deep a Telegram Desktop export nests (chats.list[i].messages[j].text[k])
_EARLIEST = 1_262_304_000.0  # 2010-01-01: before Telegram; earlier dates are not real
_LATEST = 4_102_444_800.0  # 2100-01-01
_LISTED = 5  # bad dates named one by one in the summary

# Keys that mark a message as something other than words when it has no text.
_MEDIA_KEYS = (
    ("photo", "photo"),
    ("file", "file"),
    ("poll", "poll"),
    ("location_information", "location"),
    ("contact_information", "contact"),
    ("game_title", "game"),
    ("invoice_information", "invoice"),
    ("dice", "dice"),
)


@dataclass
class ImportReport:
    """What an import did: how many messages were added, and what was skipped and why."""

    path: Path
    chats: list[str] = field(default_factory=list)
    imported: int = 0
    updated: int = 0
    """Already there, but edited since the last import: the text was replaced."""
    already_present: int = 0
    edited: int = 0
    """Messages edited in Telegram (their final text is what is kept)."""
    skipped: Counter[str] = field(default_factory=Counter)
    bad_dates: list[str] = field(default_factory=list)
    """Their messages not imported because their date is not a time, as 'messages[i] (id n)'."""

    def lines(self) -> list[str]:
        out = [
            f"Imported from {self.path}: {', '.join(self.chats) or 'no chat'}",
            f"  new messages:      {self.imported}"
            + (f" ({self.edited} edited in Telegram: their final text is kept)" if self.edited else ""),
            f"  already there:     {self.already_present}",
        ]
        if self.updated:
            out.append(f"  updated (edited):  {self.updated}")
        if self.skipped:
            reasons = ", ".join(f"{reason} {count}" for reason, count in self.skipped.most_common())
            out.append(f"  skipped:           {sum(self.skipped.values())} ({reasons})")
        if self.bad_dates:
            named = ", ".join(self.bad_dates[:_LISTED])
            more = f" and {len(self.bad_dates) - _LISTED} more" if len(self.bad_dates) > _LISTED else ""
            out.append(
                f"  bad date:          {len(self.bad_dates)} not imported ({named}{more}): "
                "their date_unixtime (or date) is not a time; export the chat again"
            )
        return [mend_text(line) for line in out]  # a chat's name may hold broken Unicode


class LongNumber:
    """A number in the export with more than _MAX_DIGITS digits: never an id, never made an int.

    Python refuses to read an int of more than 4,300 digits (ValueError, not a JSON error), and
    no id is that long anyway; what it was is kept only to be named in the error.
    """

    def __init__(self, digits: str) -> None:
        self.digits = len(digits.lstrip("-+"))

    def __repr__(self) -> str:
        return f"a number of {self.digits:,} digits"

    __str__ = __repr__


def _number(digits: str) -> int | LongNumber:
    """A JSON integer (or the digits of a from_id) as an int, unless it is far too long to be an id."""
    return int(digits) if len(digits) <= _MAX_DIGITS else LongNumber(digits)


class Person:
    """Who someone is in an export: a user id ("123", "user123", 123) or a display name."""

    def __init__(self, spec: str | int) -> None:
        self.spec = str(spec).strip()
        if not self.spec:
            raise TelegramError("--she and --he need a display name or a Telegram user id")
        found = _USER_ID.match(self.spec)
        number = _number(found.group(1)) if found else None
        if isinstance(number, LongNumber):
            raise TelegramError(
                f"--she and --he take a display name or a Telegram user id, not {number}: "
                "a user id has at most 19 digits"
            )
        self.user_id = number

    def matches(self, message: dict) -> bool:
        if self.user_id is not None and _user_number(message) == self.user_id:
            return True
        name = message.get("from")
        return isinstance(name, str) and name.strip().casefold() == self.spec.casefold()

    def __str__(self) -> str:
        return self.spec


def import_export(
    path: Path | str,
    store: CollectorStore,
    *,
    she: str | int,
    he: str | int,
    chat: str | int | None = None,
) -> ImportReport:
    """Import 진주's and 차차's words from a Telegram Desktop JSON export.

    ``she`` and ``he`` are display names (as in the export's ``from``) or user ids (``from_id``
    with or without its "user" prefix). From a whole account's export, the chats where both of
    them wrote are imported (or only ``chat``, by name or id).
    """
    path = Path(path)
    her, him = Person(she), Person(he)
    chats = list(_chats(_load(path), chat, path))
    report = ImportReport(path)
    if not chats:
        raise TelegramError(f"{path} has no chat{f' called {chat}' if chat is not None else ''} to import")
    picked = []
    for where, item, messages in chats:
        has_her = any(her.matches(m) for m in messages)
        has_him = any(him.matches(m) for m in messages)
        if has_her and has_him:
            picked.append((where, item, messages))
        elif len(chats) == 1:
            missing = " and ".join(
                f"--{flag} {who}"
                for flag, who, found in (("she", her, has_her), ("he", him, has_him))
                if not found
            )
            raise TelegramError(
                f"nobody in {path} matches {missing}: the senders are {_senders(messages)} "
                "(give a display name or the number of a from_id)"
            )
    if not picked:
        raise TelegramError(
            f"no chat in {path} has messages from both --she {her} and --he {him}: "
            "check the names or ids (see the from and from_id fields), or export that chat alone"
        )
    # Every chat is read (and checked) before anything is written: a bad export imports nothing.
    kept = []
    for where, item, messages in picked:
        report.chats.append(f"{_name(item) or 'chat'} ({len(messages)} messages)")
        kept.append(list(_collect(where, item, messages, her, him, report, path)))
    for messages in kept:
        result = store.add_many(messages)
        report.imported += result.added
        report.updated += result.updated
        report.already_present += result.unchanged
        if result.forgotten:
            report.skipped["forgotten at her request"] += result.forgotten
    return report


def _load(path: Path) -> dict:
    try:
        with path.open(encoding="utf-8") as f:
            data = json.load(f, parse_int=_number)
    except RecursionError:
        raise TelegramError(
            f"{path} nests its JSON more than {_reader_depth():,} levels deep, the most Python's JSON "
            f"reader follows (a Telegram Desktop export nests {_EXPORT_DEPTH}): it is not a chat "
            "export — export again with the format 'Machine-readable JSON'"
        ) from None
    except FileNotFoundError:
        raise TelegramError(
            f"export not found: {path} — give the result.json Telegram Desktop wrote"
        ) from None
    except IsADirectoryError:
        raise TelegramError(f"{path} is a folder: give the result.json inside it") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TelegramError(f"cannot read {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise TelegramError(
            f"{path} is not JSON (line {exc.lineno}): export again with the format "
            "'Machine-readable JSON', not HTML"
        ) from None
    if not isinstance(data, dict):
        raise TelegramError(
            f"{path} is not a Telegram Desktop chat export: its top level is {_a(data)}, not an object"
        )
    if "messages" not in data and "chats" not in data:
        raise TelegramError(f"{path} is not a Telegram Desktop chat export: it has no messages or chats.list")
    return data


def _reader_depth() -> int:
    """How deep Python's JSON reader follows nesting here: found by trying, for the error message
    only (about 1,000 levels on Python 3.11, set by its recursion limit; later Pythons differ)."""
    low, high = 1, 1 << 17
    while low < high:
        middle = (low + high + 1) // 2
        try:
            json.loads("[" * middle + "]" * middle)
        except RecursionError:
            high = middle - 1
        else:
            low = middle
    return low


def _chats(data: dict, only: str | int | None, path: Path) -> Iterator[tuple[str, dict, list[dict]]]:
    """(where in the file, the chat, its messages) for each chat to look at; shape errors name the field."""
    if "messages" in data:
        found = [("", data)]
    else:
        chats = data["chats"]
        if not isinstance(chats, dict) or not isinstance(chats.get("list"), list):
            raise TelegramError(
                f"{path}: chats is {_a(chats)}, but a Telegram Desktop export has an object there "
                "with the chats under chats.list — export again, or export the one chat alone"
            )
        found = [(f"chats.list[{i}]", item) for i, item in enumerate(chats["list"])]
    for where, item in found:
        if not isinstance(item, dict):
            raise TelegramError(f"{path}: {where} is {_a(item)}, not a chat object — export again")
        if only is not None and str(only).strip() not in (_shown(item.get("id")), _name(item)):
            continue
        messages = item.get("messages", [])
        prefix = f"{where}." if where else ""
        if not isinstance(messages, list):
            raise TelegramError(f"{path}: {prefix}messages is {_a(messages)}, not a list — export again")
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                raise TelegramError(
                    f"{path}: {prefix}messages[{i}] is {_a(message)}, not a message object — export again"
                )
        yield where, item, messages


def _collect(
    where: str,
    chat: dict,
    messages: list[dict],
    her: Person,
    him: Person,
    report: ImportReport,
    path: Path,
) -> Iterator[CollectedMessage]:
    prefix = f"{where}." if where else ""
    chat_id = chat.get("id")
    if chat_id is None:
        chat_id = zlib.crc32(_name(chat).encode()) % 2**31  # exports carry an id; just in case
    else:
        chat_id = _whole_number(chat_id, f"{path}: {prefix}id (the chat's id)")
    for i, message in enumerate(messages):
        at = f"{path}: {prefix}messages[{i}]"
        if message.get("type") != "message":
            report.skipped["service message"] += 1
            continue
        role: Speaker
        if her.matches(message):
            role = "she"
        elif him.matches(message):
            role = "he"
        else:
            report.skipped["someone else"] += 1
            continue
        if message.get("forwarded_from") is not None or message.get("saved_from") is not None:
            report.skipped["forwarded"] += 1
            continue
        kind = _kind(message)
        text = _text(message.get("text", ""), f"{at}.text").strip()
        if not text:
            report.skipped[kind if kind != "text" else "empty"] += 1
            continue
        if "id" not in message:
            raise TelegramError(f"{at} has no id — export again")
        message_id = _whole_number(message["id"], f"{at}.id")
        sender_id = _sender_id(message, at)
        reply_to = message.get("reply_to_message_id")
        if reply_to is not None:
            reply_to = _whole_number(reply_to, f"{at}.reply_to_message_id")
        date = _date(message)
        if date is None:
            report.bad_dates.append(f"{prefix}messages[{i}] (id {message_id})")
            continue
        edited = "edited" in message or "edited_unixtime" in message
        report.edited += edited
        yield CollectedMessage(
            chat_id=chat_id,
            message_id=message_id,
            source="import",
            sender_id=sender_id,
            sender_name=str(message.get("from") or ""),
            role=role,
            date=date,
            text=text,
            reply_to=reply_to,
            kind=kind,
            edited=edited,
        )


def flatten_text(text: object, *, depth: int = _MAX_TEXT_DEPTH) -> str:
    """An export's ``text`` as plain text: a string, or a list of strings and entities
    ``{type, text}`` whose text is itself a string or such a list; the pieces are joined in
    order. Anything else (a number, null, an entity without text) adds nothing.

    Raises ValueError when entities nest more than ``depth`` levels deep.
    """
    if isinstance(text, str):
        return text
    if isinstance(text, dict):
        text = text.get("text", "")
        if isinstance(text, str):
            return text
    if not isinstance(text, list):
        return ""
    if depth <= 0:
        raise ValueError(f"its entities nest more than {_MAX_TEXT_DEPTH} levels deep")
    return "".join(flatten_text(part, depth=depth - 1) for part in text)


def _text(text: object, what: str) -> str:
    try:
        return flatten_text(text)
    except ValueError as exc:
        raise TelegramError(
            f"{what}: {exc} (Telegram writes 2) — it is not Telegram's export: export again"
        ) from None


def _kind(message: dict) -> str:
    media = message.get("media_type")
    if isinstance(media, str) and media:
        return media
    for key, kind in _MEDIA_KEYS:
        if key in message:
            return kind
    return "text"


def _a(value: object) -> str:
    """'a list', 'a string', … for an error message."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "true or false", type(None): "null"}
    return names.get(type(value), "a number")


def _shown(value: object, *, quoted: bool = True) -> str:
    """A value of the export as an error names it: short, and never a whole list or object."""
    if isinstance(value, (dict, list)):
        return _a(value)
    if isinstance(value, str):
        shown = repr(value) if quoted else value
        return shown if len(shown) <= 40 else shown[:39] + "…"
    return repr(value)


def _name(chat: dict) -> str:
    """A chat's name: its name if that is text, else empty."""
    name = chat.get("name")
    return name.strip() if isinstance(name, str) else ""


def _whole_number(value: object, what: str) -> int:
    """An id as Telegram writes it: a whole number that fits SQLite's integer (below 2^63)."""
    if isinstance(value, LongNumber) or (isinstance(value, int) and not -_MAX_ID <= value <= _MAX_ID):
        raise TelegramError(f"{what} is {value}, too large for an id (at most 2^63 - 1) — export again")
    if isinstance(value, bool) or not isinstance(value, int):
        raise TelegramError(f"{what} is {_shown(value)}, not a whole number — export again")
    return value


def _user_number(message: dict) -> int | LongNumber | None:
    from_id = message.get("from_id", "")
    if isinstance(from_id, LongNumber):
        return from_id
    found = _USER_ID.match(str(from_id)) if isinstance(from_id, (str, int)) else None
    return _number(found.group(1)) if found else None


def _sender_id(message: dict, at: str) -> int | None:
    number = _user_number(message)
    return None if number is None else _whole_number(number, f"{at}.from_id")


def _date(message: dict) -> float | None:
    """Unix time of a message: its date_unixtime, or (in exports from before that field) its local
    date; None when the one it has is not a time between 2010 and 2100."""
    try:
        if "date_unixtime" in message:
            value = float(message["date_unixtime"])
        else:
            value = datetime.fromisoformat(str(message["date"])).timestamp()
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        return None
    return value if math.isfinite(value) and _EARLIEST <= value <= _LATEST else None


def _senders(messages: list[dict]) -> str:
    seen: Counter[tuple[str, str]] = Counter(
        (_shown(m.get("from"), quoted=False), _shown(m.get("from_id"), quoted=False))
        for m in messages
        if m.get("type") == "message"
    )
    if not seen:
        return "nobody (no messages)"
    return mend_text(", ".join(f"{name} ({from_id})" for (name, from_id), _ in seen.most_common(5)))
