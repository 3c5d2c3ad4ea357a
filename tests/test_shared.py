"""inference_server/shared: secrets from the environment, the data and cache folders, SQLite files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from inference_server.errors import InferenceError
from inference_server.quota import MIGRATIONS as QUOTA_MIGRATIONS
from inference_server.quota import QuotaLedger
from inference_server.shared import paths
from inference_server.shared.secrets import Secrets, env_secret, reveal
from inference_server.shared.sqlite import add_columns, open_database
from inference_server.store import MIGRATIONS, ConversationStore
from telegram_collector.errors import TelegramError
from telegram_collector.store import MIGRATIONS as COLLECTOR_MIGRATIONS
from telegram_collector.store import CollectedMessage, CollectorStore

# -- secrets ---------------------------------------------------------------------------------------


def test_secrets_are_read_from_the_environment_and_stripped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "  gemini-key\n")
    monkeypatch.setenv("CHACHA_API_TOKEN", "\tapi-token ")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:bot-token")
    secrets = Secrets()
    assert reveal(secrets.gemini_api_key) == "gemini-key"
    assert reveal(secrets.chacha_api_token) == "api-token"
    assert reveal(secrets.telegram_bot_token) == "123:bot-token"


@pytest.mark.parametrize("value", ["", "   ", "\n"])
def test_an_empty_or_blank_secret_is_none(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    for name in ("GEMINI_API_KEY", "CHACHA_API_TOKEN", "TELEGRAM_BOT_TOKEN"):
        monkeypatch.setenv(name, value)
    secrets = Secrets()
    assert secrets.gemini_api_key is None
    assert secrets.chacha_api_token is None
    assert secrets.telegram_bot_token is None


def test_unset_secrets_are_none_and_lowercase_names_do_not_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("gemini_api_key", "lowercase")
    monkeypatch.setenv("Chacha_Api_Token", "mixed")
    secrets = Secrets()
    assert secrets.gemini_api_key is None
    assert secrets.chacha_api_token is None


def test_secrets_never_show_their_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "very-secret-key")
    monkeypatch.setenv("CHACHA_API_TOKEN", "very-secret-token")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "very-secret-bot")
    secrets = Secrets()
    for shown in (repr(secrets), str(secrets), secrets.model_dump_json(), str(secrets.model_dump())):
        assert "very-secret" not in shown
    assert isinstance(secrets.gemini_api_key, SecretStr)


def test_secrets_are_read_when_built_not_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Secrets().chacha_api_token is None
    monkeypatch.setenv("CHACHA_API_TOKEN", "first")
    assert reveal(Secrets().chacha_api_token) == "first"
    monkeypatch.setenv("CHACHA_API_TOKEN", "second")
    assert reveal(Secrets().chacha_api_token) == "second"


def test_a_value_given_in_code_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "from-env")
    monkeypatch.setenv("CHACHA_API_TOKEN", "token")
    secrets = Secrets(GEMINI_API_KEY=" bench ")
    assert reveal(secrets.gemini_api_key) == "bench"
    assert reveal(secrets.chacha_api_token) == "token"


def test_a_misspelt_name_in_code_is_an_error_that_hides_the_value() -> None:
    with pytest.raises(ValidationError) as caught:
        Secrets(gemini_api_key="very-secret-key")
    assert "very-secret-key" not in str(caught.value)


def test_no_dotenv_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("GEMINI_API_KEY=from-dotenv\n")
    monkeypatch.chdir(tmp_path)
    assert Secrets().gemini_api_key is None


def test_env_secret_reads_a_configured_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MY_OPENAI_KEY", raising=False)
    assert env_secret("MY_OPENAI_KEY") is None
    monkeypatch.setenv("MY_OPENAI_KEY", "  ")
    assert env_secret("MY_OPENAI_KEY") is None
    monkeypatch.setenv("MY_OPENAI_KEY", " sk-123 ")
    key = env_secret("MY_OPENAI_KEY")
    assert reveal(key) == "sk-123"
    assert "sk-123" not in repr(key)
    assert reveal(None) is None


# -- paths -----------------------------------------------------------------------------------------


def test_folders_follow_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert paths.data_dir() == tmp_path / "data" / "chachaping"
    assert paths.cache_dir() == tmp_path / "cache" / "chachaping"


def test_folders_default_to_the_home_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert paths.data_dir() == tmp_path / "home" / ".local" / "share" / "chachaping"
    assert paths.cache_dir() == tmp_path / "home" / ".cache" / "chachaping"
    assert not paths.data_dir().exists()  # naming a folder does not create it


def test_the_settings_defaults_are_the_shared_folders(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from device.stt.settings import STTSettings, default_cache_dir
    from inference_server.settings import ServerSettings, default_data_dir

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "d"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    assert default_data_dir() == ServerSettings().data_dir == tmp_path / "d" / "chachaping"
    assert default_cache_dir() == STTSettings().cache_dir == tmp_path / "c" / "chachaping"


# -- sqlite ----------------------------------------------------------------------------------------

# The conversation store's first schema, as files made before PRAGMA user_version was used hold it.
_OLD_TURNS = """
CREATE TABLE turns (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation TEXT    NOT NULL,
    role         TEXT    NOT NULL CHECK (role IN ('user', 'model')),
    text         TEXT    NOT NULL,
    channel      TEXT    NOT NULL,
    backend      TEXT,
    created_at   REAL    NOT NULL
);
CREATE INDEX turns_by_conversation ON turns (conversation, id);
CREATE TABLE summaries (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation TEXT    NOT NULL,
    through_id   INTEGER NOT NULL,
    text         TEXT    NOT NULL,
    created_at   REAL    NOT NULL
);
"""


def _user_version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()


def _columns(path: Path, table: str) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
    finally:
        db.close()


def test_a_fresh_database_gets_every_migration_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "folder" / "x.sqlite3"
    db = open_database(
        path,
        migrations=["CREATE TABLE IF NOT EXISTS t (a INTEGER);", add_columns("t", {"b": "TEXT"})],
        wrap_error=RuntimeError,
    )
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    finally:
        db.close()
    assert _user_version(path) == 2
    assert _columns(path, "t") == ["a", "b"]


def test_only_the_missing_migrations_run(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    ran: list[int] = []
    steps = [lambda db: ran.append(1), lambda db: ran.append(2)]
    open_database(path, migrations=steps[:1], wrap_error=RuntimeError).close()
    open_database(path, migrations=steps, wrap_error=RuntimeError).close()
    open_database(path, migrations=steps, wrap_error=RuntimeError).close()
    assert ran == [1, 2]
    assert _user_version(path) == 2


def test_a_failing_migration_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    with pytest.raises(RuntimeError, match="no such table"):
        open_database(
            path,
            migrations=["CREATE TABLE t (a INTEGER);", "INSERT INTO missing VALUES (1);"],
            wrap_error=RuntimeError,
        )
    assert _user_version(path) == 0
    assert _columns(path, "t") == []


def test_a_conversation_database_without_added_columns_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "conversations.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(_OLD_TURNS)
    db.execute(
        "INSERT INTO turns (conversation, role, text, channel, backend, created_at)"
        " VALUES ('c', 'user', '안녕', 'doll', NULL, 1.0)"
    )
    db.commit()
    db.close()
    store = ConversationStore(path)
    try:
        [turn] = store.recent("c", 10)
        assert (turn.text, turn.source, turn.heard) == ("안녕", "text", None)
        store.set_heard(store.add("c", "user", "또", channel="doll", source="stt"), "또요")
        assert [t.for_model for t in store.recent("c", 10)] == ["안녕", "또요"]
    finally:
        store.close()
    assert _user_version(path) == len(MIGRATIONS)
    assert _columns(path, "turns")[-3:] == ["source", "heard", "forgotten"]


def test_a_conversation_database_with_added_columns_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "conversations.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(_OLD_TURNS)
    db.execute("ALTER TABLE turns ADD COLUMN source TEXT NOT NULL DEFAULT 'text'")
    db.execute("ALTER TABLE turns ADD COLUMN heard TEXT")
    db.execute(
        "INSERT INTO turns (conversation, role, text, channel, backend, created_at, source, heard)"
        " VALUES ('c', 'user', '뭐', 'doll', NULL, 1.0, 'stt', '뭐라고')"
    )
    db.execute("INSERT INTO summaries (conversation, through_id, text, created_at) VALUES ('c', 1, 's', 2.0)")
    db.commit()
    db.close()
    assert _user_version(path) == 0
    store = ConversationStore(path)
    try:
        [turn] = store.recent("c", 10)
        assert (turn.source, turn.heard) == ("stt", "뭐라고")
        assert store.latest_summary("c") == (1, "s")
    finally:
        store.close()
    assert _user_version(path) == len(MIGRATIONS)


def test_a_quota_ledger_from_before_user_version_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "quota.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE requests (id INTEGER PRIMARY KEY AUTOINCREMENT, model TEXT NOT NULL, at REAL NOT NULL,"
        " day TEXT NOT NULL, channel TEXT NOT NULL, tokens INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE cooldowns (model TEXT PRIMARY KEY, until REAL NOT NULL, reason TEXT NOT NULL,"
        " strikes INTEGER NOT NULL DEFAULT 0);"
        "INSERT INTO requests (model, at, day, channel, tokens) VALUES ('m', 1.0, '2024-01-01', 'doll', 5);"
    )
    db.commit()
    db.close()
    QuotaLedger(path).close()
    assert _user_version(path) == len(QUOTA_MIGRATIONS)
    db = sqlite3.connect(path)
    assert db.execute("SELECT model, tokens FROM requests").fetchall() == [("m", 5)]
    db.close()


def test_a_collector_database_from_before_user_version_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "telegram.sqlite3"
    store = CollectorStore(path)
    message = CollectedMessage(
        chat_id=1,
        message_id=2,
        source="bot",
        sender_id=3,
        sender_name="진주",
        role="she",
        date=1.0,
        text="hi",
    )
    assert store.add(message)
    store.close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 0")
    db.commit()
    db.close()
    store = CollectorStore(path)
    try:
        assert not store.add(message)  # still there: the migration did not recreate the table
    finally:
        store.close()
    assert _user_version(path) == len(COLLECTOR_MIGRATIONS)


def test_a_database_that_cannot_be_opened_is_the_stores_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(InferenceError, match=r"cannot open the conversation database .*server\.data_dir"):
        ConversationStore(blocker / "conversations.sqlite3")
    with pytest.raises(InferenceError, match=r"cannot open the quota ledger .*server\.data_dir"):
        QuotaLedger(blocker / "quota.sqlite3")
    with pytest.raises(
        TelegramError, match=r"cannot open the Telegram collector database .*telegram\.database"
    ):
        CollectorStore(blocker / "telegram.sqlite3")


def test_a_file_that_is_not_sqlite_is_the_stores_error(tmp_path: Path) -> None:
    path = tmp_path / "conversations.sqlite3"
    path.write_bytes(b"this is not a database, just some text that is long enough" * 20)
    with pytest.raises(InferenceError, match="cannot open the conversation database"):
        ConversationStore(path)
