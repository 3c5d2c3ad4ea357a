"""The Telegram bot end to end: the real python-telegram-bot Application against a fake Bot API,
and a real inference server (phrasebook backend) on loopback."""

from __future__ import annotations

import asyncio
import io
import socket
import sqlite3
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import SAMPLE_WAV
from fakes.telegram import BOT_ID, FakeTelegram

from device.config import ChachaConfig
from inference_server.api import InferenceClient
from telegram_collector.bot import (
    HEARD_PREFIX,
    NOTHING_HEARD,
    ONLY_WORDS,
    BotOptions,
    ChachaBot,
    build_application,
    serving,
)
from telegram_collector.settings import TelegramSettings, TelegramUser
from telegram_collector.store import CollectorStore
from telegram_collector.voice import VoiceTooLong, decode_voice, size_limit

pytestmark = pytest.mark.timeout(60)

JINJU, DEV, STRANGER = 1111, 2222, 3333


class _NotLoaded:
    """Stands for a speech model in tests that must never use one."""

    def transcribe(self, samples):
        raise AssertionError("speech recognition was used in a text-only test")


def _settings(fake: FakeTelegram, **overrides) -> TelegramSettings:
    return TelegramSettings(
        users=[
            TelegramUser(id=JINJU, name="진주", role="partner"),
            TelegramUser(id=DEV, name="dev", role="developer", conversation="dev"),
        ],
        base_url=fake.base_url,
        base_file_url=fake.base_file_url,
        **overrides,
    )


@pytest.fixture
def fake():
    with FakeTelegram() as server:
        yield server


@pytest.fixture
def config(tmp_path: Path) -> ChachaConfig:
    return ChachaConfig(server={"data_dir": str(tmp_path / "data")}, stt={"engine": "vosk"})


@pytest.fixture
def run(fake, start_server, token, tmp_path, config):
    """Run the bot while ``body(chacha, store)`` runs; returns the inference server."""
    server = start_server()

    def go(
        body: Callable[[ChachaBot, CollectorStore], Awaitable[None]],
        *,
        settings: TelegramSettings | None = None,
        transcriber_factory=_NotLoaded,
        speech_factory=_NotLoaded,
        time_limit: float = 20,
        server_url: str | None = None,
    ):
        async def main() -> None:
            store = CollectorStore(tmp_path / "telegram.sqlite3")
            application = build_application(
                settings or _settings(fake),
                BotOptions.of(config),
                token=fake.token,
                client=InferenceClient(server_url or server.url, token, timeout_s=10),
                store=store,
                transcriber_factory=transcriber_factory,
                speech_factory=speech_factory,
            )
            try:
                async with serving(application, poll_interval=0.05, timeout=1):
                    await asyncio.wait_for(body(application.bot_data["chacha"], store), time_limit)
            finally:
                store.close()

        asyncio.run(asyncio.wait_for(main(), time_limit + 15))
        return server

    return go


def _turns(server) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(server.chat.store.path) as db:
        return db.execute("SELECT conversation, role, text, channel FROM turns ORDER BY id").fetchall()


def _ogg(samples: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="OGG", subtype="OPUS")
    return buffer.getvalue()


def test_her_text_gets_the_servers_reply_after_a_typing_action(run, fake):
    async def body(chacha, store):
        fake.push_text(JINJU, "배고파")
        (reply,) = await fake.wait_for("sendMessage")
        assert reply.chat_id == JINJU and reply.text
        typing = [c for c in fake.calls("sendChatAction") if c.params["action"] == "typing"]
        assert typing and typing[0].at <= reply.at

    server = run(body)
    turns = _turns(server)
    assert turns[0] == ("jinju", "user", "배고파", "telegram")
    assert turns[1][:2] == ("jinju", "model") and turns[1][2] == fake.replies(JINJU)[0]


