"""The registry every family of pluggable members uses: engines, node types, parsers, tools.

A family is a package with one module per member, each registering itself with a decorator. The
modules are discovered, not listed, so adding a member means adding a file; discovery is lazy
(the first lookup), so importing the package stays cheap and a member's heavy libraries are
imported only where it runs.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Callable, ItemsView
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")
C = TypeVar("C", bound=type)


class Registry(Generic[T]):
    """Members of one family by name, found in the modules of ``package``.

    ``key`` names a registered class (its ``kind``, ``type``…); ``build`` turns it into what is
    stored (the class itself by default, or one shared instance). Modules named in ``skip``
    (the family's ``base``) hold no member and are not imported by discovery.
    """

    def __init__(
        self,
        package: str,
        *,
        noun: str,
        key: Callable[[Any], str],
        build: Callable[[Any], T] | None = None,
        skip: frozenset[str] = frozenset({"base"}),
    ) -> None:
        self.package = package
        self.noun = noun
        self._key = key
        self._build = build
        self._skip = skip
        # The members themselves: a plain dict, so a test may add and remove one in place.
        self.members: dict[str, T] = {}
        # A flag, not "members is empty": a member module imported directly first (a test, a
        # helper) registers itself and must not stop the others from being discovered.
        self._discovered = False
        # A worker's task threads may look members up for the first time together.
        self._discovering = threading.Lock()

    def register(self, cls: C) -> C:
        """Add ``cls`` under its key; returns it unchanged, so it works as a class decorator."""
        member = self._build(cls) if self._build is not None else cast(T, cls)
        self.members[self._key(cls)] = member
        return cls

    def discover(self) -> None:
        """Import every member module of the package once (each registers itself)."""
        if self._discovered:
            return
        with self._discovering:
            if self._discovered:
                return
            path = importlib.import_module(self.package).__path__
            for module in pkgutil.iter_modules(path):
                if module.name not in self._skip:
                    importlib.import_module(f"{self.package}.{module.name}")
            self._discovered = True

    def all(self) -> dict[str, T]:
        """Every member by name, discovered first (the registry's own dict, not a copy)."""
        self.discover()
        return self.members

    def get(self, name: str) -> T:
        """The member called ``name``; ``KeyError`` naming the known ones when there is none."""
        members = self.all()
        try:
            return members[name]
        except KeyError:
            known = ", ".join(sorted(members))
            raise KeyError(f"unknown {self.noun} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        """Every member's name, sorted."""
        return sorted(self.all())

    def items(self) -> ItemsView[str, T]:
        return self.all().items()
