# SPDX-License-Identifier: GPL-3.0-or-later
"""The recall set for 차차's long-term memory, and filler memories to make the store large.

``data/memory_recall.yaml`` holds:

- **facts**: 60 observations 차차 keeps about 진주's life (or about what he told her), each with
  what she says days later that needs it: said indirectly, sharing at most one content word
  with the memory, so retrieval has to find it by meaning, not by spelling. The first 20 are
  the ``dev`` split, the other 40 ``test``; no two facts are on the same topic.
- **distractors**: more memories in the same voice that answer none of the questions.

:func:`synthetic_memories` makes any number of further memories from templates: everyday
small talk (weather, commute, meals, chores, small events at work), the same every time for
one seed, to scale the store to 10,000 with the facts still findable.

The filler keeps off the facts' topics: a generated sentence containing any word of
:data:`_AVOID` (the facts' key nouns and stems, listed by hand) is skipped, so no filler
answers a question in the facts' place. Keep the list in step with the YAML.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from inference_server.yamlfile import parse_yaml

SPLITS = ("dev", "test")
_FACT_KEYS = ("id", "memory", "question", "split")
_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


@dataclass(frozen=True)
class RecallFact:
    """One memory and what she says later that needs it."""

    id: str  # ascii slug, unique in the set
    memory: str  # the observation, in 차차's voice ("진주가 …다고 했다", "내가 …")
    question: str  # what 진주 says days later, indirectly
    split: str  # "dev" or "test"


@dataclass(frozen=True)
class RecallSet:
    """The facts (with their questions) and the distractor memories."""

    facts: tuple[RecallFact, ...]
    distractors: tuple[str, ...]

    def split(self, name: str) -> tuple[RecallFact, ...]:
        """The facts of split ``name`` (``dev`` or ``test``), in file order."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}: expected one of {', '.join(SPLITS)}")
        return tuple(fact for fact in self.facts if fact.split == name)

    @property
    def memories(self) -> tuple[str, ...]:
        """Every memory sentence: the facts' first, then the distractors."""
        return tuple(fact.memory for fact in self.facts) + self.distractors


def default_recall_path() -> Path:
    """The packaged ``device/bench/data/memory_recall.yaml``."""
    return Path(str(files("device.bench").joinpath("data/memory_recall.yaml")))


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: expected a non-empty string, got {value!r}")
    return value.strip()


def _fact(entry: object, index: int) -> RecallFact:
    where = f"facts[{index}]"
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where}: expected a mapping with {', '.join(_FACT_KEYS)}")
    missing = [key for key in _FACT_KEYS if key not in entry]
    if missing:
        raise ValueError(f"{where}: missing key {', '.join(missing)}")
    extra = sorted(str(key) for key in entry if key not in _FACT_KEYS)
    if extra:
        raise ValueError(f"{where}: unknown key {', '.join(extra)}")
    fact_id = _text(entry["id"], f"{where}.id")
    if not _ID.match(fact_id):
        raise ValueError(f"{where}.id: {fact_id!r} is not a lowercase ascii slug")
    split = _text(entry["split"], f"{where}.split")
    if split not in SPLITS:
        raise ValueError(f"{where} ({fact_id}): wrong split {split!r}, expected one of {', '.join(SPLITS)}")
    return RecallFact(
        id=fact_id,
        memory=_text(entry["memory"], f"{where}.memory"),
        question=_text(entry["question"], f"{where}.question"),
        split=split,
    )


