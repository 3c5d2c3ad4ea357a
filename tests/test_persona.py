"""차차's persona and the system instruction built from it."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from inference_server.errors import InferenceError
from inference_server.persona import Persona, format_korean_time


def test_shipped_persona_is_chacha_talking_to_jinju(persona: Persona):
    assert persona.name == "차차" and persona.partner == "진주"
    assert len(persona.examples) >= 5
    assert persona.rules and persona.speaking_style


def test_system_instruction_has_persona_examples_and_kst_clock(persona: Persona):
    now = datetime(2026, 11, 22, 15, 5, tzinfo=ZoneInfo("Asia/Seoul"))
    text = persona.system_instruction(now)
    assert "You are 차차" in text
    assert persona.identity.splitlines()[0] in text
    she, he = persona.examples[0]
    assert f"진주: {she}" in text and f"차차: {he}" in text
    assert "2026년 11월 22일 일요일 오후 3시 5분 (Asia/Seoul)" in text


@pytest.mark.parametrize(
    ("hour", "expected"), [(0, "오전 12시"), (9, "오전 9시"), (12, "오후 12시"), (23, "오후 11시")]
)
def test_korean_clock(hour, expected):
    assert expected in format_korean_time(datetime(2026, 1, 5, hour, 0, tzinfo=ZoneInfo("Asia/Seoul")))


def test_a_bad_persona_file_names_the_key(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: 차차\npartner: 진주\nidentitty: x\n", encoding="utf-8")
    with pytest.raises(InferenceError, match="identitty: unknown key") as info:
        Persona.load(path)
    assert "did you mean identity" in str(info.value)
