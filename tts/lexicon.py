"""English words and Latin letters the way a Korean speaker says them.

The dictionary is small on purpose: words a developer who is a warm boyfriend drops into
Korean chat. Words not in it are left alone (the engine reads them as best it can), except
all-caps acronyms, which are spelt letter by letter (API → 에이피아이).
"""

from __future__ import annotations

import re

ENGLISH_WORDS: dict[str, str] = {
    # everyday and affection
    "ok": "오케이", "okay": "오케이", "hi": "하이", "hello": "헬로", "bye": "바이",
    "thanks": "땡스", "thank you": "땡큐", "sorry": "쏘리", "yes": "예스", "no": "노",
    "love": "러브", "love you": "러브 유", "i love you": "아이 러브 유", "good": "굿",
    "good night": "굿나잇", "good morning": "굿모닝", "nice": "나이스", "cute": "큐트",
    "baby": "베이비", "honey": "허니", "sweet": "스위트", "kiss": "키스", "hug": "허그",
    "happy": "해피", "birthday": "버스데이", "date": "데이트", "fighting": "화이팅",
    "wow": "와우", "cool": "쿨", "perfect": "퍼펙트", "coffee": "커피", "latte": "라떼",
    "pizza": "피자", "chicken": "치킨", "game": "게임", "movie": "무비",
    "lol": "크크", "haha": "하하",
    # phones and the internet
    "wifi": "와이파이", "wi-fi": "와이파이", "app": "앱", "email": "이메일", "e-mail": "이메일",
    "phone": "폰", "iphone": "아이폰", "youtube": "유튜브", "google": "구글",
    "telegram": "텔레그램", "kakaotalk": "카카오톡", "kakao": "카카오", "instagram": "인스타그램",
    "netflix": "넷플릭스", "online": "온라인", "offline": "오프라인",
    # the developer's day
    "ai": "에이아이", "c++": "씨쁠쁠", "c#": "씨샵", "python": "파이썬", "java": "자바",
    "javascript": "자바스크립트", "typescript": "타입스크립트", "rust": "러스트",
    "bug": "버그", "bugs": "버그", "code": "코드", "coding": "코딩", "debug": "디버그",
    "debugging": "디버깅", "server": "서버", "git": "깃", "github": "깃허브",
    "commit": "커밋", "push": "푸시", "merge": "머지", "deploy": "디플로이",
    "test": "테스트", "error": "에러", "data": "데이터", "cloud": "클라우드",
    "docker": "도커", "linux": "리눅스", "laptop": "랩탑", "computer": "컴퓨터",
    "program": "프로그램", "developer": "개발자", "meeting": "미팅", "deadline": "데드라인",
    "chatgpt": "챗지피티", "gemini": "제미나이", "raspberry pi": "라즈베리 파이",
    "pi": "파이", "chachaping": "차차핑",
    # units written after numbers
    "km": "킬로미터", "kg": "킬로그램", "cm": "센티미터", "mm": "밀리미터",
    "kb": "킬로바이트", "mb": "메가바이트", "gb": "기가바이트", "tb": "테라바이트",
    "ms": "밀리초", "kcal": "킬로칼로리",
}  # fmt: skip

LETTER_NAMES: dict[str, str] = {
    "A": "에이", "B": "비", "C": "씨", "D": "디", "E": "이", "F": "에프", "G": "지",
    "H": "에이치", "I": "아이", "J": "제이", "K": "케이", "L": "엘", "M": "엠", "N": "엔",
    "O": "오", "P": "피", "Q": "큐", "R": "알", "S": "에스", "T": "티", "U": "유",
    "V": "브이", "W": "더블유", "X": "엑스", "Y": "와이", "Z": "제트",
}  # fmt: skip

# Longest entries first, so "good night" wins over "good" and "c++" over "c".
_WORD = re.compile(
    r"(?<![A-Za-z])(?:"
    + "|".join(
        re.escape(word).replace(r"\ ", r"\s+") for word in sorted(ENGLISH_WORDS, key=len, reverse=True)
    )
    + r")(?![A-Za-z+#])",
    re.IGNORECASE,
)
_ACRONYM = re.compile(r"(?<![A-Za-z°])[A-Z]+(?![A-Za-z])")


def _korean_word(match: re.Match[str]) -> str:
    key = " ".join(match.group(0).lower().split())
    return ENGLISH_WORDS[key]


def spell_acronym(acronym: str) -> str:
    """Letter by letter in Korean: API → 에이피아이."""
    return "".join(LETTER_NAMES.get(letter, letter) for letter in acronym.upper())


def read_latin(text: str) -> str:
    """Dictionary words to Korean (case-insensitive, whole words), then acronyms spelt out."""
    text = _WORD.sub(_korean_word, text)
    return _ACRONYM.sub(lambda match: spell_acronym(match.group(0)), text)