def load_recall_set(path: Path | None = None) -> RecallSet:
    """The recall set in ``path`` (default: the packaged one), checked.

    Raises ``ValueError`` naming the problem: a missing or unknown key, an empty entry, a
    duplicate id or memory, a split other than ``dev`` or ``test``.
    """
    source = path if path is not None else default_recall_path()
    with open(source, encoding="utf-8") as stream:
        data = parse_yaml(stream.read())
    if not isinstance(data, Mapping):
        raise ValueError(f"{source}: expected a mapping with facts and distractors")
    for key in ("facts", "distractors"):
        if key not in data:
            raise ValueError(f"{source}: missing key {key}")
        if not isinstance(data[key], list) or not data[key]:
            raise ValueError(f"{source}: {key} must be a non-empty list")
    extra = sorted(str(key) for key in data if key not in ("facts", "distractors"))
    if extra:
        raise ValueError(f"{source}: unknown key {', '.join(extra)}")

    facts = tuple(_fact(entry, index) for index, entry in enumerate(data["facts"]))
    distractors = tuple(_text(entry, f"distractors[{i}]") for i, entry in enumerate(data["distractors"]))

    seen_ids: set[str] = set()
    for fact in facts:
        if fact.id in seen_ids:
            raise ValueError(f"{source}: duplicate id {fact.id!r}")
        seen_ids.add(fact.id)
    seen_memories: set[str] = set()
    for memory in (*(fact.memory for fact in facts), *distractors):
        if memory in seen_memories:
            raise ValueError(f"{source}: duplicate memory {memory!r}")
        seen_memories.add(memory)
    return RecallSet(facts=facts, distractors=distractors)


# --- filler --------------------------------------------------------------------------------

_AVOID: tuple[str, ...] = (
    # health, food she cannot or does eat
    "새우", "해산물", "알레르기", "두통", "장마", "사랑니", "치과", "우유", "라떼", "고수",
    "쌀국수", "마라", "다이어트", "킬로", "치킨", "야식", "잠이 안", "불면", "라식", "안경",
    "수면양말", "양말", "손발",
    # family, friends
    "어머니", "생신", "선물", "결혼", "축가", "남동생", "군대", "입대", "할머니",
    "입원", "병원", "수술", "수연", "호주", "민지", "다퉜", "싸웠", "아기", "출산",
    # work, money, study
    "면접", "이직", "정장", "팀장", "야근", "발표", "슬라이드", "임원", "성과급", "보너스",
    "빌려", "토익", "공인중개사", "민법", "운전", "면허", "스페인어", "심리학",
    # hobbies, pets, plants
    "클라이밍", "고양이", "커튼", "피아노", "건반", "목도리", "뜨개", "베이킹", "마들렌",
    "마라톤", "러닝", "토마토", "베란다", "티니핑", "피규어", "선반", "하이큐", "배구",
    "추리", "소설", "도서관",
    # travel, places, plans, his promises
    "제주", "렌터카", "비행기", "핀란드", "오로라", "한강", "자전거", "따릉이", "이사",
    "망원", "성수", "첫 데이트", "기념일", "천 일", "부산", "출장", "서버", "본가",
    "추석", "명절", "담배", "프린터",
    # fears, likes, shopping, media, looks
    "바퀴벌레", "벌레", "놀이기구", "놀이공원", "롯데월드", "공포", "귀신", "보라", "안개꽃",
    "꽃", "에어프라이어", "만두", "원피스", "반품", "택배", "아이패드", "태블릿", "아이유",
    "콘서트", "티켓", "휴대폰", "액정", "타투", "미용실", "단발", "머리를",
)  # fmt: skip
"""Key words of the 60 facts: a filler sentence with any of them is skipped."""

