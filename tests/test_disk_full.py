"""A full disk under the data folder (the Pi's SD card) is a known state: 차차 says so in one
sentence as a whole reply, nothing half-written is kept, writing endpoints answer 507, health
says "degraded" with the free space, the log says it once (no traceback per request), and all
works again once there is room.

The full disk is real SQLite: `PRAGMA max_page_count` stops the conversation database growing,
and SQLite then raises SQLITE_FULL, "database or disk is full", the very error a full disk gives.
The free-space threshold (server.min_free_mb) is checked against an injected probe, and once
against the machine's real disk with a threshold above it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from argparse import Namespace
from pathlib import Path

import httpx
import pytest
from fakes.calendar_clock import Calendar

from device.cli import admin, doctor
from device.config import ChachaConfig, ClientSettings
from inference_server.api import DiskStatus, Health, InferenceClient, ReplyFinal, ReplySentence
from inference_server.backends.phrasebook import PhrasebookBackend
from inference_server.chat import DISK_FULL_BACKEND, DISK_FULL_REPLY, ChatService
from inference_server.disk import MB, DiskGuard, free_bytes, is_disk_full
from inference_server.memory import MemoryService
from inference_server.persona import PersonaBook
from inference_server.runtime import BackgroundServer, build_chat_service
from inference_server.settings import LLMSettings, MemorySettings, PersonaSettings, ServerSettings
from inference_server.startup import disk_space
from inference_server.store import ConversationStore

TOKEN = "disk-token"
FILLER = "aaaa"
"""The conversation that fills the database: it sorts before "jinju" and is shorter, so her turn
goes where the filler last failed to fit, and is larger (`_fill`)."""
FILLERS = (
    "INSERT INTO turns (conversation, role, text, channel, created_at) VALUES (?, 'user', ?, 'cli', 0)",
    "INSERT INTO memories (conversation, kind, text, importance, channel, state, created_at)"
    " VALUES (?, 'observation', ?, 0, 'cli', 'long', 0)",
)


class Free:
    """An injected free-space probe: the bytes it says are free."""

    def __init__(self, free: int) -> None:
        self.free = free

    def __call__(self, folder: Path) -> int:
        return self.free


class TwoSentences:
    """A brain that always answers the same two sentences."""

    name = "scripted"
    unavailable_reason = None
    REPLY = (
        "응, 나는 김치찌개 먹었어. ",
        "너도 다음 주말에 회사 앞에 새로 생긴 그 식당에 같이 가서 제일 맛있다는 김치찌개를 꼭 먹어 보자.",
    )

    async def stream(self, request):
        for piece in self.REPLY:
            yield piece


@pytest.fixture
def brain(phrasebook):
    return PhrasebookBackend(phrasebook)


@pytest.fixture
def doll(tmp_path, brain):
    """The real server over loopback: phrasebook brain, memory on, a guard with a probe of ours."""
    folder = tmp_path / "data"
    store = ConversationStore(folder / "conversations.sqlite3")
    probe = Free(10 * 1024 * MB)
    chat = ChatService(
        PersonaBook(None, folder),
        store,
        [brain],
        summarize=False,
        memory=MemoryService(store, MemorySettings()),
        disk=DiskGuard(folder, 50, probe=probe),
    )
    with BackgroundServer(chat, TOKEN) as server:
        yield server, probe


def _headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def _turn(server, text: str) -> list[ReplySentence | ReplyFinal]:
    """One turn through the real client: its parser refuses a broken or unfinished body."""

    async def run() -> list:
        client = InferenceClient(server.url, TOKEN, timeout_s=10)
        return [event async for event in client.chat(text, conversation="jinju", channel="cli")]

    return asyncio.run(run())


def _health(server) -> Health:
    return asyncio.run(InferenceClient(server.url, TOKEN, timeout_s=10).health())


def _fill(store: ConversationStore, sizes: tuple[int, ...] = (4000, 400, 40, 4, 1, 0)) -> None:
    """Make the conversation database full: no page more than it has now, and the last pages of
    turns and memories filled with the filler conversation's rows, larger ones first, until not
    even an empty one fits. Her next turn (longer text, conversation id one letter longer) or a
    memory (its embedding alone is 1.5 kB) then cannot fit either."""
    db, lock = store.database
    with lock:
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        assert db.execute(f"PRAGMA max_page_count = {pages}").fetchone()[0] == pages
        for filler in FILLERS:
            for size in sizes:
                while True:
                    try:
                        db.execute(filler, (FILLER, "x" * size))
                    except sqlite3.OperationalError as exc:
                        assert is_disk_full(exc), exc
                        break


def _free_room(store: ConversationStore) -> None:
    db, lock = store.database
    with lock:
        db.execute("PRAGMA max_page_count = 1073741823")


def _assert_honest_reply(events) -> None:
    *sentences, final = events
    assert [type(e) for e in sentences] == [ReplySentence] and isinstance(final, ReplyFinal)
    assert sentences[0].text == final.reply == DISK_FULL_REPLY
    assert final.backend == DISK_FULL_BACKEND
    assert final.turn_id is None and final.reply_id is None, "nothing of the turn was stored"


def _no_tracebacks(caplog) -> None:
    broken = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not broken, [r.getMessage() for r in broken]


def _warnings(caplog, words: str) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and words in r.getMessage()
    ]


def test_a_full_database_is_one_honest_sentence_a_507_and_degraded_health_until_there_is_room(doll, caplog):
    caplog.set_level(logging.INFO)
    server, _ = doll
    store = server.chat.store
    [*_, first] = _turn(server, "오늘 뭐 했어?")
    assert first.backend == "phrasebook"
    before = store.recent("jinju", 50)
    assert [t.role for t in before] == ["user", "model"]
    memories = server.chat.memory.list("jinju")
    _fill(store)

    # A writing endpoint: its write fails, and it answers 507 with what to do, not a bare 500.
    added = httpx.post(
        f"{server.url}/v1/memory",
        json={"conversation": "jinju", "text": "진주는 딸기를 좋아한다."},
        headers=_headers(),
    )
    assert added.status_code == 507, added.text
    detail = added.json()["detail"]
    assert "database or disk is full" in detail and "free space under" in detail
    assert str(server.chat.disk.folder) in detail
    assert server.chat.memory.list("jinju") == memories

    # A turn: a whole, well-formed stream (the client parsed it) with his one sentence.
    _assert_honest_reply(_turn(server, "나 오늘 좀 피곤해."))
    _assert_honest_reply(_turn(server, "듣고 있어?"))
    assert store.recent("jinju", 50) == before, "no turn of hers without his reply, nothing half-written"
    corrected = httpx.patch(
        f"{server.url}/v1/conversations/jinju/turns/{first.turn_id}",
        json={"text": "오늘 뭐 했니?"},
        headers=_headers(),
    )
    assert corrected.status_code == 507 and "free space under" in corrected.json()["detail"]

    # Health: degraded, the disk full, with its free space and the threshold.
    health = _health(server)
    assert health.status == "degraded" and "disk is full" in health.reason
    assert health.disk.full and health.disk.min_free_bytes == 50 * MB
    assert health.disk.free_bytes == 10 * 1024 * MB and "database or disk is full" in health.disk.reason

    # One warning for all of it, and no traceback.
    _no_tracebacks(caplog)
    assert len(_warnings(caplog, "disk is full")) == 1, _warnings(caplog, "disk")

    # Room again: health says ok, turns are answered and stored, memories added.
    _free_room(store)
    assert _health(server).status == "ok" and not _health(server).disk.full
    *said, final = _turn(server, "이제 괜찮아?")
    assert final.backend == "phrasebook" and said and final.turn_id is not None
    after = store.recent("jinju", 50)
    assert after[:2] == before and [(t.role, t.text) for t in after[2:]] == [
        ("user", "이제 괜찮아?"),
        ("model", final.reply),
    ]
    again = httpx.post(
        f"{server.url}/v1/memory",
        json={"conversation": "jinju", "text": "진주는 딸기를 좋아한다."},
        headers=_headers(),
    )
    assert again.status_code == 200, again.text
    assert len(_warnings(caplog, "has room again")) == 1
    assert len(_warnings(caplog, "disk is full")) == 1
    _no_tracebacks(caplog)


def test_her_turn_is_taken_back_when_his_reply_cannot_be_stored(doll, caplog):
    """The disk fills between her turn and his reply: hers is taken back, he says why."""
    caplog.set_level(logging.INFO)
    server, _ = doll
    store = server.chat.store
    original = store.add

    def add_then_fill(conversation, role, text, **kwargs):
        turn_id = original(conversation, role, text, **kwargs)
        if role == "user":
            _fill(store)  # her turn is in; his first sentence finds the database full
        return turn_id

    store.add = add_then_fill
    try:
        events = _turn(server, "오늘 날씨 진짜 좋다.")
    finally:
        store.add = original
    _assert_honest_reply(events)
    assert store.recent("jinju", 10) == [], "her turn without his reply was taken back"
    _no_tracebacks(caplog)
    _free_room(store)
    *_, final = _turn(server, "오늘 날씨 진짜 좋다.")
    assert [t.role for t in store.recent("jinju", 10)] == ["user", "model"] and final.turn_id
    # full again, this time at her own turn: nothing of it is stored
    _fill(store)
    _assert_honest_reply(_turn(server, "내일은 비 온대."))
    assert [t.role for t in store.recent("jinju", 10)] == ["user", "model"]
    _no_tracebacks(caplog)


@pytest.mark.parametrize("brain", [TwoSentences()])
def test_a_reply_cut_by_the_full_disk_keeps_what_she_heard(doll, caplog):
    """The disk fills after his first sentence went out: the reply ends there, on record as cut,
    like a reply cut by a crash; the next turn is his honest sentence."""
    caplog.set_level(logging.INFO)
    server, _ = doll
    store = server.chat.store
    original = store.extend_reply

    def fill_then_extend(turn_id, text):
        _fill(store, sizes=(0,))  # small rows only: they fill the page his reply is on, too
        return original(turn_id, text)

    store.extend_reply = fill_then_extend
    try:
        *sentences, final = _turn(server, "오늘 뭐 먹었어?")
    finally:
        store.extend_reply = original
    assert [e.text for e in sentences] == ["응, 나는 김치찌개 먹었어."]
    assert final.reply == sentences[0].text and final.backend == "scripted"
    hers, his = store.recent("jinju", 10)
    assert (hers.role, hers.text) == ("user", "오늘 뭐 먹었어?")
    assert (his.role, his.source, his.text) == ("model", "cut", sentences[0].text)
    assert his.id == final.reply_id == sentences[0].reply_id
    _assert_honest_reply(_turn(server, "왜 말하다 말아?"))
    assert store.recent("jinju", 10) == [hers, his]
    _no_tracebacks(caplog)


def test_below_min_free_mb_nothing_is_stored_and_status_and_doctor_say_so(doll, caplog, capsys, monkeypatch):
    caplog.set_level(logging.INFO)
    server, probe = doll
    probe.free = 12 * MB  # below server.min_free_mb (50 MB)
    _assert_honest_reply(_turn(server, "안녕, 차차!"))
    assert server.chat.store.recent("jinju", 10) == []
    added = httpx.post(
        f"{server.url}/v1/memory",
        json={"conversation": "jinju", "text": "진주는 고양이를 키운다."},
        headers=_headers(),
    )
    assert added.status_code == 507
    detail = added.json()["detail"]
    assert "12.0 MB free" in detail and "server.min_free_mb (50.0 MB)" in detail
    health = _health(server)
    assert health.status == "degraded" and health.disk == DiskStatus(
        path=str(server.chat.disk.folder),
        free_bytes=12 * MB,
        min_free_bytes=50 * MB,
        full=True,
        reason=f"12.0 MB free on the disk of {server.chat.disk.folder}, below server.min_free_mb (50.0 MB)",
    )

    # chacha status and chacha doctor, against this server
    monkeypatch.setenv("CHACHA_API_TOKEN", TOKEN)
    config = ChachaConfig(client=ClientSettings(url=server.url))
    assert admin.status(Namespace(json=False), config) == 0
    out = capsys.readouterr().out
    assert "degraded" in out and "12.0 MB free" in out and "FULL" in out and "50 MB" in out
    checks = {c.what: c for c in doctor.check_server(config)}
    assert checks["server's disk"].status == "FAIL" and "12.0 MB free" in checks["server's disk"].detail

    probe.free = 800 * MB  # space freed
    *_, final = _turn(server, "안녕, 차차!")
    assert final.backend == "phrasebook"
    assert _health(server).status == "ok"
    checks = {c.what: c for c in doctor.check_server(config)}
    assert checks["server's disk"].status == "OK" and "800.0 MB free" in checks["server's disk"].detail
    assert len(_warnings(caplog, "disk is full")) == 1 and len(_warnings(caplog, "has room again")) == 1
    _no_tracebacks(caplog)


def test_a_server_started_below_the_threshold_starts_and_says_so(tmp_path, caplog):
    """The machine's real disk, with server.min_free_mb above what it has free."""
    threshold_mb = 1024 * 1024  # the most server.min_free_mb allows: 1 TiB
    if free_bytes(tmp_path) >= threshold_mb * MB:
        pytest.skip("this disk has more than 1 TiB free")
    caplog.set_level(logging.INFO)
    server = ServerSettings(data_dir=tmp_path / "data", min_free_mb=threshold_mb)
    assert "the disk counts as full" in disk_space(server)
    chat = build_chat_service(
        server, LLMSettings(backends=["phrasebook"]), PersonaSettings(), memory=MemorySettings(enabled=False)
    )
    [warning] = _warnings(caplog, "disk is full")
    assert str(tmp_path / "data") in warning and "free space under" in warning
    with BackgroundServer(chat, TOKEN, server) as running:
        health = _health(running)
        assert health.status == "degraded" and health.disk.full
        assert health.disk.min_free_bytes == threshold_mb * MB and health.disk.free_bytes >= 0
        _assert_honest_reply(_turn(running, "안녕?"))
    checks = {c.what: c for c in doctor.check_disk(ChachaConfig(server=server))}
    assert checks["data disk"].status == "FAIL" and "server.min_free_mb" in checks["data disk"].detail
    _no_tracebacks(caplog)


