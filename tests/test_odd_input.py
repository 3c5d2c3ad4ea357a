"""Odd input never crashes (issue #15): keys given twice in YAML, broken Unicode, odd exports.

Each test is named after the failure it keeps from coming back.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from device.config import ConfigError, load_config
from inference_server.backends.phrasebook import Phrasebook, default_phrasebook_path
from inference_server.errors import InferenceError
from inference_server.persona import Persona, default_persona_path

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
