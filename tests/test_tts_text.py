"""The text side of speech: normalising chat replies and cutting them into sentences."""

from __future__ import annotations

import importlib
import random
import re
import subprocess
import sys

import pytest

from tts import SentenceSplitter, normalize_for_speech, split_sentences
from tts.chat_expressions import EMOJI_CLASS
from tts.korean_numbers import native, sino

_EMOJI = re.compile(f"[{EMOJI_CLASS}]")


# --- numbers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "reading"),
    [
        (0, "영"),
        (1, "일"),
        (10, "십"),
        (11, "십일"),
        (100, "백"),
        (1000, "천"),
        (2024, "이천이십사"),
        (10000, "만"),
        (12345, "만 이천삼백사십오"),
        (110000, "십일만"),
        (100000000, "일억"),
        (100010000, "일억 만"),
        (-3, "마이너스 삼"),
    ],
)
def test_sino_korean_numbers(number: int, reading: str) -> None:
    assert sino(number) == reading


@pytest.mark.parametrize(
    ("number", "reading"),
    [(1, "한"), (2, "두"), (3, "세"), (4, "네"), (10, "열"), (11, "열한"), (20, "스무"),
     (21, "스물한"), (99, "아흔아홉"), (100, "백")],
)  # fmt: skip
def test_native_korean_numbers_before_a_counter(number: int, reading: str) -> None:
    assert native(number) == reading


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("2024년", "이천이십사 년"),
        ("10000원", "만 원"),
        ("3.5", "삼 점 오"),
        ("0.25", "영 점 이오"),
        ("-3", "마이너스 삼"),
        ("영하 -5도", "영하 마이너스 오 도"),
        ("50%", "오십 퍼센트"),
        ("1,000", "천"),
        ("1,234,567원", "백이십삼만 사천오백육십칠 원"),
        ("3시", "세 시"),
        ("2개", "두 개"),
        ("20살", "스무 살"),
        ("21살", "스물한 살"),
        ("1시간", "한 시간"),
        ("3번", "세 번"),
        ("2마리", "두 마리"),
        ("4잔", "네 잔"),
        ("1병", "한 병"),
        ("2달", "두 달"),
        ("5명", "다섯 명"),
        ("3 개", "세 개"),
        ("1번째", "첫 번째"),
        ("2번째", "두 번째"),
        ("100개", "백 개"),
        ("99개", "아흔아홉 개"),
        ("3개월", "삼 개월"),
        ("5달러", "오 달러"),
        ("20대", "이십 대"),
        ("3:30", "세 시 삼십 분"),
        ("12:00", "열두 시"),
        ("7시 5분", "일곱 시 오 분"),
        ("12월 25일", "십이월 이십오일"),
        ("6월", "유월"),
        ("10월", "시월"),
        ("2024-12-25", "이천이십사 년 십이월 이십오일"),
        ("010-1234-5678", "공일공 일이삼사 오육칠팔"),
        ("1588-1234", "일오팔팔 일이삼사"),
        ("007", "공공칠"),
        ("3~4개", "세 네 개"),
        ("10~20분", "십에서 이십 분"),
        ("30°C", "삼십 도"),
        ("총3개", "총 세 개"),
    ],
)
def test_numbers_are_read_the_korean_way(text: str, spoken: str) -> None:
    assert normalize_for_speech(text) == spoken


def test_numbers_in_a_sentence() -> None:
    assert (
        normalize_for_speech("오늘 3시에 커피 2잔 마시고 1시간 걸었어.")
        == "오늘 세 시에 커피 두 잔 마시고 한 시간 걸었어."
    )
    assert (
        normalize_for_speech("우리 12월 25일 7시 30분에 만나자!")
        == "우리 십이월 이십오일 일곱 시 삼십 분에 만나자!"
    )