def test_a_write_to_a_full_device_is_a_full_disk():
    """/dev/full answers every write with ENOSPC, as a full SD card does."""
    with pytest.raises(OSError) as raised, open("/dev/full", "wb", buffering=0) as full:
        full.write(b"x")
    assert is_disk_full(raised.value)
    assert not is_disk_full(OSError(13, "Permission denied"))
    assert not is_disk_full(sqlite3.OperationalError("no such table: turns"))


def test_an_older_servers_health_has_no_disk():
    older = {"status": "ok", "version": "0.1.0", "backend": "gemini", "backends": []}
    health = Health.model_validate(older)
    assert health.disk is None and health.reason is None
    assert json.loads(health.model_dump_json())["disk"] is None


def test_a_store_that_cannot_be_opened_on_a_full_disk_says_to_free_space(tmp_path):
    import errno as errnos
    import sqlite3

    from inference_server.shared.sqlite import open_fix

    writable = "set server.data_dir to a writable folder"
    assert "free space" in open_fix(sqlite3.OperationalError("database or disk is full"), writable)
    assert "free space" in open_fix(OSError(errnos.ENOSPC, "No space left on device"), writable)
    assert open_fix(PermissionError(errnos.EACCES, "Permission denied"), writable) == writable


def test_a_breaker_probe_whose_ledger_finds_the_disk_full_says_so_once_without_a_traceback(
    tmp_path, phrasebook, caplog
):
    class LedgerOnAFullDisk(PhrasebookBackend):
        name = "gemini"

        async def stream(self, request):
            raise sqlite3.OperationalError("database or disk is full")
            yield ""  # an async generator, as every backend's stream

    caplog.set_level(logging.INFO)
    calendar = Calendar()
    store = ConversationStore(tmp_path / "conversations.sqlite3")
    backends = [LedgerOnAFullDisk(phrasebook), PhrasebookBackend(phrasebook)]
    chat = ChatService(PersonaBook(None, tmp_path), store, backends, summarize=False, clock=calendar.now)
    for _ in range(chat.breakers["gemini"].settings.failures):  # earlier turns that timed out
        chat.breakers["gemini"].failed("timeout", "no first text in time")
    calendar.advance(chat.breakers["gemini"].settings.open_s)

    async def a_turn_that_starts_the_probe() -> None:
        async for event in chat.reply("jinju", "배고파", "doll"):
            final = event
        assert final.backend == "phrasebook" and "probing it in the background" in final.fallbacks[0].detail
        await chat.settle()

    asyncio.run(a_turn_that_starts_the_probe())
    _no_tracebacks(caplog)
    assert len(_warnings(caplog, "disk is full")) == 1
