"""A local fake of the Telegram Bot API, for tests that drive the real python-telegram-bot.

Point the real ``Application`` at ``FakeTelegram.base_url`` and ``base_file_url`` (with
``FakeTelegram.token``), queue what users "send" with ``push_text`` / ``push_voice`` /
``push_sticker`` / ``push_edit``, and read what the bot did in ``sent`` (one ``SentCall`` per
request: method, form parameters as sent, uploaded files as bytes).

Wire format emulated (what python-telegram-bot 22 sends and parses):

* Requests go to ``/bot<token>/<method>`` as POST, form-urlencoded, or multipart/form-data when
  a file is uploaded (sendVoice). Every value is a string; non-string values are JSON-encoded.
* Answers are ``{"ok": true, "result": …}``; errors ``{"ok": false, "error_code", "description"}``
  (401 for a wrong token, 404 for an unknown method, as Telegram does).
* ``getUpdates`` long-polls: it answers as soon as an update is queued, or after ``timeout``
  seconds (capped at ``MAX_POLL_S``) with an empty list. ``offset`` confirms the updates before
  it, which are then never served again.
* ``getFile`` gives a ``file_path``; the bytes are served by GET at ``/file/bot<token>/<file_path>``.
* Message ids are counted per chat, shared by both sides, as in a private chat.

Methods: getMe, getUpdates, deleteWebhook, getWebhookInfo, sendMessage, sendChatAction, getFile,
sendVoice, setMyCommands, getMyCommands, deleteMyCommands, close, logOut. Anything else is
answered 404 and listed in ``unknown``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["FakeTelegram", "SentCall"]

log = logging.getLogger(__name__)

MAX_POLL_S = 5.0
BOT_ID = 7000000001


@dataclass(frozen=True)
class SentCall:
    """One request the bot made (getUpdates is not recorded)."""

    method: str
    params: dict[str, str]
    files: dict[str, bytes] = field(default_factory=dict)
    at: float = 0.0

    def value(self, name: str):
        """A parameter decoded as the Bot API would: JSON where it parses, else the string."""
        raw = self.params.get(name)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw

    @property
    def text(self) -> str | None:
        return self.params.get("text")

    @property
    def chat_id(self) -> int | None:
        raw = self.params.get("chat_id")
        return int(raw) if raw is not None and raw.lstrip("-").isdigit() else None


class FakeTelegram:
    """The fake Bot API on 127.0.0.1 (an ephemeral port), in a thread of this process."""

    def __init__(self, token: str = "123456:TEST-fake-token", *, bot_name: str = "차차") -> None:
        self.token = token
        self.bot_user = {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": bot_name,
            "username": "chacha_test_bot",
            "can_join_groups": False,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self.sent: list[SentCall] = []
        self.unknown: list[str] = []
        self.polls = 0
        self.commands: dict[str, list] = {}
        self._updates: list[dict] = []
        self._files: dict[str, tuple[str, bytes]] = {}
        self._cond = threading.Condition()
        self._update_ids = itertools.count(100)
        self._message_ids: dict[int, itertools.count] = defaultdict(lambda: itertools.count(1))
        self._file_ids = itertools.count(1)
        self._stopping = False
        self._server = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-telegram", daemon=True
        )
        port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{port}"

    # --- lifetime -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        return f"{self.url}/file/bot"

    def start(self) -> FakeTelegram:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- what users send ------------------------------------------------------------------------

    def push_text(
        self, user_id: int, text: str, *, first_name: str = "User", reply_to: int | None = None
    ) -> int:
        """A private text message from ``user_id``; a leading /command gets its entity. Returns its id."""
        message = self._message(user_id, first_name, text=text)
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        if reply_to is not None:
            message["reply_to_message"] = {
                "message_id": reply_to,
                "date": message["date"],
                "chat": message["chat"],
                "text": "…",
            }
        return self._queue({"message": message})

    def push_voice(self, user_id: int, ogg: bytes, duration: int, *, first_name: str = "User") -> int:
        """A voice note (OGG/Opus bytes) that claims ``duration`` seconds. Returns its message id."""
        file_id = self.add_file(ogg, "voice", "oga")
        voice = {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "duration": duration,
            "mime_type": "audio/ogg",
            "file_size": len(ogg),
        }
        return self._queue({"message": self._message(user_id, first_name, voice=voice)})

    def push_sticker(self, user_id: int, emoji: str = "😘", *, first_name: str = "User") -> int:
        file_id = self.add_file(b"RIFF....WEBP", "stickers", "webp")
        sticker = {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
        }
        return self._queue({"message": self._message(user_id, first_name, sticker=sticker)})

    def push_edit(self, user_id: int, message_id: int, text: str, *, first_name: str = "User") -> None:
        """The user edited an earlier message."""
        message = self._message(user_id, first_name, text=text, message_id=message_id)
        message["edit_date"] = int(time.time())
        self._queue({"edited_message": message})

    def add_file(self, data: bytes, folder: str, extension: str) -> str:
        number = next(self._file_ids)
        file_id = f"FILE{number}"
        self._files[file_id] = (f"{folder}/file_{number}.{extension}", data)
        return file_id

    def _message(self, user_id: int, first_name: str, *, message_id: int | None = None, **content) -> dict:
        return {
            "message_id": message_id if message_id is not None else next(self._message_ids[user_id]),
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private", "first_name": first_name},
            "from": {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": "ko"},
            **content,
        }

    def _queue(self, update: dict) -> int:
        with self._cond:
            update["update_id"] = next(self._update_ids)
            self._updates.append(update)
            self._cond.notify_all()
        return (update.get("message") or update.get("edited_message"))["message_id"]

    # --- what the bot did -------------------------------------------------------------------------

    def calls(self, method: str) -> list[SentCall]:
        with self._cond:
            return [c for c in self.sent if c.method == method]

    def replies(self, chat_id: int | None = None) -> list[str]:
        """Texts of sendMessage calls (to one chat, or all)."""
        return [c.text or "" for c in self.calls("sendMessage") if chat_id is None or c.chat_id == chat_id]

    async def wait_for(self, method: str, count: int = 1, *, timeout: float = 10.0) -> list[SentCall]:
        """Wait (without blocking the loop) until the bot has made ``count`` calls of ``method``."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.calls(method)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"waited {timeout} s for {count} {method} call(s), got {len(found)}; "
                    f"calls so far: {[c.method for c in self.sent]}"
                )
            await asyncio.sleep(0.02)

    async def settle(self, *, timeout: float = 5.0) -> None:
        """Wait until every queued update was fetched and confirmed (handled or ignored)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._cond:
                if not self._updates:
                    break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the bot did not fetch the queued updates")
        await asyncio.sleep(0.2)  # let the last one's handler finish

    # --- the API ----------------------------------------------------------------------------------

    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args) -> None:
                log.debug("fake telegram: " + format, *args)

            def do_GET(self) -> None:
                path = unquote(urlsplit(self.path).path)
                prefix = f"/file/bot{fake.token}/"
                if path.startswith(prefix):
                    wanted = path[len(prefix) :]
                    for file_path, data in fake._files.values():
                        if file_path == wanted:
                            self._send(200, data, "application/octet-stream")
                            return
                    self._send(404, b"Not Found", "text/plain")
                    return
                self._api(path, {}, {})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                params, files = _parse_body(self.headers.get("Content-Type", ""), body)
                query = dict(parse_qsl(urlsplit(self.path).query))
                self._api(unquote(urlsplit(self.path).path), {**query, **params}, files)

            def _api(self, path: str, params: dict[str, str], files: dict[str, bytes]) -> None:
                parts = path.strip("/").split("/")
                if len(parts) != 2 or not parts[0].startswith("bot"):
                    self._json(404, {"ok": False, "error_code": 404, "description": "Not Found"})
                    return
                if parts[0][3:] != fake.token:
                    self._json(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
                    return
                status, result = fake._call(parts[1], params, files)
                if status == 200:
                    self._json(200, {"ok": True, "result": result})
                else:
                    self._json(status, {"ok": False, "error_code": status, "description": result})

            def _json(self, status: int, payload: dict) -> None:
                self._send(status, json.dumps(payload, ensure_ascii=False).encode(), "application/json")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def _call(self, method: str, params: dict[str, str], files: dict[str, bytes]) -> tuple[int, object]:
        if method == "getUpdates":
            return 200, self._get_updates(params)
        call = SentCall(method, params, files, time.monotonic())
        with self._cond:
            self.sent.append(call)
        if method == "getMe":
            return 200, self.bot_user
        if method in ("deleteWebhook", "sendChatAction", "close", "logOut", "deleteMyCommands"):
            return 200, True
        if method == "getWebhookInfo":
            return 200, {
                "url": "",
                "has_custom_certificate": False,
                "pending_update_count": len(self._updates),
            }
        if method == "setMyCommands":
            self.commands[params.get("scope", "default")] = call.value("commands")
            return 200, True
        if method == "getMyCommands":
            return 200, self.commands.get(params.get("scope", "default"), [])
        if method == "sendMessage":
            return 200, self._bot_message(call, text=params.get("text", ""))
        if method == "sendVoice":
            data = files.get("voice")
            if data is None:
                return 400, "Bad Request: there is no voice in the request"
            file_id = self.add_file(data, "voice", "oga")
            voice = {
                "file_id": file_id,
                "file_unique_id": f"u{file_id}",
                "duration": int(params.get("duration") or 1),
                "mime_type": "audio/ogg",
                "file_size": len(data),
            }
            return 200, self._bot_message(call, voice=voice)
        if method == "getFile":
            found = self._files.get(params.get("file_id", ""))
            if found is None:
                return 400, "Bad Request: invalid file_id"
            file_path, data = found
            return 200, {
                "file_id": params["file_id"],
                "file_unique_id": f"u{params['file_id']}",
                "file_size": len(data),
                "file_path": file_path,
            }
        with self._cond:
            self.unknown.append(method)
        return 404, "Not Found: method not found"

    def _bot_message(self, call: SentCall, **content) -> dict:
        chat_id = call.chat_id or 0
        message = {
            "message_id": next(self._message_ids[chat_id]),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private", "first_name": "User"},
            "from": self.bot_user,
            **content,
        }
        reply = call.value("reply_parameters")
        if isinstance(reply, dict) and "message_id" in reply:
            message["reply_to_message"] = {
                "message_id": reply["message_id"],
                "date": message["date"],
                "chat": message["chat"],
            }
        return message

    def _get_updates(self, params: dict[str, str]) -> list[dict]:
        offset = int(params.get("offset") or 0)
        timeout = min(float(params.get("timeout") or 0), MAX_POLL_S)
        limit = int(params.get("limit") or 100)
        deadline = time.monotonic() + timeout
        with self._cond:
            self.polls += 1
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            while not self._updates and not self._stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return list(self._updates[:limit])


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        """A client that hung up (the bot stopping mid-poll) is normal here; anything else is not."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _parse_body(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, bytes]]:
    """Form fields and uploaded files of a urlencoded or multipart body."""
    if content_type.startswith("multipart/form-data"):
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + body
        )
        params: dict[str, str] = {}
        files: dict[str, bytes] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            if part.get_filename() is not None:
                files[name] = payload
            else:
                params[name] = payload.decode("utf-8")
        return params, files
    if content_type.startswith("application/json"):
        data = json.loads(body or b"{}")
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}, {}
    return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True)), {}


def bot_config(tmp_path, telegram):
    """The whole configuration for the bot's commands: data under `tmp_path`, the phrasebook
    brain, Vosk, and the given TelegramSettings."""
    from device.config import ChachaConfig

    return ChachaConfig(
        server={"data_dir": str(tmp_path / "data")},
        llm={"backends": ["phrasebook"]},
        stt={"engine": "vosk"},
        telegram=telegram.model_dump(),
    )