def test_her_words_and_his_replies_are_collected(run, fake):
    async def body(chacha, store):
        first = fake.push_text(JINJU, "나 왔어")
        await fake.wait_for("sendMessage")
        fake.push_edit(JINJU, first, "나 집에 왔어")
        fake.push_sticker(JINJU)
        await fake.wait_for("sendMessage", 2)
        await fake.settle()
        she, he, sticker, he_again = store.recent(JINJU)
        assert (she.role, she.text, she.kind, she.source, she.edited) == (
            "she",
            "나 집에 왔어",
            "text",
            "bot",
            True,
        )
        assert (he.role, he.reply_to, he.sender_id, he.backend) == (
            "he",
            she.message_id,
            BOT_ID,
            "phrasebook",
        )
        assert he.text == fake.replies(JINJU)[0]
        assert (sticker.role, sticker.kind, sticker.text) == ("she", "sticker", "")
        assert he_again.text == ONLY_WORDS and he_again.backend == "none"

    server = run(body)
    assert len(_turns(server)) == 2  # the edit and the sticker never reached the server


def test_when_the_server_is_away_she_is_told_so(run, fake):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"

    async def body(chacha, store):
        fake.push_text(JINJU, "배고파")
        (reply,) = await fake.wait_for("sendMessage")
        assert "자리를 비웠어" in reply.text and "not answering" in reply.text
        assert [m.text for m in store.recent(JINJU)] == ["배고파"]  # her words are kept all the same

    run(body, server_url=closed)


def test_a_stranger_is_ignored_and_never_reaches_the_server(run, fake, caplog):
    caplog.set_level("INFO", logger="telegram_collector")

    async def body(chacha, store):
        fake.push_text(STRANGER, "안녕 차차")
        fake.push_text(STRANGER, "/status")
        await fake.settle()
        assert store.count() == 0

    server = run(body)
    assert fake.calls("sendMessage") == [] and fake.calls("sendChatAction") == []
    assert _turns(server) == []
    assert f"stranger {STRANGER}" in caplog.text
    assert "안녕 차차" not in caplog.text


def test_a_stranger_gets_the_fixed_reply_once(run, fake):
    async def body(chacha, store):
        fake.push_text(STRANGER, "hello")
        fake.push_text(STRANGER, "hello?")
        await fake.wait_for("sendMessage")
        await fake.settle()

    server = run(body, settings=_settings(fake, stranger_reply="This is a private bot."))
    assert fake.replies(STRANGER) == ["This is a private bot."]
    assert _turns(server) == []


def test_developer_commands_are_refused_to_her(run, fake):
    async def body(chacha, store):
        for command in ("/status", "/clear", "/history", "/persona", "/version", "/start", "/nope"):
            fake.push_text(JINJU, command)
        await fake.wait_for("sendMessage", 7)

    server = run(body)
    *refusals, greeting, unknown = fake.replies(JINJU)
    assert len(refusals) == 5 and all("개발자" in text for text in refusals)
    assert "나 여기 있어" in greeting and "/status" not in greeting
    assert "Unknown command" in unknown
    assert _turns(server) == []


def test_developer_commands_work_for_the_developer(run, fake):
    async def body(chacha, store):
        fake.push_text(JINJU, "보고 싶어")
        await fake.wait_for("sendMessage", 1)
        fake.push_text(DEV, "테스트 메시지")  # the developer's own conversation: "dev"
        await fake.wait_for("sendMessage", 2)

        async def command(text: str) -> str:
            before = len(fake.replies(DEV))
            fake.push_text(DEV, text)
            calls = await fake.wait_for("sendMessage", len(fake.calls("sendMessage")) + 1)
            assert len(fake.replies(DEV)) == before + 1, calls
            return fake.replies(DEV)[-1]

        status = await command("/status")
        assert "answering now: phrasebook" in status and "gemini" not in status.split("answering")[1][:20]
        assert "phrasebook: on" in status
        persona = await command("/persona")
        assert "name: 차차" in persona and "(from the server's" in persona
        history = await command("/history")
        assert "진주: 보고 싶어" in history and "차차" in history
        assert "dev: 테스트 메시지" in await command("/history dev")
        assert "no user called 누구" in await command("/history 누구")
        assert "Chachaping" in await command("/version")

        ask = await command("/clear")
        code = ask.split("/clear ")[1].split()[0]
        assert "conversation 'dev'" in ask and "chacha memory forget" in ask and len(code) == 4
        wrong = "0000" if code != "0000" else "1111"
        assert "wrong" in await command(f"/clear {wrong}")
        assert "wrong" in await command(f"/clear {code}")  # a wrong try spends the code
        code = (await command("/clear")).split("/clear ")[1].split()[0]
        assert store.count(DEV) > 0
        assert "Deleted" in await command(f"/clear {code}")
        assert store.count(DEV) == 0 and store.count(JINJU) == 2  # only this chat

    server = run(body)
    conversations = {c for c, *_ in _turns(server)}
    assert conversations == {"jinju"}  # /clear deleted the server's history of "dev" too


