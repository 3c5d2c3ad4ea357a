"""Collecting chats: the SQLite collector, Telegram Desktop imports, the exports, the CLI."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
import yaml
from fakes.telegram import FakeTelegram, bot_config
from pydantic import ValidationError

from device.cli import telegram as cli_args
from device.cli import telegram as commands
from inference_server.backends.phrasebook import Phrasebook, default_phrasebook_path
from inference_server.persona import Persona, default_persona_path
from telegram_collector import serving
from telegram_collector.errors import TelegramError
from telegram_collector.exporter import (
    EXAMPLES_FILE,
    GEMINI_FILE,
    OPENAI_FILE,
    PHRASEBOOK_FILE,
    build_pairs,
    choose_examples,
    clean_text,
    export_all,
)
from telegram_collector.importer import flatten_text, import_export
from telegram_collector.settings import TelegramSettings, TelegramUser
from telegram_collector.store import CollectedMessage, CollectorStore

pytestmark = pytest.mark.timeout(60)

HER, HIM = 5550001, 5550002
T0 = 1714521600  # 2024-05-01 00:00 UTC
NOT_INCLUDED = "(File not included. Change data exporting settings to download.)"


def _msg(id: int, minute: float, who: str, text, **extra) -> dict:
    sender = {"her": ("진주", f"user{HER}"), "him": ("차차", f"user{HIM}")}[who]
    when = T0 + int(minute * 60)
    return {
        "id": id,
        "type": "message",
        "date": "2024-05-01T09:00:00",
        "date_unixtime": str(when),
        "from": sender[0],
        "from_id": sender[1],
        "text": text,
        "text_entities": [{"type": "plain", "text": text}] if isinstance(text, str) and text else [],
        **extra,
    }


def chat_export() -> dict:
    """A small but realistic single-chat result.json from Telegram Desktop."""
    return {
        "name": "진주",
        "type": "personal_chat",
        "id": HER,
        "messages": [
            {
                "id": 1,
                "type": "service",
                "date": "2024-05-01T09:00:00",
                "date_unixtime": str(T0),
                "actor": "차차",
                "actor_id": f"user{HIM}",
                "action": "phone_call",
                "duration_seconds": 62,
                "discard_reason": "hangup",
                "text": "",
                "text_entities": [],
            },
            _msg(2, 1, "her", "배고파"),
            _msg(3, 1.5, "her", "밥 뭐 먹지"),
            _msg(
                4,
                3,
                "him",
                ["오늘은 ", {"type": "bold", "text": "따뜻한 국밥"}, " 어때?"],
                text_entities=[
                    {"type": "plain", "text": "오늘은 "},
                    {"type": "bold", "text": "따뜻한 국밥"},
                    {"type": "plain", "text": " 어때?"},
                ],
            ),
            _msg(
                5,
                4,
                "her",
                "",
                file=NOT_INCLUDED,
                media_type="sticker",
                sticker_emoji="😋",
                width=512,
                height=512,
            ),
            _msg(6, 5, "her", "", photo=NOT_INCLUDED, width=1280, height=960),
            _msg(
                7,
                120,
                "her",
                "나 오늘 너무 피곤해",
                edited="2024-05-01T11:01:00",
                edited_unixtime=str(T0 + 7260),
            ),
            _msg(8, 122, "him", "고생 많았어. 오늘은 일찍 자.", reply_to_message_id=7),
            _msg(
                9,
                130,
                "her",
                "",
                file=NOT_INCLUDED,
                media_type="voice_message",
                mime_type="audio/ogg",
                duration_seconds=3,
            ),
            _msg(10, 131, "him", [{"type": "link", "text": "https://example.com/menu"}]),
            _msg(11, 200, "her", ["보고 싶어 ", {"type": "custom_emoji", "text": "😢", "document_id": "x"}]),
            _msg(12, 201, "him", ["나도 ", {"type": "italic", "text": "보고 싶어"}, " ❤️ 주말에 보자"]),
            _msg(13, 202, "her", "이거 봐", forwarded_from="고양이 채널"),
            _msg(14, 300, "her", "잘 자"),
            _msg(15, 420, "him", "응 잘 자"),  # two hours later: not an answer
        ],
    }


@pytest.fixture
def export_file(tmp_path: Path) -> Path:
    path = tmp_path / "result.json"
    path.write_text(json.dumps(chat_export(), ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture
def store(tmp_path: Path):
    with CollectorStore(tmp_path / "telegram.sqlite3") as s:
        yield s


# --- importing -----------------------------------------------------------------------------------


def test_import_keeps_words_and_counts_what_it_skips(export_file, store):
    report = import_export(export_file, store, she="진주", he=f"user{HIM}")
    assert report.imported == 10
    assert report.edited == 1
    assert dict(report.skipped) == {
        "service message": 1,
        "sticker": 1,
        "photo": 1,
        "voice_message": 1,
        "forwarded": 1,
    }
    texts = {m.message_id: m for m in store.messages()}
    assert texts[4].text == "오늘은 따뜻한 국밥 어때?" and texts[4].role == "he"
    assert texts[11].text == "보고 싶어 😢" and texts[11].role == "she"
    assert texts[7].edited and texts[8].reply_to == 7
    assert texts[2].date == T0 + 60 and texts[2].source == "import" and texts[2].sender_id == HER
    assert {m.chat_id for m in texts.values()} == {HER}
    assert "skipped:" in "\n".join(report.lines())


def test_importing_twice_adds_nothing(export_file, store):
    import_export(export_file, store, she=HER, he="차차")
    again = import_export(export_file, store, she=HER, he="차차")
    assert (again.imported, again.already_present, again.updated) == (0, 10, 0)
    assert store.count() == 10


def test_an_edit_made_after_the_first_import_replaces_the_text(export_file, store, tmp_path):
    import_export(export_file, store, she="진주", he="차차")
    data = chat_export()
    data["messages"][1]["text"] = "배고파 죽겠어"
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    report = import_export(newer, store, she="진주", he="차차")
    assert (report.imported, report.updated) == (0, 1)
    assert store.recent(HER, 20)[0].text == "배고파 죽겠어"


def test_a_whole_account_export_imports_only_their_chats(tmp_path, store):
    other = {
        "name": "팀장님",
        "type": "personal_chat",
        "id": 777,
        "messages": [{**_msg(1, 0, "him", "내일 회의 있나요?"), "from": "차차"}],
    }
    account = {
        "about": "Here is the data you requested.",
        "personal_information": {"user_id": HIM, "first_name": "차차"},
        "chats": {"about": "…", "list": [other, chat_export()]},
        "left_chats": {"about": "…", "list": []},
    }
    path = tmp_path / "result.json"
    path.write_text(json.dumps(account, ensure_ascii=False), encoding="utf-8")
    report = import_export(path, store, she="진주", he="차차")
    assert report.imported == 10 and len(report.chats) == 1
    assert store.count(777) == 0


def test_import_names_the_senders_when_nobody_matches(export_file, store):
    with pytest.raises(TelegramError, match=r"--she 지니.*진주 \(user5550001\)"):
        import_export(export_file, store, she="지니", he="차차")
    assert store.count() == 0


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("<html>", "not JSON"),
        ('{"about": "x"}', "not a Telegram Desktop chat export"),
    ],
)
def test_import_of_something_else_is_a_clear_error(tmp_path, store, content, fragment):
    path = tmp_path / "result.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TelegramError, match=fragment):
        import_export(path, store, she="a", he="b")
    with pytest.raises(TelegramError, match="not found"):
        import_export(tmp_path / "missing.json", store, she="a", he="b")


def test_flatten_text_takes_every_entitys_text():
    parts = [
        "a ",
        {"type": "text_link", "text": "여기", "href": "https://x"},
        {"type": "mention", "text": "@b"},
    ]
    assert flatten_text(parts) == "a 여기@b"
    assert flatten_text("plain") == "plain" and flatten_text(None) == ""


# --- exporting -----------------------------------------------------------------------------------


def test_pairs_merge_turns_clean_text_and_need_a_timely_reply(export_file, store):
    import_export(export_file, store, she="진주", he="차차")
    pairs, skipped = build_pairs(store.messages())
    assert [(p.she, p.he) for p in pairs] == [
        ("배고파 밥 뭐 먹지", "오늘은 따뜻한 국밥 어때?"),
        ("나 오늘 너무 피곤해", "고생 많았어. 오늘은 일찍 자."),
        ("보고 싶어", "나도 보고 싶어 주말에 보자"),
    ]
    assert skipped["reply came too late"] == 1
    assert skipped["emoji or link only"] == 1


def test_clean_text():
    assert clean_text("  이거 봐 https://example.com/a?b=1  ㅋㅋ 😂 ") == "이거 봐 ㅋㅋ"
    assert clean_text("❤️❤️") == "" and clean_text("www.naver.com") == ""


def test_bot_replies_count_unless_the_phrasebook_made_them(store):
    def said(id: int, role: str, text: str, backend: str | None = None) -> CollectedMessage:
        return CollectedMessage(HER, id, "bot", None, role, role, T0 + id, text, backend=backend)

    store.add_many(
        [
            said(1, "she", "안녕"),
            said(2, "he", "왔어? 보고 싶었어.", "gemini"),
            said(3, "she", "뭐 해"),
            said(4, "he", "코드 보고 있었어.", "phrasebook"),
        ]
    )
    pairs, skipped = build_pairs(store.messages())
    assert [(p.she, p.he) for p in pairs] == [("안녕", "왔어? 보고 싶었어.")]
    assert skipped["phrasebook reply"] == 1


def test_examples_are_short_and_varied():
    from telegram_collector.exporter import Pair

    pairs = [Pair(f"배고파 {i}", f"밥 먹자 {i}번", 1, "import", i) for i in range(20)]
    pairs += [
        Pair("잘 자", "꿈에서 만나.", 1, "import", 99),
        Pair("보고 싶어", "나도 많이 보고 싶어.", 1, "import", 98),
    ]
    chosen = choose_examples(pairs, 4)
    assert len(chosen) == 4
    assert {"잘 자", "보고 싶어"} <= {p.she for p in chosen}


def test_export_writes_valid_phrasebook_examples_and_tuning_sets(export_file, store, tmp_path):
    import_export(export_file, store, she="진주", he="차차")
    report = export_all(store, tmp_path / "out")
    assert [w.count for w in report.written] == [3, 3, 3, 3]
    assert all(w.path.is_file() for w in report.written)

    book = Phrasebook.load(tmp_path / "out" / PHRASEBOOK_FILE)
    assert book.match("나 오늘 너무 피곤해").reply == "고생 많았어. 오늘은 일찍 자."
    assert book.match("배고파 밥 뭐 먹지").reply == "오늘은 따뜻한 국밥 어때?"
    shipped = yaml.safe_load(default_phrasebook_path().read_text(encoding="utf-8"))
    written = yaml.safe_load((tmp_path / "out" / PHRASEBOOK_FILE).read_text(encoding="utf-8"))
    assert written["not_understood"] == shipped["not_understood"]
    assert {p["tag"] for p in written["pairs"]} == {"chat"}

    openai = [json.loads(line) for line in (tmp_path / "out" / OPENAI_FILE).read_text().splitlines()]
    assert [[m["role"] for m in line["messages"]] for line in openai] == [["system", "user", "assistant"]] * 3
    assert openai[0]["messages"][1]["content"] == "배고파 밥 뭐 먹지"
    assert "차차" in openai[0]["messages"][0]["content"]

    gemini = [json.loads(line) for line in (tmp_path / "out" / GEMINI_FILE).read_text().splitlines()]
    assert [[c["role"] for c in line["contents"]] for line in gemini] == [["user", "model"]] * 3
    assert gemini[1]["contents"][1]["parts"] == [{"text": "고생 많았어. 오늘은 일찍 자."}]
    assert gemini[0]["systemInstruction"]["parts"][0]["text"]

    # The examples drop into a persona file as they are.
    examples = yaml.safe_load((tmp_path / "out" / EXAMPLES_FILE).read_text(encoding="utf-8"))["examples"]
    persona = yaml.safe_load(default_persona_path().read_text(encoding="utf-8"))
    persona["examples"] = examples
    (tmp_path / "persona.yaml").write_text(yaml.safe_dump(persona, allow_unicode=True), encoding="utf-8")
    assert len(Persona.load(tmp_path / "persona.yaml").examples) == 3


def test_export_with_nothing_collected_says_what_to_do(store, tmp_path):
    with pytest.raises(TelegramError, match="import a chat first"):
        export_all(store, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --- the store -----------------------------------------------------------------------------------


def test_store_is_wal_and_unique_per_source(store, tmp_path):
    message = CollectedMessage(1, 1, "bot", 9, "진주", "she", T0, "안녕")
    assert store.add(message) and not store.add(message)
    assert store.add(CollectedMessage(1, 1, "import", 9, "진주", "she", T0, "안녕"))
    assert store.count() == 2 and store.count(1, source="bot") == 1
    assert store.edit(1, 1, "안녕!")
    assert [(m.source, m.text, m.edited) for m in store.recent(1)] == [
        ("bot", "안녕!", True),
        ("import", "안녕", False),
    ]
    assert store.clear_chat(1) == 1 and store.count() == 1
    with closing(sqlite3.connect(tmp_path / "telegram.sqlite3")) as db:  # WAL is kept in the file
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# --- settings and the command line --------------------------------------------------------------


def test_settings_reject_unknown_keys_and_duplicate_users():
    with pytest.raises(ValidationError, match="extra"):
        TelegramSettings(alowed_users=[])
    with pytest.raises(ValidationError, match="once"):
        TelegramSettings(users=[{"id": 1, "name": "a"}, {"id": 1, "name": "b", "role": "developer"}])
    settings = TelegramSettings(users=[{"id": 5, "name": "진주"}])
    assert settings.users[0].role == "partner" and settings.users[0].conversation is None
    assert settings.database_path(Path("/data")) == Path("/data/telegram.sqlite3")
    assert settings.user(5).name == "진주" and settings.user(6) is None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chacha")
    cli_args.register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_arguments():
    parser = _parser()
    assert parser.parse_args(["telegram"]).func is commands.run_bot
    args = parser.parse_args(["telegram", "import", "result.json", "--she", "진주", "--he", "123"])
    assert (args.func, args.export, args.she, args.he, args.chat) == (
        commands.import_chat,
        Path("result.json"),
        "진주",
        "123",
        None,
    )
    args = parser.parse_args(["telegram", "export", "--output", "out", "--max-gap-min", "10"])
    assert (args.func, args.output, args.max_gap_min, args.examples) == (
        commands.export,
        Path("out"),
        10.0,
        12,
    )


def test_import_and_export_commands(export_file, tmp_path, capsys):
    config = bot_config(tmp_path, TelegramSettings())
    parser = _parser()
    args = parser.parse_args(["telegram", "import", str(export_file), "--she", "진주", "--he", "차차"])
    assert args.func(args, config) == 0
    out = capsys.readouterr().out
    assert "new messages:      10" in out and str(tmp_path / "data" / "telegram.sqlite3") in out

    args = parser.parse_args(["telegram", "export"])
    assert args.func(args, config) == 0
    out = capsys.readouterr().out
    folder = tmp_path / "data" / "telegram-export"
    for name in (PHRASEBOOK_FILE, EXAMPLES_FILE, OPENAI_FILE, GEMINI_FILE):
        assert str(folder / name) in out and (folder / name).is_file()
    assert "3 pairs from 10 collected messages" in out


def test_export_before_anything_was_collected(tmp_path):
    args = _parser().parse_args(["telegram", "export"])
    with pytest.raises(TelegramError, match="nothing collected yet"):
        args.func(args, bot_config(tmp_path, TelegramSettings()))


def test_the_bot_needs_a_token_and_users(tmp_path, monkeypatch):
    args = _parser().parse_args(["telegram"])
    users = TelegramSettings(users=[TelegramUser(id=HER, name="진주")])
    with pytest.raises(TelegramError, match="TELEGRAM_BOT_TOKEN is not set.*@BotFather"):
        commands.run_bot(args, bot_config(tmp_path, users))
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:abc")
    with pytest.raises(TelegramError, match="telegram.users is empty"):
        commands.run_bot(args, bot_config(tmp_path, TelegramSettings()))


def test_the_bot_says_when_telegram_rejects_the_token(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "999:wrong-token")
    with FakeTelegram() as fake:
        settings = TelegramSettings(
            users=[TelegramUser(id=HER, name="진주")],
            base_url=fake.base_url,
            base_file_url=fake.base_file_url,
        )
        with pytest.raises(TelegramError, match="rejected TELEGRAM_BOT_TOKEN"):
            commands.run_bot(_parser().parse_args(["telegram"]), bot_config(tmp_path, settings))
    assert [c.method for c in fake.sent] == []  # refused at the door: 401 is not recorded


def test_quota_in_one_line():
    from inference_server.api import QuotaStatus
    from telegram_collector.developer import describe_quota

    line = describe_quota(
        QuotaStatus(
            model="gemini-test-flash",
            requests_today=12,
            requests_per_day=250,
            left_today=238,
            left_today_for_telegram=188,
            requests_last_minute=1,
            requests_per_minute=10,
            tokens_last_minute=900,
            tokens_per_minute=250_000,
            cooldown_s=7.0,
            cooldown_reason="rate_limited",
            resets_in_s=3600,
        )
    )
    assert line == (
        "12/250 requests today, 188 left for Telegram, 1/10 this minute, cooling down 7.0 s (rate_limited)"
    )


def test_the_token_never_reaches_the_log(caplog):
    hider = serving.hide_token("123:secret")
    record = logging.LogRecord(
        "httpx", logging.INFO, __file__, 1, "GET %s", ("http://x/bot123:secret/getMe",), None
    )
    assert hider.filter(record) and "secret" not in record.getMessage()
    quoted = logging.LogRecord(
        "httpx", logging.INFO, __file__, 1, "GET http://x/file/bot123%3Asecret/a", (), None
    )
    assert hider.filter(quoted) and "secret" not in quoted.getMessage()
    for handler in logging.getLogger().handlers:
        handler.removeFilter(hider)


_RUN_BOT = """
import os, signal, sys, threading, time
from argparse import Namespace
from pathlib import Path
sys.path.insert(0, {tests!r})
from fakes.telegram import FakeTelegram
from fakes.telegram import bot_config
from device.cli import telegram as commands
from telegram_collector.settings import TelegramSettings, TelegramUser

with FakeTelegram() as fake:
    os.environ["TELEGRAM_BOT_TOKEN"] = fake.token
    settings = TelegramSettings(
        users=[TelegramUser(id=42, name="진주")],
        base_url=fake.base_url,
        base_file_url=fake.base_file_url,
        stt_engine="off",  # no speech models in this test
        voice_reply=False,
    )
    fake.push_text(42, "배고파")

    def stop_when_answered():
        deadline = time.monotonic() + 30
        while not fake.replies(42) and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=stop_when_answered, daemon=True).start()
    code = commands.run_bot(Namespace(), bot_config(Path({tmp!r}), settings))
    print("exit", code, "replies", fake.replies(42))
"""


def test_chacha_telegram_serves_until_sigterm(tmp_path):
    import subprocess
    import sys

    tests = str(Path(__file__).parent)
    script = _RUN_BOT.format(tests=tests, tmp=str(tmp_path))
    env = {k: v for k, v in os.environ.items() if k not in ("CHACHA_API_TOKEN", "GEMINI_API_KEY")}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tests, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "exit 0 replies ['" in done.stdout
    assert (tmp_path / "data" / "telegram.sqlite3").is_file()
