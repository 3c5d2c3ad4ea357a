"""Reading the project's YAML files with errors that say where and what to fix."""

from __future__ import annotations

import difflib
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from inference_server.errors import InferenceError


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping names the same key twice; ``problem_mark`` is the second, ``first_mark`` the first."""

    def __init__(self, key: object, first: yaml.Mark, second: yaml.Mark, context: yaml.Mark) -> None:
        super().__init__(
            "while constructing a mapping",
            context,
            f"duplicate key {key!r} (first on line {first.line + 1})",
            second,
        )
        self.key = key
        self.first_mark = first


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error.

    Plain PyYAML keeps the last value silently, so a second `server:` section (or a second
    `name:` in a persona) would quietly undo the first. Keys merged in with `<<:` may still be
    overridden: that is what merging is for.
    """

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            seen: dict[object, yaml.Mark] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: the base class says so
                    continue
                if first is not None:
                    raise DuplicateKeyError(key, first, key_node.start_mark, node.start_mark)
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str) -> object:
    """YAML text as Python objects, safely and with duplicate keys refused (`UniqueKeyLoader`)."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader: no arbitrary objects


def load_yaml(path: Path, *, what: str) -> object:
    """Parse a YAML file; a missing or malformed file, or a key given twice, is an InferenceError
    naming the file and the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InferenceError(f"{what} file not found: {path} — fix the path or create it") from None
    except IsADirectoryError:
        raise InferenceError(f"{what} file {path} is a folder — point to a YAML file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InferenceError(f"cannot read {what} file {path}: {exc}") from None
    try:
        return parse_yaml(text)
    except DuplicateKeyError as exc:
        raise InferenceError(
            f"{what} file {path} line {exc.problem_mark.line + 1}: the key {exc.key!r} is given twice "
            f"(first on line {exc.first_mark.line + 1}) — keep one of them"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise InferenceError(f"{what} file {path}{where} is not valid YAML ({problem}): fix it") from None


def describe_validation_error(exc: ValidationError, model: type[BaseModel] | None = None) -> str:
    """One line naming the first bad key and its problem, with a did-you-mean for typos."""
    # A typo shows up as an unknown key *and* a missing one: name the typo first.
    err = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
    loc = [str(p) for p in err["loc"]]
    name = ".".join(loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
        known = _known_keys(model, loc[:-1]) if model else []
        close = difflib.get_close_matches(loc[-1], known, n=1) if loc else []
        if close:
            msg += f" (did you mean {'.'.join([*loc[:-1], close[0]])}?)"
        elif known:
            msg += f" (known here: {', '.join(known)})"
    elif err["type"] == "missing":
        msg = "required key is missing"
    else:
        msg = err["msg"]
        if "input" in err and not isinstance(err["input"], dict | list):
            got = repr(err["input"])  # a whole file given where a mapping belongs is not repeated
            msg += f", got {got}" if len(got) <= 80 else f", got {got[:60]}… ({len(got):,} characters)"
    more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
    return f"{name}: {msg}{more}"


def _known_keys(model: type[BaseModel], path: list[str]) -> list[str]:
    current: type[BaseModel] | None = model
    for part in path:
        field = current.model_fields.get(part) if current else None
        annotation = field.annotation if field else None
        current = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
        if current is None:
            return []
    return list(current.model_fields) if current else []