def test_an_over_long_voice_note_is_refused_before_downloading(run, fake):
    async def body(chacha, store):
        fake.push_voice(JINJU, b"OggS-not-really", duration=95)
        (reply,) = await fake.wait_for("sendMessage")
        assert "너무 길어" in reply.text and "95 s" in reply.text and "60 s" in reply.text

    server = run(body)
    assert fake.calls("getFile") == [] and _turns(server) == []


def test_a_voice_note_longer_than_it_claims_is_refused(run, fake):
    samples, rate = sf.read(SAMPLE_WAV, dtype="float32")  # 3.9 s

    async def body(chacha, store):
        fake.push_voice(JINJU, _ogg(samples, rate), duration=1)
        (reply,) = await fake.wait_for("sendMessage")
        assert "너무 길어" in reply.text and "limit is 2 s" in reply.text

    server = run(body, settings=_settings(fake, max_voice_s=2))
    assert len(fake.calls("getFile")) == 1 and _turns(server) == []


def test_a_voice_note_heavier_than_its_limit_allows_is_refused_before_downloading(run, fake):
    heavy = b"OggS" + bytes(size_limit(60))  # claims 5 s; weighs what a 60-s note cannot

    async def body(chacha, store):
        fake.push_voice(JINJU, heavy, duration=5)
        (reply,) = await fake.wait_for("sendMessage")
        assert "너무 커" in reply.text and f"{len(heavy):,} bytes" in reply.text and "60-s note" in reply.text

    server = run(body)
    assert fake.calls("getFile") == [] and _turns(server) == []


def test_a_long_voice_note_is_measured_from_its_header_and_never_decoded_whole() -> None:
    rate = 48000
    tone = (0.2 * np.sin(np.arange(rate * 90) * 2 * np.pi * 220 / rate)).astype("float32")
    note = _ogg(tone, rate)  # 90 s
    tracemalloc.start()
    try:
        with pytest.raises(VoiceTooLong) as caught:
            decode_voice(note, sample_rate=16000, max_s=30)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert round(caught.value.length_s) == 90 and caught.value.limit_s == 30
    assert "90 s long; the limit is 30 s" in str(caught.value)
    assert peak < 1_000_000  # decoded whole, 90 s of float32 at 48 kHz is 17 MB
    assert len(decode_voice(note, sample_rate=16000, max_s=90)) == 16000 * 90


def test_voice_notes_can_be_turned_off(run, fake):
    async def body(chacha, store):
        fake.push_voice(JINJU, b"OggS", duration=3)
        (reply,) = await fake.wait_for("sendMessage")
        assert "글로 보내 줄래" in reply.text and "stt_engine is off" in reply.text
        assert chacha.transcriber.state == "not loaded yet"

    server = run(body, settings=_settings(fake, stt_engine="off"), transcriber_factory=None)
    assert fake.calls("getFile") == [] and _turns(server) == []


def test_a_broken_voice_note_is_answered_with_a_clear_message(run, fake):
    async def body(chacha, store):
        fake.push_voice(JINJU, b"this is not ogg", duration=2)
        (reply,) = await fake.wait_for("sendMessage")
        assert "열 수가 없었어" in reply.text and "Could not read" in reply.text

    assert _turns(run(body)) == []


