"""Odd input never crashes (issue #15): keys given twice in YAML, broken Unicode, odd exports.

Each test is named after the failure it keeps from coming back.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
import pytest
from fakes.chat import chat_final, read_events, send_chat

from device.config import ConfigError, load_config
from inference_server.api.models import FinalEvent
from inference_server.backends.phrasebook import Phrasebook, default_phrasebook_path
from inference_server.errors import InferenceError
from inference_server.persona import Persona, default_persona_path
from inference_server.store import ConversationStore
from telegram_collector.errors import TelegramError
from telegram_collector.importer import import_export
from telegram_collector.store import CollectedMessage, CollectorStore

# --- B: a key given twice is an error naming the key and the line -------------------------------


def test_a_top_level_section_given_twice_in_chacha_yaml_is_an_error(tmp_path):
    config = tmp_path / "chacha.yaml"
    config.write_text("server:\n  port: 8751\nclient:\n  timeout_s: 5\nserver:\n  port: 8752\n")
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    message = str(caught.value)
    assert "line 5" in message and "'server'" in message and "first on line 1" in message
    assert "\n" not in message


def test_a_nested_key_given_twice_in_chacha_yaml_is_an_error(tmp_path):
    config = tmp_path / "chacha.yaml"
    config.write_text("tts:\n  volume: 0.5\n  sentence_gap_ms: 100\n  volume: 0.9\n")
    with pytest.raises(ConfigError, match=r"line 4: the key 'volume' is given twice \(first on line 2\)"):
        load_config(config)


def test_keys_merged_with_an_anchor_may_still_be_overridden(tmp_path):
    config = tmp_path / "chacha.yaml"
    config.write_text("client:\n  <<: {timeout_s: 5, conversation: jinju}\n  timeout_s: 7\n")
    loaded, _ = load_config(config)
    assert loaded.client.timeout_s == 7


def test_a_persona_key_given_twice_is_an_error(tmp_path):
    text = default_persona_path().read_text(encoding="utf-8")
    path = tmp_path / "persona.yaml"
    path.write_text(text + "name: 짝퉁\n", encoding="utf-8")
    with pytest.raises(InferenceError, match=r"persona file .* the key 'name' is given twice"):
        Persona.load(path)


def test_a_phrasebook_key_given_twice_is_an_error(tmp_path):
    path = tmp_path / "phrasebook.yaml"
    path.write_text(
        "pairs:\n  - she: 배고파\n    he: 밥 먹자\n    he: 굶어\nnot_understood: [뭐라고]\n", encoding="utf-8"
    )
    with pytest.raises(InferenceError, match=r"line 4: the key 'he' is given twice \(first on line 3\)"):
        Phrasebook.load(path)


def test_the_shipped_yaml_files_have_no_key_twice():
    Persona.load(default_persona_path())
    Phrasebook.load(default_phrasebook_path())
    load_config(Path(__file__).parent.parent / "chacha.example.yaml")


# --- C: broken Unicode is mended, never a 500 ---------------------------------------------------

LONE = "\ud800"  # half of a UTF-16 pair: JSON may carry it, UTF-8 cannot


def _post(server, token: str, path: str, raw: bytes, method: str = "POST") -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return httpx.request(method, f"{server.url}{path}", content=raw, headers=headers, timeout=10)


def test_a_lone_surrogate_in_chat_text_is_answered_not_a_500(start_server, token):
    server = start_server()
    response = send_chat(server, token, raw=b'{"text": "\\ud800abc \\ud83d\\ude00"}')
    assert isinstance(read_events(response)[-1], FinalEvent)
    hers = server.chat.store.recent("jinju", 2)[0]
    assert hers.text == "\ufffdabc 😀"  # the lone half marked lost, the escaped pair joined


@pytest.mark.parametrize(
    "raw",
    [
        b'{"text": "abc", "conversation": "\\udfff"}',
        b'{"text": "abc", "\\ud800": 1}',
        b'"\\ud800"',
        b'{"text": "\\ud800", "channel": "\\ud800"}',
    ],
    ids=["conversation", "unknown-key", "not-an-object", "channel"],
)
def test_a_lone_surrogate_in_a_refused_field_is_a_422_not_a_500(start_server, token, raw):
    server = start_server()
    response = _post(server, token, "/v1/chat", raw)
    assert response.status_code == 422, response.text
    assert response.json()["detail"]  # the usual list of what is wrong, as valid JSON


def test_a_lone_surrogate_in_a_corrected_turn_is_mended(start_server, token):
    server = start_server()
    final = chat_final(server, token, "배고파")
    response = _post(
        server,
        token,
        f"/v1/conversations/jinju/turns/{final.turn_id}",
        b'{"text": "\\ud800\\uc548\\ub155"}',
        method="PATCH",
    )
    assert response.status_code == 200, response.text
    assert response.json()["text"] == "\ufffd안녕"


def test_a_lone_surrogate_in_a_new_persona_is_mended(start_server, token):
    server = start_server()
    text = default_persona_path().read_text(encoding="utf-8").replace("name: 차차", "name: 차차@@", 1)
    body = json.dumps({"text": text}).replace("@@", "\\ud800").encode()  # a JSON escape
    response = _post(server, token, "/v1/admin/persona", body, method="PUT")
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "차차\ufffd"


def test_every_request_model_mends_lone_surrogates():
    from inference_server.api.models import ChatRequest, NewMemory, PersonaText, TurnText

    assert ChatRequest.model_validate({"text": f"a{LONE}"}).text == "a\ufffd"
    assert TurnText.model_validate({"text": f"a{LONE}"}).text == "a\ufffd"
    memory = NewMemory.model_validate({"text": f"그녀는 {LONE}을 좋아한다", "cues": [LONE]})
    assert memory.text == "그녀는 \ufffd을 좋아한다" and memory.cues == ["\ufffd"]
    assert PersonaText.model_validate({"text": f"name: {LONE}"}).text == "name: \ufffd"


def test_a_lone_surrogate_reaches_sqlite_mended(tmp_path):
    store = ConversationStore(tmp_path / "conversations.sqlite3")
    try:
        turn_id = store.add("jinju", "model", f"he said {LONE}", channel="doll")
        store.set_heard(turn_id, f"heard {LONE}")
        store.save_summary("jinju", turn_id, f"summary {LONE}")
        turn = store.recent("jinju", 1)[0]
        assert (turn.text, turn.heard) == ("he said \ufffd", "heard \ufffd")
        assert store.latest_summary("jinju") == (turn_id, "summary \ufffd")
    finally:
        store.close()


def test_a_reply_with_a_split_emoji_is_encoded_not_a_crash():
    from inference_server.api.models import SentenceEvent, decode_event, encode_event

    line = encode_event(SentenceEvent(index=0, text=f"좋아 {LONE}"))
    assert decode_event(line).text == "좋아 \ufffd"


# --- C: a Telegram export of an odd shape is a clear error; no message is lost unseen -----------

HER, HIM = 5550001, 5550002


def _message(index: int, who: str, text: object, **extra) -> dict:
    name, user = {"her": ("진주", HER), "him": ("차차", HIM)}[who]
    return {
        "id": index,
        "type": "message",
        "date": "2024-05-01T09:00:00",
        "date_unixtime": str(1714521600 + index * 60),
        "from": name,
        "from_id": f"user{user}",
        "text": text,
        **extra,
    }


def _export(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "result.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def _chat(*messages: dict) -> dict:
    return {"name": "진주", "type": "personal_chat", "id": HER, "messages": list(messages)}


@pytest.fixture
def collector(tmp_path: Path):
    with CollectorStore(tmp_path / "telegram.sqlite3") as store:
        yield store


def _import(path: Path, store: CollectorStore):
    return import_export(path, store, she="진주", he="차차")


def test_telegram_import_of_chats_given_as_a_list_is_a_clear_error(tmp_path, collector):
    path = _export(tmp_path, {"chats": [_chat(_message(1, "her", "안녕"), _message(2, "him", "응"))]})
    with pytest.raises(TelegramError, match=r"chats is a list, but a Telegram Desktop export has an object"):
        _import(path, collector)


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("id", 2**64, r"messages\[1\]\.id is 18446744073709551616, too large for an id"),
        ("id", "7", r"messages\[1\]\.id is '7', not a whole number"),
        ("id", True, r"messages\[1\]\.id is True, not a whole number"),
        ("from_id", f"user{2**70}", r"messages\[1\]\.from_id is \d+, too large"),
        ("reply_to_message_id", -(2**64), r"messages\[1\]\.reply_to_message_id is -\d+, too large"),
    ],
)
def test_telegram_import_of_an_id_beyond_2_63_is_a_clear_error(tmp_path, collector, field, value, fragment):
    odd = _message(2, "him", "응")
    if field == "from_id":
        odd["from"] = "차차"
    odd[field] = value
    path = _export(tmp_path, _chat(_message(1, "her", "안녕"), odd))
    with pytest.raises(TelegramError, match=fragment):
        _import(path, collector)
    assert collector.count() == 0  # a bad export imports nothing


# Issue 22, item 5: Python refuses an int of over 4,300 digits with a ValueError of its own, and
# json nested 100,000 deep with RecursionError: both were "unexpected error" from the importer.
@pytest.mark.parametrize(
    ("field", "raw", "fragment"),
    [
        ("id", "9" * 5000, r"messages\[1\]\.id is a number of 5,000 digits, too large for an id"),
        ("id", "-" + "9" * 5000, r"messages\[1\]\.id is a number of 5,000 digits, too large"),
        ("reply_to_message_id", "1" * 5000, r"messages\[1\]\.reply_to_message_id is a number of 5,000"),
        ("from_id", '"user' + "7" * 5000 + '"', r"messages\[1\]\.from_id is a number of 5,000 digits"),
        ("id", str(2**63), r"messages\[1\]\.id is 9223372036854775808, too large for an id"),
        ("id", '"' + "x" * 100_000 + '"', r"messages\[1\]\.id is 'x{30,}…, not a whole number"),
        ("id", "[[1]]", r"messages\[1\]\.id is a list, not a whole number"),
        ("id", "1.5", r"messages\[1\]\.id is 1\.5, not a whole number"),
    ],
)
def test_telegram_import_of_an_id_of_thousands_of_digits_names_the_field(
    tmp_path, collector, field, raw, fragment
):
    odd = _message(2, "him", "응", **{field: "@@"})
    path = tmp_path / "result.json"
    text = json.dumps(_chat(_message(1, "her", "안녕"), odd)).replace('"@@"', raw)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TelegramError, match=fragment) as refused:
        _import(path, collector)
    assert len(str(refused.value)) < 300 and str(path) in str(refused.value)
    assert collector.count() == 0


def test_telegram_import_of_a_chat_id_of_thousands_of_digits_is_a_clear_error(tmp_path, collector):
    path = tmp_path / "result.json"
    text = json.dumps(_chat(_message(1, "her", "안녕"), _message(2, "him", "응")))
    path.write_text(text.replace(f'"id": {HER}', '"id": ' + "5" * 5000, 1), encoding="utf-8")
    with pytest.raises(TelegramError, match=r"id \(the chat's id\) is a number of 5,000 digits"):
        _import(path, collector)


def test_telegram_import_refuses_a_user_id_of_thousands_of_digits_for_she(tmp_path, collector):
    path = _export(tmp_path, _chat(_message(1, "her", "안녕"), _message(2, "him", "응")))
    with pytest.raises(TelegramError, match=r"--she and --he .* not a number of 5,000 digits"):
        import_export(path, collector, she="user" + "1" * 5000, he="차차")


@pytest.mark.parametrize("depth", [100_000])
def test_telegram_import_of_json_nested_too_deep_is_a_clear_error(tmp_path, collector, depth):
    path = tmp_path / "result.json"
    deep = "[" * depth + "]" * depth
    text = json.dumps(_chat(_message(1, "her", "안녕")), ensure_ascii=False).replace('"안녕"', deep)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TelegramError, match=r"nests its JSON more than [\d,]+ levels deep") as refused:
        _import(path, collector)
    assert str(refused.value).startswith(str(path))


def test_telegram_import_of_entity_text_nested_too_deep_names_the_message_and_the_limit(tmp_path, collector):
    nested: object = "안녕"
    for _ in range(40):
        nested = [{"type": "bold", "text": nested}]
    path = _export(tmp_path, _chat(_message(1, "her", nested), _message(2, "him", "응")))
    with pytest.raises(TelegramError, match=r"messages\[0\]\.text: its entities nest more than 16 levels"):
        _import(path, collector)


def test_telegram_import_flattens_nested_entities_to_their_plain_text(tmp_path, collector):
    text = [
        "오늘 ",
        {"type": "bold", "text": ["정말 ", {"type": "italic", "text": "맛있는"}]},
        " ",
        {"type": "text_link", "text": "떡볶이", "href": "https://x"},
        {"type": "custom_emoji", "document_id": 5},  # no text: adds nothing
        7,
        None,
        " 먹었어",
    ]
    path = _export(tmp_path, _chat(_message(1, "her", text), _message(2, "him", ["응", {"text": "!"}])))
    assert _import(path, collector).imported == 2
    assert [m.text for m in collector.messages()] == ["오늘 정말 맛있는 떡볶이 먹었어", "응!"]


def test_chacha_telegram_import_of_a_5000_digit_id_is_one_line_not_unexpected(tmp_path, capsys):
    from device.cli.main import main

    config = tmp_path / "chacha.yaml"
    config.write_text(f"server:\n  data_dir: {tmp_path / 'data'}\n", encoding="utf-8")
    path = tmp_path / "result.json"
    text = json.dumps(_chat(_message(1, "her", "안녕"), _message(2, "him", "응", id="@@")))
    path.write_text(text.replace('"@@"', "9" * 5000), encoding="utf-8")
    code = main(["--config", str(config), "telegram", "import", str(path), "--she", "진주", "--he", "차차"])
    err = capsys.readouterr().err
    assert code == 2 and "unexpected" not in err
    assert "messages[1].id is a number of 5,000 digits" in err and len(err) < 400


def test_telegram_import_of_a_message_that_is_not_an_object_names_its_index(tmp_path, collector):
    path = _export(
        tmp_path, {"chats": {"list": [_chat(_message(1, "her", "안녕"), _message(2, "him", "응"), "x")]}}
    )
    with pytest.raises(TelegramError, match=r"chats\.list\[0\]\.messages\[2\] is a string, not a message"):
        _import(path, collector)


def test_telegram_import_of_a_chat_that_is_not_an_object_names_its_index(tmp_path, collector):
    path = _export(tmp_path, {"chats": {"list": [[1, 2]]}})
    with pytest.raises(TelegramError, match=r"chats\.list\[0\] is a list, not a chat object"):
        _import(path, collector)


def test_telegram_import_of_a_lone_surrogate_keeps_the_message_mended(tmp_path, collector):
    path = tmp_path / "result.json"
    data = json.dumps(_chat(_message(1, "her", "배고파@@"), _message(2, "him", "밥 먹자")))
    path.write_text(data.replace("@@", "\\ud800"), encoding="utf-8")  # a JSON escape, as in the file
    report = _import(path, collector)
    assert report.imported == 2
    assert {m.text for m in collector.messages()} == {"배고파\ufffd", "밥 먹자"}


@pytest.mark.parametrize("date", ["nan", "inf", "-5", "", None, "1e30"])
def test_telegram_import_counts_a_bad_date_apart_never_as_already_there(tmp_path, collector, date):
    odd = _message(3, "her", "배불러", date_unixtime=date)
    path = _export(tmp_path, _chat(_message(1, "her", "배고파"), _message(2, "him", "밥 먹자"), odd))
    report = _import(path, collector)
    assert (report.imported, report.already_present) == (2, 0)
    assert report.bad_dates == ["messages[2] (id 3)"]
    summary = "\n".join(report.lines())
    assert "bad date:          1 not imported (messages[2] (id 3))" in summary
    again = _import(path, collector)  # the second time too: not "already there"
    assert (again.imported, again.already_present, len(again.bad_dates)) == (0, 2, 1)


def test_telegram_import_falls_back_on_the_local_date_only_without_date_unixtime(tmp_path, collector):
    old = _message(1, "her", "배고파")
    del old["date_unixtime"]
    path = _export(tmp_path, _chat(old, _message(2, "him", "밥 먹자")))
    report = _import(path, collector)
    assert report.imported == 2 and not report.bad_dates


def test_the_collector_refuses_a_row_it_cannot_keep_instead_of_calling_it_already_there(collector):
    nan_date = CollectedMessage(
        chat_id=1, message_id=1, source="import", sender_id=None, sender_name="", role="she",
        date=float("nan"), text="안녕",
    )  # fmt: skip
    with pytest.raises(sqlite3.IntegrityError):
        collector.add_many([nan_date])
    assert collector.count() == 0


def test_chacha_telegram_import_of_an_odd_export_is_one_line_not_unexpected(tmp_path, capsys):
    from device.cli.main import main

    config = tmp_path / "chacha.yaml"
    config.write_text(f"server:\n  data_dir: {tmp_path / 'data'}\n", encoding="utf-8")
    path = _export(tmp_path, {"chats": [_chat(_message(1, "her", "안녕"))]})
    code = main(["--config", str(config), "telegram", "import", str(path), "--she", "진주", "--he", "차차"])
    err = capsys.readouterr().err
    assert code == 2 and "unexpected" not in err
    assert err.startswith("chacha: error:") and "chats is a list" in err
