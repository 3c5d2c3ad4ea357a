"""A registry of named parts (LLM backends, speech recognisers): each registered once, by name.

A part's spec names how it is built: a function, or "module:function", imported only when the
part is built (reading the config must not load an SDK or a model).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar


class RegistryError(ValueError):
    """A name registered twice, or a name nobody registered."""


class _Named(Protocol):
    name: str


S = TypeVar("S", bound=_Named)


def resolve(build: Callable[..., Any] | str) -> Callable[..., Any]:
    """The build function itself, importing "module:function" now."""
    if isinstance(build, str):
        module, _, function = build.partition(":")
        return getattr(importlib.import_module(module), function)
    return build


class Registry(Generic[S]):
    """Specs by name, in the order they were registered. `what` names a part in errors ("LLM
    backend"), after `article`; `reserved` are names no part may take (a choice that is not a
    part, like "auto")."""

    def __init__(self, what: str, *, article: str = "a", reserved: tuple[str, ...] = ()) -> None:
        self.what = what
        self.article = article
        self.reserved = reserved
        self._specs: dict[str, S] = {}

    def register(self, spec: S) -> S:
        """Add a part; its name must be new."""
        if spec.name in self._specs or spec.name in self.reserved:
            raise RegistryError(f"{self.article} {self.what} named {spec.name!r} is already registered")
        self._specs[spec.name] = spec
        return spec

    def unregister(self, name: str) -> None:
        """Remove a part (a test's toy one); an unknown name is ignored."""
        self._specs.pop(name, None)

    def names(self) -> list[str]:
        return list(self._specs)

    def get(self, name: str) -> S:
        """The part registered as `name`; an unknown name is an error naming the known ones."""
        try:
            return self._specs[name]
        except KeyError:
            known = ", ".join(self.names())
            raise RegistryError(f"unknown {self.what} {name!r}: choose from {known}") from None

    def find(self, name: str) -> S | None:
        return self._specs.get(name)