# --- English, acronyms, emoji, emoticons, laughter ----------------------------------


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("OK", "오케이"),
        ("okay!", "오케이!"),
        ("Okay 알겠어", "오케이 알겠어"),
        ("AI", "에이아이"),
        ("C++ 공부 중", "씨쁠쁠 공부 중"),
        ("python이랑 Python", "파이썬이랑 파이썬"),
        ("bug 고쳤어", "버그 고쳤어"),
        ("code review", "코드 review"),
        ("debug 했어", "디버그 했어"),
        ("server 터졌어", "서버 터졌어"),
        ("I love you", "아이 러브 유"),
        ("good night 진주야", "굿나잇 진주야"),
        ("sorry ㅠㅠ", "쏘리"),
        ("wifi 안 돼", "와이파이 안 돼"),
        ("app 깔았어", "앱 깔았어"),
        ("API", "에이피아이"),
        ("GPU 서버", "지피유 서버"),
        ("Chachaping", "차차핑"),
        ("hello world", "헬로 world"),
        ("debugger", "debugger"),  # whole words only
    ],
)
def test_english_words(text: str, spoken: str) -> None:
    assert normalize_for_speech(text) == spoken


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("보고 싶어 💕", "보고 싶어"),
        ("좋아❤️", "좋아"),
        ("가족 👨‍👩‍👧 사진", "가족 사진"),
        ("최고 👍🏽!", "최고!"),
        ("1️⃣ 번", "번"),
        ("한국 🇰🇷 화이팅", "한국 화이팅"),
        ("사랑해♡♥★", "사랑해"),
        ("고마워 ^^", "고마워"),
        ("고마워^_^", "고마워"),
        ("헤헤 *^^*", "헤헤"),
        ("좋아 :)", "좋아"),
        ("좋아:D 진짜", "좋아 진짜"),
        ("슬퍼 T_T", "슬퍼"),
        ("슬퍼 ㅠㅠ", "슬퍼"),
        ("슬퍼ㅜㅜ", "슬퍼"),
        ("미안 ;;", "미안"),
        ("헐 -_-", "헐"),
        ("사랑해 <3", "사랑해"),
        ("웃겨 XD", "웃겨"),
        ("아 ㅠ.ㅠ", "아"),
        ("ㄷㄷ 무서워", "무서워"),
        ("ㅇㅋ 갈게", "오케이 갈게"),
        ("ㅇㅇ", "응"),
    ],
)
def test_emoji_and_emoticons_are_not_read(text: str, spoken: str) -> None:
    assert normalize_for_speech(text) == spoken


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("ㅋㅋㅋ", "크크"),
        ("진짜 웃기다ㅋㅋㅋㅋㅋ", "진짜 웃기다 크크"),
        ("ㅎㅎ 고마워", "헤헤 고마워"),
        ("좋아ㅎㅎ.", "좋아 헤헤."),
        ("ㅋ", ""),
    ],
)
def test_laughter_becomes_a_short_laugh(text: str, spoken: str) -> None:
    assert normalize_for_speech(text) == spoken


# --- markdown, links, code ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("**정말** 좋아", "정말 좋아"),
        ("*진짜* _좋아_", "진짜 좋아"),
        ("## 오늘 할 일", "오늘 할 일"),
        ("- 커피\n- 케이크", "커피\n케이크"),
        ("1. 일어나기\n2. 씻기", "일어나기\n씻기"),
        ("> 인용이야", "인용이야"),
        ("[여기](https://example.com)를 봐", "여기를 봐"),
        ("https://naver.com 들어가 봐.", "들어가 봐."),
        ("www.google.com/search?q=x 참고해", "참고해"),
        ("me@example.com 으로 보내줘", "으로 보내줘"),
        ("`print()` 함수야", "print 함수야"),
        ("```python\nprint('hi')\n```\n이렇게 하면 돼.", "이렇게 하면 돼."),
        ("```\n열린 코드 블록", ""),
        ("x -> y => z == w", "x y z w"),
        ("a :: b <> c {} [] ;", "a b c"),
        ("x = 1; // 주석", "x 일 주석"),
        ("안녕\n\n\n   진주야  ", "안녕\n진주야"),
    ],
)
def test_markup_and_code_are_not_read(text: str, spoken: str) -> None:
    assert normalize_for_speech(text) == spoken


def test_sentence_punctuation_is_kept() -> None:
    assert normalize_for_speech("응... 진짜?! 좋아~~ 그래!!!") == "응... 진짜?! 좋아~ 그래!"
    assert normalize_for_speech("음… 그렇구나.") == "음… 그렇구나."


