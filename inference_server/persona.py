"""차차's persona: who he is, how he talks, and the system instruction built from it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from importlib.resources import files
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inference_server.errors import InferenceError
from inference_server.yamlfile import describe_validation_error, load_yaml

_WEEKDAYS = "월화수목금토일"


class _Example(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    she: str = Field(min_length=1)
    he: str = Field(min_length=1)


class _PersonaFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    partner: str = Field(min_length=1)
    identity: str = Field(min_length=1)
    partner_description: str = Field(min_length=1)
    speaking_style: list[str] = Field(min_length=1)
    rules: list[str] = Field(min_length=1)
    examples: list[_Example] = Field(default_factory=list)


def default_persona_path() -> Path:
    return Path(str(files("inference_server").joinpath("data/persona.yaml")))


@dataclass(frozen=True)
class Persona:
    name: str
    partner: str
    identity: str
    partner_description: str
    speaking_style: tuple[str, ...]
    rules: tuple[str, ...]
    examples: tuple[tuple[str, str], ...]

    @classmethod
    def load(cls, path: Path | None = None) -> Persona:
        path = path or default_persona_path()
        data = load_yaml(path, what="persona")
        try:
            parsed = _PersonaFile.model_validate(data)
        except ValidationError as exc:
            raise InferenceError(
                f"persona file {path}: {describe_validation_error(exc, _PersonaFile)}"
            ) from None
        return cls(
            name=parsed.name.strip(),
            partner=parsed.partner.strip(),
            identity=parsed.identity.strip(),
            partner_description=parsed.partner_description.strip(),
            speaking_style=tuple(s.strip() for s in parsed.speaking_style),
            rules=tuple(r.strip() for r in parsed.rules),
            examples=tuple((e.she.strip(), e.he.strip()) for e in parsed.examples),
        )

    def system_instruction(self, now: datetime) -> str:
        """The instruction the model gets: the persona, the rules, examples and the time now.

        The frame is in English (models follow English instructions more reliably), the
        persona itself in Korean, and the clock is given as the original doll did: the
        current date and time where they live.
        """
        lines = [
            f"You are {self.name}, talking with {self.partner}. You are a real person, "
            "not an assistant. Stay in character in every reply.",
            "",
            f"## Who {self.name} is",
            self.identity,
            "",
            f"## Who {self.partner} is",
            self.partner_description,
            "",
            "## How he talks",
            *(f"- {item}" for item in self.speaking_style),
            "",
            "## Rules",
            *(f"- {item}" for item in self.rules),
            "- Your words are spoken aloud by a small doll: plain spoken Korean only.",
        ]
        if self.examples:
            lines += ["", "## Examples of his voice"]
            for she, he in self.examples:
                lines += [f"{self.partner}: {she}", f"{self.name}: {he}"]
        lines += ["", f"## Now\n{format_korean_time(now)}"]
        return "\n".join(lines)


def format_korean_time(now: datetime) -> str:
    """'2026년 11월 22일 일요일 오후 3시 5분 (Asia/Seoul)' for the prompt's clock."""
    hour = now.hour
    half = "오전" if hour < 12 else "오후"
    hour12 = hour % 12 or 12
    zone = getattr(now.tzinfo, "key", None) or now.strftime("%Z") or "local"
    return (
        f"{now.year}년 {now.month}월 {now.day}일 {_WEEKDAYS[now.weekday()]}요일 "
        f"{half} {hour12}시 {now.minute}분 ({zone})"
    )


class PersonaBook:
    """The persona in use, reloadable and editable while the server runs.

    The shipped persona lives inside the package (read-only on the Pi); an edit is saved to
    `persona.file` when one is configured, otherwise to `<data_dir>/persona.yaml`, which then
    takes precedence over the shipped one.
    """

    def __init__(self, configured: Path | None, data_dir: Path) -> None:
        self.configured = configured
        self.override = data_dir / "persona.yaml"
        self.current = Persona.load(self.path)

    @property
    def path(self) -> Path:
        if self.configured is not None:
            return self.configured
        return self.override if self.override.is_file() else default_persona_path()

    def reload(self) -> Persona:
        self.current = Persona.load(self.path)
        return self.current

    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")

    def save(self, text: str) -> Persona:
        """Validate a new persona YAML, write it atomically, and use it from the next turn."""
        target = self.configured or self.override
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = target.with_name(f".{target.name}.new")
        scratch.write_text(text, encoding="utf-8")
        try:
            persona = Persona.load(scratch)
        except InferenceError as exc:
            scratch.unlink(missing_ok=True)
            raise InferenceError(str(exc).replace(f"persona file {scratch}", "the new persona")) from None
        scratch.replace(target)
        self.current = persona
        return persona