_DAYS = (
    "월요일", "화요일", "수요일", "목요일", "금요일", "토요일", "일요일", "어제", "그저께",
    "오늘", "지난 수요일", "지난 토요일", "연휴 첫날",
)  # fmt: skip
"""Days said bare, before a time of day ("어제 저녁에") or a topic particle ("어제는")."""
_WHEN = (
    *(day if day in ("어제", "그저께", "오늘") else f"{day}에" for day in _DAYS),
    "지난 주말에", "이번 주 초에", "며칠 전에",
)  # fmt: skip
"""Days said on their own, with 에 where it belongs ("월요일에", but "어제")."""
_TIMES = (
    "아침", "오전", "점심시간", "오후", "해 질 무렵", "저녁", "밤", "출근 전", "퇴근 무렵",
    "새벽", "오후 세 시쯤", "저녁 일곱 시쯤",
)  # fmt: skip
_HER_PEOPLE = (
    "회사 언니", "옆자리 동료", "대학 친구 지은이", "중학교 친구 다은이", "사촌 동생",
    "아빠", "회사 후배", "동네 친구 하린이", "요가 같이 하는 언니", "팀 막내", "소윤이",
    "예전 직장 동료", "교회 친구", "윗집 아주머니",
)  # fmt: skip
_HIS_PEOPLE = (
    "회사 선배", "팀 동료", "대학 동기 형", "고등학교 친구 준호", "입사 동기", "옆 팀 개발자",
    "룸메이트였던 친구", "사촌 형", "동네 형",
)  # fmt: skip
_PLACES = (
    "동네 카페", "회사 앞 공원", "백화점", "전통 시장", "근처 분식집", "쇼핑몰", "미술관",
    "사진 전시회", "동네 빵집", "호수 공원", "새로 생긴 국밥집", "대형 마트", "문구점",
    "꽈배기 가게", "덮밥집", "한옥 마을", "서점", "동네 산책로",
)  # fmt: skip
_OUTINGS = (
    "수다를 떨었", "구경을 했", "사진을 잔뜩 찍었", "한참 걸었", "시간을 보냈", "줄을 서서 기다렸",
    "구경만 하고 나왔", "밀린 얘기를 했", "잠깐 쉬었", "한 바퀴 둘러봤",
)  # fmt: skip
_AREAS = (
    "회사 쪽", "집 앞", "시내", "강남 쪽", "동네", "학교 쪽", "역 근처", "외곽 쪽",
)  # fmt: skip
_WEATHER = (
    "하루 종일 흐렸", "바람이 많이 불었", "햇볕이 따가웠", "미세먼지가 심했", "눈발이 날렸",
    "안개가 짙게 꼈", "꽤 쌀쌀했", "후덥지근했", "하늘이 맑았", "소나기가 잠깐 지나갔",
    "습해서 끈적거렸", "해가 쨍쨍했", "구름이 잔뜩 꼈", "진눈깨비가 왔",
)  # fmt: skip
_COMMUTE = (
    "버스가 십 분 늦게 왔", "지하철에서 운 좋게 앉아서 갔", "환승역에 사람이 너무 많았",
    "마을버스를 눈앞에서 놓쳤", "신호가 계속 빨간불이었", "평소보다 길이 한산했",
    "버스 안이 너무 더웠", "한 정거장 먼저 내려서 걸었", "지하철이 잠깐 멈췄다 다시 갔",
    "역 계단에서 넘어질 뻔했", "이어폰을 두고 나와서 심심했", "옆 사람이 통화를 크게 했",
)  # fmt: skip
_MEALS = (
    "김치찌개", "비빔밥", "제육볶음", "순두부찌개", "칼국수", "김밥", "돈가스", "잔치국수",
    "된장찌개", "냉면", "샌드위치", "볶음밥", "카레", "우동", "부대찌개", "떡국", "콩나물국밥",
    "오므라이스", "샐러드", "짜장면", "덮밥", "수제비", "닭갈비", "청국장",
)  # fmt: skip
_SNACKS = (
    "붕어빵", "호떡", "어묵", "군고구마", "아이스 아메리카노", "찐 옥수수", "탕후루", "츄러스",
    "호두과자", "떡꼬치", "소떡소떡", "핫바", "계란빵", "와플", "식혜",
)  # fmt: skip
_SHOPS = ("동네 마트", "다이소", "편의점", "시장", "문구점", "생활용품점", "역 앞 가게")
_ITEMS = (
    "수건", "머그컵", "볼펜", "공책", "실내화", "방향제", "물티슈", "세제", "빨래 바구니",
    "손거울", "텀블러", "장갑", "달력", "수세미", "베개 커버", "형광펜", "포스트잇", "우산",
    "밀폐 용기", "주방 장갑",
)  # fmt: skip
_WORK_EVENTS = (
    "회의가 세 번이나 있었", "새 모니터를 받았", "보고서 마감을 끝냈", "자리를 옮겼",
    "메일을 오십 통 넘게 받았", "에어컨 온도 때문에 실랑이가 있었", "점심 회식을 했",
    "사무실 정수기가 고장 났", "엑셀 파일이 날아갈 뻔했", "다 같이 간식을 나눠 먹었",
    "화상 회의에서 마이크를 안 켜고 말했", "비품 신청을 했", "회의실 예약이 꼬였",
    "외근을 다녀왔", "월간 회의가 일찍 끝났",
)  # fmt: skip
_MORNINGS = (
    "알람보다 먼저 일어났", "늦게 일어나서 뛰어갔", "아침을 든든히 먹고 나갔",
    "커피를 쏟을 뻔했", "화장을 하다가 시간이 모자랐", "창문을 열고 환기를 했",
    "엘리베이터를 한참 기다렸", "현관에서 신발을 한참 골랐",
)  # fmt: skip
_CHORES = (
    "이불 빨래를 했", "냉장고 정리를 했", "옷장 정리를 했", "분리수거를 했", "화장실 청소를 했",
    "창문을 닦았", "설거지를 몰아서 했", "신발장을 정리했", "서랍 정리를 했",
    "빨래를 개 놓았", "욕실 타일을 닦았", "현관 매트를 빨았",
)  # fmt: skip
_VIEWS = (
    "노을", "무지개", "보름달", "비눗방울 부는 아이들", "버스킹", "드라마 촬영 현장",
    "연 날리는 사람들", "길게 늘어선 줄", "예쁜 간판", "구름 사이로 비치는 햇빛",
)  # fmt: skip
_VIEW_SPOTS = ("퇴근길", "회사 앞", "동네 공원", "버스 창밖", "역 앞", "집 앞 골목", "옥상")
_TRANSPORT = ("버스", "지하철", "택시", "마을버스", "광역버스")
_CLOTHES = (
    "얇은 가디건", "트렌치코트", "반팔 티셔츠", "청바지", "두꺼운 니트", "후드티", "바람막이",
    "롱패딩", "셔츠", "조끼", "맨투맨",
)  # fmt: skip
_SOON = ("오늘", "내일", "모레", "이번 주말", "내일 아침", "오늘 밤", "퇴근길")
_WEATHER_NOW = ("쌀쌀한", "포근한", "바람 부는", "더운", "흐린", "선선한", "추운", "습한")
_GIFTS = (
    "귤 한 봉지", "핸드크림", "쿠키", "사탕", "음료 쿠폰", "손난로", "떡", "초콜릿", "견과류",
    "비타민",
)  # fmt: skip
_NEW_SHOPS = (
    "빵집", "국숫집", "분식집", "문구점", "네일숍", "생과일 주스 가게", "떡집", "반찬 가게",
    "무인 아이스크림 가게", "샐러드 가게", "도넛 가게",
)  # fmt: skip
_EVENINGS = (
    "일찍 씻고 누웠", "밀린 드라마를 봤", "팩을 하고 쉬었", "방 정리를 했", "라디오를 들었",
    "산책을 짧게 했", "다음 날 입을 옷을 골라 뒀", "일기를 썼", "음악을 들으면서 쉬었",
)  # fmt: skip
_HIS_EVENTS = (
    "회의가 길어졌", "코드 리뷰를 오래 했", "새 노트를 샀", "퇴근하고 청소를 했",
    "운동을 하루 빠졌", "노트북 배터리가 금방 닳았", "점심을 늦게 먹었", "책상을 정리했",
    "전구를 갈았", "이불을 새로 꺼냈", "회사에 일찍 도착했", "버그를 하나 잡았",
    "동료한테 커피를 얻어 마셨", "계단으로 출근했",
)  # fmt: skip
_HIS_ADVICE = (
    "따뜻하게 입으라", "천천히 오라", "집에 도착하면 연락하라", "점심 꼭 챙겨 먹으라",
    "무리하지 말라", "일찍 들어가라", "물 자주 마시라", "우산 챙기라", "스트레칭 좀 하라",
)  # fmt: skip
_MINUTES = ("십 분", "이십 분", "삼십 분", "사십 분", "한 시간")
_CLIPS = ("웃긴 영상", "짤", "옛날 사진", "이모티콘", "동물 영상", "밈")
_SHOWS = ("예능 재방송", "뉴스", "요리 프로그램", "여행 유튜브", "다큐멘터리", "옛날 시트콤", "음악 방송")
_NOISES = ("청소기", "드릴", "망치질", "발소리", "공사", "강아지 짖는", "물 내리는")
_HER_HABITS = (
    "아침마다 물을 한 잔씩 마신다", "자기 전에 스트레칭을 한다", "점심시간에 잠깐 산책한다",
    "주말 아침에는 늦게까지 누워 있는다", "출근길에 좋아하는 음악을 듣는다",
    "퇴근하면 바로 씻는다", "일주일에 한 번 장을 본다", "메모를 손으로 적는다",
)  # fmt: skip