@pytest.mark.slow
def test_a_voice_note_gets_a_text_and_a_voice_reply(run, fake, config):
    from device.stt.auto import create_transcriber
    from tts.engines import create_engine

    samples, rate = sf.read(SAMPLE_WAV, dtype="float32")

    async def body(chacha, store):
        fake.push_voice(JINJU, _ogg(samples, rate), duration=4)
        (reply,) = await fake.wait_for("sendMessage", timeout=30)
        (voice,) = await fake.wait_for("sendVoice", timeout=30)
        assert voice.chat_id == JINJU and int(voice.params["duration"]) >= 1
        assert reply.at <= voice.at
        actions = [c.params["action"] for c in fake.calls("sendChatAction")]
        assert actions[0] == "typing" and "record_voice" in actions

        fake.push_voice(JINJU, _ogg(np.zeros(rate * 2, np.float32), rate), duration=2)  # silence
        await fake.wait_for("sendVoice", 2, timeout=30)
        assert fake.replies(JINJU)[1] == f"{HEARD_PREFIX}…\n\n{NOTHING_HEARD}"

    server = run(
        body,
        transcriber_factory=lambda: create_transcriber(config.stt),
        speech_factory=lambda: create_engine(config.tts),
        time_limit=40,
    )
    text = fake.replies(JINJU)[0]
    heard, answer = text.removeprefix(HEARD_PREFIX).split("\n\n", 1)
    assert text.startswith(HEARD_PREFIX) and "걸어갔" in heard.replace(" ", "")
    turns = _turns(server)
    assert turns[0][:2] == ("jinju", "user") and turns[0][2] == heard
    assert turns[1][2] == answer
    assert len(turns) == 2  # silence was answered without asking the server

    ogg = fake.calls("sendVoice")[0].files["voice"]
    assert ogg[:4] == b"OggS" and b"OpusHead" in ogg[:64]
    spoken, spoken_rate = sf.read(io.BytesIO(ogg), dtype="float32")
    assert spoken_rate == 48000 and len(spoken) / spoken_rate > 0.5
    assert float(np.sqrt(np.mean(spoken**2))) > 0.01  # not silence


# --- /clear and the server's history ----------------------------------------------------------------


async def _dev_command(fake, text: str) -> str:
    before = len(fake.calls("sendMessage"))
    fake.push_text(DEV, text)
    await fake.wait_for("sendMessage", before + 1)
    return fake.replies(DEV)[-1]


def test_clear_deletes_the_collected_messages_and_the_servers_history(run, fake):
    async def body(chacha, store):
        fake.push_text(JINJU, "보고 싶어")
        await fake.wait_for("sendMessage", 1)
        fake.push_text(DEV, "테스트 메시지")  # the developer's own conversation: "dev"
        await fake.wait_for("sendMessage", 2)
        await fake.settle()
        assert store.count(DEV) == 2

        ask = await _dev_command(fake, "/clear")
        assert "차차's conversation history on the server for conversation 'dev'" in ask
        assert "long-term memories stay" in ask and "chacha memory forget" in ask
        code = ask.split("/clear ")[1].split()[0]
        done = await _dev_command(fake, f"/clear {code}")
        assert "Deleted 2 collected messages" in done and "2 turns of the server's history" in done
        assert store.count(DEV) == 0 and store.count(JINJU) == 2

    server = run(body)
    assert server.chat.store.count("dev") == 0
    assert server.chat.store.count("jinju") == 2  # only the developer's conversation


def test_clear_with_the_server_away_still_clears_the_collector_and_says_so(run, fake):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"

    async def body(chacha, store):
        fake.push_text(DEV, "테스트 메시지")
        await fake.wait_for("sendMessage", 1)  # 차차 is away, but her words are kept
        await fake.settle()
        assert store.count(DEV) == 1

        code = (await _dev_command(fake, "/clear")).split("/clear ")[1].split()[0]
        done = await _dev_command(fake, f"/clear {code}")
        assert "Deleted 1 collected messages" in done
        assert "could not be deleted" in done and "not reachable" in done and "again later" in done
        assert store.count(DEV) == 0

    run(body, server_url=closed)