def test_a_whole_reply() -> None:
    reply = (
        "**진주야** 오늘 3시에 API 서버 bug 고쳤어 ㅋㅋㅋ 😎\n"
        "- 원인: `null` 체크 안 함 -> 바로 수정!\n"
        "자세한 건 https://github.com/x/y 봐~ 사랑해 ❤️"
    )
    assert normalize_for_speech(reply) == (
        "진주야 오늘 세 시에 에이피아이 서버 버그 고쳤어 크크\n"
        "원인 null 체크 안 함 바로 수정!\n"
        "자세한 건 봐~ 사랑해"
    )


_NASTY_TEXTS = [
    "",
    "   ",
    "\n\n",
    "\ud800 lone surrogate",
    "\x00\x01\x7f",
    "😀" * 50,
    "ㅋ" * 500,
    "1" * 60,
    "9" * 25 + ".5",
    "-" * 30,
    "((((",
    "[[[x](",
    "```",
    "~~~~",
    "%",
    "1,2,3,4",
    "3:99",
    "99:30",
    "1.2.3.4",
    "::::)",
    "١٢٣ Arabic digits ٤",
    "①②③ ⅷ",
    "Ｆｕｌｌｗｉｄｔｈ　１２３！",
    "e\u0301 e\u0301",
    "\u1100\u1161\u11a8",  # a syllable written in conjoining jamo
]


@pytest.mark.parametrize("text", _NASTY_TEXTS)
def test_never_raises_and_leaves_no_emoji(text: str) -> None:
    spoken = normalize_for_speech(text)
    assert isinstance(spoken, str)
    assert not _EMOJI.search(spoken)
    assert not re.search(r"\d", spoken)
    assert normalize_for_speech(spoken) == spoken


def test_random_text_never_breaks_it() -> None:
    rng = random.Random(20241225)
    alphabet = (
        "가나다라ㅋㅎㅠㅜㄷㅇ abcXYZ0123456789.,!?~…:;-_*#`[](){}<>/\\=+%'\"@^\n\t😀❤️\u200d\ufe0f🇰🇷👍🏽✨♡"
    )
    for _ in range(400):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 60)))
        spoken = normalize_for_speech(text)
        assert isinstance(spoken, str)
        assert not _EMOJI.search(spoken), (text, spoken)
        assert not re.search(r"\d", spoken), (text, spoken)


@pytest.mark.parametrize(
    "text",
    ["오늘 3시에 API 서버 bug 고쳤어 ㅋㅋㅋ", "12월 25일 7시 30분!", "사랑해 ❤️ :)", "C++ 50%"],
)
def test_normalising_twice_changes_nothing(text: str) -> None:
    once = normalize_for_speech(text)
    assert normalize_for_speech(once) == once


# --- sentences ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("안녕 진주야. 오늘 하루 어땠어?", ["안녕 진주야.", "오늘 하루 어땠어?"]),
        ("진짜?! 대박...", ["진짜?!", "대박..."]),
        ("좋아~~ 나도 좋아~", ["좋아~~", "나도 좋아~"]),
        ("음… 그렇구나", ["음… 그렇구나"]),
        ("3.5점이야. 괜찮아!", ["3.5점이야.", "괜찮아!"]),
        ("3~4개 정도. 충분해.", ["3~4개 정도.", "충분해."]),
        ('"정말?" 그녀가 물었다.', ['"정말?"', "그녀가 물었다."]),
        ("(진짜로!) 그랬어.", ["(진짜로!)", "그랬어."]),
        ("그랬구나.」 응응", ["그랬구나.」", "응응"]),
        ("첫 줄\n둘째 줄", ["첫 줄", "둘째 줄"]),
        ("응. 알겠어!", ["응. 알겠어!"]),
        ("응\n알겠어", ["응 알겠어"]),
        ("1. 우유 사기", ["1. 우유 사기"]),
        ("node.js 좋아.", ["node.js 좋아."]),
        ("응", ["응"]),
        ("끝났어. 응", ["끝났어.", "응"]),
        ("끝났어. ...", ["끝났어."]),
        ("...", []),
        ("", []),
        ("  \n \n ", []),
        ("마침표 없이 끝나는 말", ["마침표 없이 끝나는 말"]),
    ],
)
def test_split_sentences(text: str, sentences: list[str]) -> None:
    assert split_sentences(text) == sentences