_SLOTS: dict[str, Sequence[str]] = {
    "day": _DAYS,
    "when": _WHEN,
    "time": _TIMES,
    "her": _HER_PEOPLE,
    "his": _HIS_PEOPLE,
    "place": _PLACES,
    "outing": _OUTINGS,
    "area": _AREAS,
    "weather": _WEATHER,
    "commute": _COMMUTE,
    "meal": _MEALS,
    "snack": _SNACKS,
    "shop": _SHOPS,
    "item": _ITEMS,
    "work": _WORK_EVENTS,
    "morning": _MORNINGS,
    "chore": _CHORES,
    "view": _VIEWS,
    "spot": _VIEW_SPOTS,
    "ride": _TRANSPORT,
    "clothes": _CLOTHES,
    "now": _WEATHER_NOW,
    "soon": _SOON,
    "gift": _GIFTS,
    "newshop": _NEW_SHOPS,
    "evening": _EVENINGS,
    "me": _HIS_EVENTS,
    "advice": _HIS_ADVICE,
    "minutes": _MINUTES,
    "clip": _CLIPS,
    "show": _SHOWS,
    "noise": _NOISES,
    "habit": _HER_HABITS,
}

# {slot} is filled from _SLOTS; [을] [이] [은] [과] [이랑] [으로] become the particle that
# fits the syllable before it (을/를, 이/가, 은/는, 과/와, 이랑/랑, 으로/로).
_TEMPLATES: tuple[str, ...] = (
    "진주가 {when} {her}[이랑] {place}에서 {outing}다고 했다",
    "진주가 {day} {time}에 {her}[과] {place}에 다녀왔다고 했다",
    "진주가 {day} {time}에 {her}한테서 안부 문자를 받았다고 했다",
    "진주가 {day} {area}[은] {weather}다고 했다",
    "진주가 {day} 출근길에 {commute}다고 했다",
    "진주가 {day} 퇴근길에 {commute}다고 했다",
    "진주가 {day} 점심으로 {meal}[을] 먹었다고 했다",
    "진주가 {day} 저녁에 {her}[이랑] {meal}[을] 먹었다고 했다",
    "진주가 {when} {shop}에서 {item}[을] 샀다고 했다",
    "진주가 {when} 회사에서 {work}다고 했다",
    "진주가 {day} 아침에 {morning}다고 했다",
    "진주가 {when} {chore}다고 했다",
    "진주가 {when} {spot}에서 {view}[을] 봤다고 했다",
    "진주가 {when} {ride}[을] 타고 {place}까지 갔다고 했다",
    "진주가 {when} {place}에서 {her}[을] 우연히 마주쳤다고 했다",
    "진주가 {day}[은] {now} 날씨라서 {clothes}[을] 입고 나갔다고 했다",
    "진주가 {when} {her}한테 {gift}[을] 받았다고 했다",
    "진주가 {area}에 {newshop}[이] 새로 생겼다고 했다",
    "진주가 {day} 저녁에 {evening}다고 했다",
    "진주가 {day} {time}에 {snack}[을] 사 먹었다고 했다",
    "진주가 {when} {her}[이] 보낸 {clip}[을] 보고 한참 웃었다고 했다",
    "진주가 {day} {time}에 윗집에서 {noise} 소리가 났다고 했다",
    "진주가 {when} {place}까지 {minutes} 걸어갔다고 했다",
    "진주가 {when} {her}[이랑] {place}에 가 보기로 했다고 했다",
    "진주가 {day} 저녁에 {show}[을] 틀어 놓고 쉬었다고 했다",
    "진주가 요즘 {habit}고 했다",
    "진주가 {day} {time}에 {area}[으로] 잠깐 나갔다 왔다고 했다",
    "진주가 {when} {her}[이랑] {snack}[을] 나눠 먹었다고 했다",
    "진주가 {when} {shop}에 들렀다가 {item}[을] 깜빡했다고 했다",
    "진주가 {when} {her}[이] {place} 얘기를 해 줬다고 했다",
    "진주가 {day} {time}에 {ride} 안에서 {show} 클립을 봤다고 했다",
    "내가 {when} {me}다고 말했다",
    "내가 진주한테 {day} {time}에 {me}다고 말했다",
    "내가 {when} {his}[이랑] {place}에서 {outing}다고 말했다",
    "내가 {day} 점심으로 {meal}[을] 먹었다고 진주한테 말했다",
    "내가 진주한테 {soon}[은] {now} 날씨라니까 {advice}고 말했다",
    "내가 {day} {area}[은] {weather}다고 진주한테 말했다",
    "내가 {day} 출근길에 {commute}다고 말했다",
    "내가 {when} {his}한테 {gift}[을] 받았다고 말했다",
    "내가 {day} {time}에 {snack}[을] 사 먹었다고 진주한테 말했다",
    "내가 {when} {chore}다고 진주한테 말했다",
    "내가 {when} {his}[과] {ride}[을] 같이 타고 왔다고 말했다",
    "내가 진주한테 {her}[이랑] 만나러 갈 때는 {advice}고 말했다",
)

