"""Hostile but fair input, generated: the real server on loopback, the audio loader, the importer.

Property-based (hypothesis), each with a bounded number of examples so the suite's time stays
fixed. What must hold for every input: the server answers a status it means (never 500), its
error answers are short and never echo what was sent, it still answers afterwards; the audio
loader and the importer refuse bad files with their own clear error, never another exception.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device.audio import load_audio
from device.errors import AudioError
from telegram_collector.voice import VoiceError, decode_voice

pytestmark = pytest.mark.timeout(600)

EXAMPLES = 60
"""Examples per property: enough to find the classes of bad input, bounded in time."""

MEANT = {200, 400, 401, 404, 405, 409, 413, 422}
"""The statuses the API answers on purpose."""

ERROR_CAP = 4096
"""An error answer is at most this many bytes, whatever was sent."""

_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,  # a loaded CI machine is slow; the properties are about answers, not speed
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Text as hostile users send it: any code point, lone surrogates included (JSON allows "\ud800").
hostile_text = st.text(
    alphabet=st.characters(codec=None, exclude_categories=()), max_size=300
) | st.sampled_from(["\ud800abc", "\udfff", "a\x00b", "", " ", "\u202e역방향", "🙂" * 50, "가" * 2001])
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | hostile_text
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """One real server (phrasebook brain, long-term memory on) for every example of the module."""
    from inference_server.backends.phrasebook import Phrasebook, PhrasebookBackend
    from inference_server.chat import ChatService
    from inference_server.memory import MemoryService
    from inference_server.persona import PersonaBook
    from inference_server.runtime import BackgroundServer
    from inference_server.settings import MemorySettings
    from inference_server.store import ConversationStore

    folder = tmp_path_factory.mktemp("hostile")
    store = ConversationStore(folder / "conversations.sqlite3")
    chat = ChatService(
        PersonaBook(None, folder),
        store,
        [PhrasebookBackend(Phrasebook.load())],
        summarize=False,
        memory=MemoryService(store, MemorySettings()),
    )
    with BackgroundServer(chat, "hostile-token") as running:
        yield running


def _send(server, method: str, path: str, body: object | None = None, *, raw: bytes | None = None):
    # ensure_ascii keeps lone surrogates as "\ud800" escapes, as a hostile client would send them
    content = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    return httpx.request(
        method,
        f"{server.url}{path}",
        content=content,
        headers={"Authorization": "Bearer hostile-token", "Content-Type": "application/json"},
        timeout=30,
    )


def _check(response: httpx.Response, sent: object) -> None:
    assert response.status_code in MEANT, (response.status_code, response.text[:500])
    if response.status_code != 200:
        assert len(response.content) <= ERROR_CAP, len(response.content)
        for piece in _long_strings(sent):
            assert piece not in response.text, "the error answer echoes the input"


ECHO_CHARS = 80
"""An unknown key is named in a 422 (cut to 64 characters); anything this long must not come back."""


def _long_strings(value: object) -> list[str]:
    """Strings of the input long enough that finding one in an answer means it was echoed."""
    if isinstance(value, str):
        return [value] if len(value) >= ECHO_CHARS else []
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _long_strings(k) + _long_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _long_strings(v)]
    return []


@_SETTINGS
@given(
    body=st.fixed_dictionaries(
        {},
        optional={
            "conversation": hostile_text | json_values,
            "text": hostile_text | json_values,
            "channel": st.sampled_from(["doll", "telegram", "cli", "fax"]) | json_values,
            "audio": json_values
            | st.fixed_dictionaries(
                {
                    "mime_type": st.sampled_from(["audio/flac", "audio/ogg", "audio/wav", "text/html"]),
                    "data": st.text(alphabet=string.ascii_letters + string.digits + "+/=", max_size=64),
                }
            ),
        },
    )
    | json_values
)
def test_chat_answers_every_body_with_a_meant_status(server, body) -> None:
    _check(_send(server, "POST", "/v1/chat", body), body)


@_SETTINGS
@given(raw=st.binary(max_size=400))
def test_chat_answers_bytes_that_are_not_json(server, raw: bytes) -> None:
    _check(_send(server, "POST", "/v1/chat", raw=raw), None)


@_SETTINGS
@given(
    path=st.sampled_from(
        [
            "/v1/conversations/{c}/turns/{t}",
            "/v1/memory?conversation={c}",
            "/v1/memory/search?q={c}&limit={t}",
            "/v1/memory/{t}?conversation={c}",
            "/v1/conversations/{c}",
        ]
    ),
    method=st.sampled_from(["GET", "POST", "PATCH", "DELETE", "PUT"]),
    conversation=st.text(alphabet=string.printable, max_size=80),
    number=st.integers(min_value=-(2**70), max_value=2**70),
    body=json_values,
)
def test_every_endpoint_answers_odd_paths_and_bodies(
    server, path, method, conversation, number, body
) -> None:
    try:
        segment = httpx.URL("/").copy_with(path="/" + conversation).path.lstrip("/") or "x"
        target = path.format(c=segment, t=number)
        response = _send(server, method, target, body)
    except httpx.InvalidURL:
        return  # a path no client can send
    _check(response, body)
    if method == "DELETE" and target.startswith("/v1/conversations/"):
        return
    assert _send(server, "GET", "/v1/health").status_code == 200


def test_the_server_still_talks_after_the_fuzzing(server) -> None:
    response = _send(server, "POST", "/v1/chat", {"conversation": "jinju", "text": "안녕"})
    assert response.status_code == 200 and '"type": "final"' in response.text


# --- audio decoders ------------------------------------------------------------------------------


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.binary(max_size=2048)
    | st.builds(lambda tail: b"RIFF\x24\x00\x00\x00WAVEfmt " + tail, st.binary(max_size=200))
    | st.builds(lambda tail: b"fLaC" + tail, st.binary(max_size=200))
    | st.builds(lambda tail: b"OggS" + tail, st.binary(max_size=200)),
    suffix=st.sampled_from([".wav", ".flac", ".ogg", ".mp3", ""]),
)
def test_the_audio_loaders_refuse_garbage_with_their_own_error(
    tmp_path: Path, data: bytes, suffix: str
) -> None:
    path = tmp_path / f"her{suffix}"
    path.write_bytes(data)
    try:
        samples = load_audio(path)
    except AudioError as exc:
        assert str(path) in str(exc)  # it names the file and says what to do
    else:
        assert samples.ndim == 1  # the rare garbage that decodes is at least sound
    try:  # the same bytes as a Telegram voice note
        note = decode_voice(data, sample_rate=16000, max_s=60)
    except VoiceError as exc:
        assert str(exc).startswith("the voice note ")  # its own one-line reason
    else:
        assert note.ndim == 1


# --- the Telegram importer --------------------------------------------------------------------

_message_value = json_values | st.integers(min_value=-(2**80), max_value=2**80)
_message = st.fixed_dictionaries(
    {},
    optional={
        "id": _message_value,
        "type": st.sampled_from(["message", "service"]) | json_values,
        "date": st.sampled_from(["2026-11-23T20:00:00", "어제", ""]) | json_values,
        "date_unixtime": st.sampled_from(["1795000000", "nan", "-1", "1e30", "inf"]) | _message_value,
        "from": st.sampled_from(["진주", "차차", "누구"]) | json_values,
        "from_id": st.sampled_from(["user1", "user2", "user" + "9" * 30]) | _message_value,
        "text": hostile_text | json_values,
    },
)
_export = st.fixed_dictionaries(
    {},
    optional={
        "name": json_values,
        "id": _message_value,
        "messages": st.lists(_message | json_values, max_size=6) | json_values,
        "chats": st.fixed_dictionaries({"list": st.lists(json_values, max_size=3)}) | json_values,
    },
)


@settings(
    max_examples=EXAMPLES * 2, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(export=_export | json_values)
def test_the_importer_takes_or_refuses_any_export_without_crashing(tmp_path: Path, export) -> None:
    from telegram_collector.errors import TelegramError
    from telegram_collector.importer import import_export
    from telegram_collector.store import CollectorStore

    path = tmp_path / "result.json"
    path.write_text(json.dumps(export), encoding="utf-8")
    store = CollectorStore(tmp_path / "collected.sqlite3")
    try:
        report = import_export(path, store, she="진주", he="차차")
    except TelegramError as exc:
        assert str(path) in str(exc) or "--she" in str(exc)  # it names the file
        return
    finally:
        store.close()
    assert report is not None
