"""chacha.yaml: defaults, the committed example, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from device.config import ChachaConfig, ConfigError, load_config
from device.stt import registry as stt_registry
from inference_server.backends import registry as backend_registry

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_need_no_file(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    config, source = load_config()
    assert source is None
    assert config.server.host == "127.0.0.1"
    assert config.llm.backends == ["gemini", "phrasebook"]
    assert config.tts.engine == "espeak"
    assert config.stt.engine == "auto"


def test_the_examples_comments_name_every_registered_engine_and_backend():
    """The choices written in chacha.example.yaml's comments are the registries' (a new engine or
    backend registered makes this fail until the example names it)."""
    lines = (ROOT / "chacha.example.yaml").read_text(encoding="utf-8").splitlines()

    def comment(section: str, key: str) -> str:
        """The comment on ``key`` of the top-level ``section``."""
        start = next(i for i, line in enumerate(lines) if line.split("#")[0].strip() == f"{section}:")
        line = next(line for line in lines[start + 1 :] if line.startswith(f"  {key}:"))
        return line.split("#", 1)[1].strip()

    assert comment("llm", "backends").startswith(f"tried in order ({', '.join(backend_registry.names())});")
    assert comment("stt", "engine").startswith(" | ".join(stt_registry.choices()) + " —")
    assert comment("telegram", "stt_engine").startswith(" | ".join([*stt_registry.choices(), "off"]) + ";")


def test_the_committed_example_is_valid_and_matches_the_defaults(monkeypatch, tmp_path):
    config, _ = load_config(ROOT / "chacha.example.yaml")
    defaults = ChachaConfig().model_dump(mode="json")
    example = config.model_dump(mode="json")
    # data_dir is written with ~ in the example; it expands to the same default folder
    assert example.pop("server")["data_dir"].endswith("/.local/share/chachaping")
    defaults["server"].pop("data_dir")
    assert example["stt"].pop("cache_dir").endswith("/.cache/chachaping")
    defaults["stt"].pop("cache_dir")
    example_server = yaml.safe_load((ROOT / "chacha.example.yaml").read_text())["server"]
    assert set(example_server) == set(ChachaConfig.model_fields["server"].annotation.model_fields)
    assert {k: v for k, v in defaults.items() if k != "server"} == example


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "chacha.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("llm:\n  gemini:\n    modle: x\n", "llm.gemini.modle: unknown key (did you mean llm.gemini.model?)"),
        ("serverr: {}\n", "serverr: unknown key (did you mean server?)"),
        ("server:\n  port: 70000\n", "server.port: Input should be less than or equal to 65535"),
        ("tts:\n  engine: festival\n", "tts.engine"),
        ("tts:\n  engine: piper\n", "tts.piper.model"),
        ("llm:\n  backends: [gemini, gemini]\n", "llm.backends"),
        ("persona:\n  timezone: Mars/Olympus\n", "unknown time zone"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("server: [\n", "not valid YAML"),
    ],
)
def test_errors_name_the_key_and_the_problem(tmp_path, text, expected):
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text))
    message = str(info.value)
    assert expected in message
    assert "\n" not in message
    assert str(tmp_path / "chacha.yaml") in message


def test_config_is_found_through_the_environment(monkeypatch, tmp_path):
    path = _write(tmp_path, "server:\n  port: 9999\n")
    monkeypatch.setenv("CHACHA_CONFIG", str(path))
    config, source = load_config()
    assert (config.server.port, source) == (9999, path)


def test_an_empty_file_means_defaults(tmp_path):
    config, _ = load_config(_write(tmp_path, "# nothing yet\n"))
    assert config == ChachaConfig()


def test_a_missing_explicit_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")