_PARTICLES = {
    "을": ("을", "를"),
    "이": ("이", "가"),
    "은": ("은", "는"),
    "과": ("과", "와"),
    "이랑": ("이랑", "랑"),
    "으로": ("으로", "로"),
}
_SLOT = re.compile(r"\{(\w+)\}")
_PARTICLE = re.compile(r"(\S)\[(을|이|은|과|이랑|으로)\]")


def _final_consonant(syllable: str) -> int:
    """The final consonant index of a Hangul syllable (0: none; 8: ㄹ); 0 for anything else."""
    code = ord(syllable) - 0xAC00
    return code % 28 if 0 <= code < 11172 else 0


def _attach(match: re.Match[str]) -> str:
    last, particle = match.group(1), match.group(2)
    closed, opened = _PARTICLES[particle]
    final = _final_consonant(last)
    if particle == "으로":
        return last + (closed if final not in (0, 8) else opened)
    return last + (closed if final else opened)


def _fill(template: str, rng: random.Random) -> str:
    text = _SLOT.sub(lambda match: rng.choice(_SLOTS[match.group(1)]), template)
    return _PARTICLE.sub(_attach, text)


def _avoided(sentence: str) -> bool:
    return any(word in sentence for word in _AVOID)


def synthetic_memories(count: int, *, seed: int = 0) -> list[str]:
    """``count`` distinct filler memories, everyday small talk in 차차's voice.

    Deterministic for one ``seed``. Sentences containing a word of :data:`_AVOID` are
    skipped, so none is on the topic of a recall fact. Raises ``ValueError`` for a negative
    ``count`` or one the templates cannot reach.
    """
    if count < 0:
        raise ValueError(f"count must be 0 or more, got {count}")
    rng = random.Random(seed)
    found: dict[str, None] = {}  # insertion-ordered set
    attempts = 0
    limit = 50 * count + 1000
    while len(found) < count:
        attempts += 1
        if attempts > limit:
            raise ValueError(f"only {len(found)} distinct filler memories found, {count} asked for")
        sentence = _fill(rng.choice(_TEMPLATES), rng)
        if not _avoided(sentence):
            found.setdefault(sentence, None)
    return list(found)