def test_splitter_waits_until_the_ending_is_certain() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("가격은 3.") == []
    assert splitter.feed("5만 원이야") == []
    assert splitter.feed("?") == []  # could still become "?!"
    assert splitter.feed("! 대박") == ["가격은 3.5만 원이야?!"]
    assert splitter.feed("이다\n") == ["대박이다"]
    assert splitter.feed('그래서 "좋아."') == []  # a closing quote may follow
    assert splitter.feed(" 라고") == ['그래서 "좋아."']
    assert splitter.flush() == ["라고"]
    assert splitter.flush() == []


def test_splitter_emits_a_sentence_as_soon_as_it_is_complete() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("안녕 진주야. ") == ["안녕 진주야."]
    assert splitter.feed("오늘은") == []
    assert splitter.flush() == ["오늘은"]


def test_splitter_joins_a_short_fragment_to_the_next_sentence() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("응. ") == []
    assert splitter.feed("나도 보고 싶어. ") == ["응. 나도 보고 싶어."]


_STREAMED_TEXTS = [
    "안녕 진주야. 오늘 하루 어땠어?! 나는... 너 생각했어~ 응.",
    '가격은 3.5만 원. "정말?" 응\n(그래!) 3~4개 정도… 끝',
    "응. ㅋㅋ 좋아?!?! node.js랑 e.g. 이런 거\n\n마지막",
]


@pytest.mark.parametrize("text", _STREAMED_TEXTS)
def test_streaming_in_two_pieces_gives_the_same_sentences(text: str) -> None:
    expected = split_sentences(text)
    assert expected
    for cut in range(len(text) + 1):
        splitter = SentenceSplitter()
        got = splitter.feed(text[:cut]) + splitter.feed(text[cut:]) + splitter.flush()
        assert got == expected, cut


@pytest.mark.parametrize("text", _STREAMED_TEXTS)
def test_streaming_in_random_pieces_gives_the_same_sentences(text: str) -> None:
    expected = split_sentences(text)
    rng = random.Random(text)
    for _ in range(200):
        cuts = sorted(rng.sample(range(len(text) + 1), rng.randrange(0, 8)))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        splitter = SentenceSplitter()
        got = [sentence for piece in pieces for sentence in splitter.feed(piece)]
        assert got + splitter.flush() == expected, pieces


def test_streaming_random_text_matches_splitting_it_whole() -> None:
    rng = random.Random(7)
    alphabet = "가나응 ab3.!?…~\"')」\n"
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 30)))
        splitter = SentenceSplitter()
        got = [sentence for char in text for sentence in splitter.feed(char)]
        got += splitter.flush()
        assert got == split_sentences(text), text
        assert all(sentence.strip() == sentence and sentence for sentence in got)


def test_importing_the_text_side_stays_light() -> None:
    code = (
        "import sys, tts, tts.sentences, tts.normalize\n"
        "heavy = [m for m in ('numpy', 'piper', 'onnxruntime') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
    assert importlib.import_module("tts").__all__


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("오후 3시~5시까지 회의야.", "오후 세 시에서 다섯 시까지 회의야."),
        ("5km 뛰었어", "오 킬로미터 뛰었어"),
        ("16GB 램", "십육 기가바이트 램"),
    ],
)
def test_ranges_and_units(text: str, spoken: str) -> None:
    assert normalize_for_speech(text) == spoken
    assert split_sentences(text) == [text]


def test_code_fences() -> None:
    assert normalize_for_speech("봐 ```x = 1``` 끝") == "봐\n끝"  # a code block breaks the line
    assert normalize_for_speech("봐\n~~~\nx = 1\n~~~\n끝") == "봐\n끝"
    assert normalize_for_speech("좋아~~~ 진짜~~~ 최고") == "좋아~ 진짜~ 최고"


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("1) 밥 먹기 2) 잠 자기", "밥 먹기 잠 자기"),
        ("(속삭이며) 사랑해...", "(속삭이며) 사랑해..."),
        ("f(x) = (a", "f(x) a"),
        ("케이크 1조각", "케이크 한 조각"),
        ("2박 3일", "이박 삼일"),
    ],
)
def test_lists_parentheses_and_more_counters(text: str, spoken: str) -> None:
    assert normalize_for_speech(text) == spoken
