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
"""

from __future__ import annotations

import json
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from telegram_collector.errors import TelegramError
from telegram_collector.store import CollectedMessage, CollectorStore, Speaker

_USER_ID = re.compile(r"^(?:user)?(\d+)$")

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
        return out


class Person:
    """Who someone is in an export: a user id ("123", "user123", 123) or a display name."""

    def __init__(self, spec: str | int) -> None:
        self.spec = str(spec).strip()
        if not self.spec:
            raise TelegramError("--she and --he need a display name or a Telegram user id")
        found = _USER_ID.match(self.spec)
        self.user_id = int(found.group(1)) if found else None

    def matches(self, message: dict) -> bool:
        if self.user_id is not None and _sender_id(message) == self.user_id:
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
    chats = list(_chats(_load(path), chat))
    report = ImportReport(path)
    if not chats:
        raise TelegramError(f"{path} has no chat{f' called {chat}' if chat is not None else ''} to import")
    picked = []
    for item in chats:
        messages = [m for m in item.get("messages", []) if isinstance(m, dict)]
        has_her = any(her.matches(m) for m in messages)
        has_him = any(him.matches(m) for m in messages)
        if has_her and has_him:
            picked.append((item, messages))
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
    for item, messages in picked:
        report.chats.append(f"{item.get('name') or 'chat'} ({len(messages)} messages)")
        kept = list(_collect(item, messages, her, him, report))
        result = store.add_many(kept)
        report.imported += result.added
        report.updated += result.updated
        report.already_present += result.unchanged
    return report


def _load(path: Path) -> dict:
    try:
        with path.open(encoding="utf-8") as f:
            data = json.load(f)
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
    if not isinstance(data, dict) or not (
        isinstance(data.get("messages"), list) or isinstance((data.get("chats") or {}).get("list"), list)
    ):
        raise TelegramError(f"{path} is not a Telegram Desktop chat export: it has no messages or chats.list")
    return data


def _chats(data: dict, only: str | int | None) -> Iterator[dict]:
    chats = [data] if isinstance(data.get("messages"), list) else data["chats"]["list"]
    for item in chats:
        if not isinstance(item, dict):
            continue
        if only is not None and str(only).strip() not in (str(item.get("id")), str(item.get("name")).strip()):
            continue
        yield item


def _collect(
    chat: dict, messages: list[dict], her: Person, him: Person, report: ImportReport
) -> Iterator[CollectedMessage]:
    chat_id = chat.get("id")
    if not isinstance(chat_id, int):
        chat_id = zlib.crc32(str(chat.get("name")).encode()) % 2**31  # exports carry an id; just in case
    for message in messages:
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
        text = flatten_text(message.get("text", "")).strip()
        if not text:
            report.skipped[kind if kind != "text" else "empty"] += 1
            continue
        if not isinstance(message.get("id"), int):
            report.skipped["no id"] += 1
            continue
        edited = "edited" in message or "edited_unixtime" in message
        report.edited += edited
        reply_to = message.get("reply_to_message_id")
        yield CollectedMessage(
            chat_id=chat_id,
            message_id=message["id"],
            source="import",
            sender_id=_sender_id(message),
            sender_name=str(message.get("from") or ""),
            role=role,
            date=_date(message),
            text=text,
            reply_to=reply_to if isinstance(reply_to, int) else None,
            kind=kind,
            edited=edited,
        )


def flatten_text(text: object) -> str:
    """An export's ``text``: a string, or a list of strings and entities ``{type, text}``."""
    if isinstance(text, str):
        return text
    if isinstance(text, list):
        return "".join(
            part if isinstance(part, str) else str(part.get("text", "")) if isinstance(part, dict) else ""
            for part in text
        )
    return ""


def _kind(message: dict) -> str:
    media = message.get("media_type")
    if isinstance(media, str) and media:
        return media
    for key, kind in _MEDIA_KEYS:
        if key in message:
            return kind
    return "text"


def _sender_id(message: dict) -> int | None:
    found = _USER_ID.match(str(message.get("from_id", "")))
    return int(found.group(1)) if found else None


def _date(message: dict) -> float:
    try:
        return float(message["date_unixtime"])
    except (KeyError, TypeError, ValueError):
        pass
    try:
        return datetime.fromisoformat(str(message["date"])).timestamp()
    except (KeyError, ValueError):
        return 0.0


def _senders(messages: list[dict]) -> str:
    seen: Counter[tuple[str, str]] = Counter(
        (str(m.get("from")), str(m.get("from_id"))) for m in messages if m.get("type") == "message"
    )
    if not seen:
        return "nobody (no messages)"
    return ", ".join(f"{name} ({from_id})" for (name, from_id), _ in seen.most_common(5))
