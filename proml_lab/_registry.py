"""One registry per extension kind: built-ins register in code, plugins through an entry-point group.

A broken plugin warns and does not break the others; entry points are read once, on first look-up.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Named extensions of one kind (derived-feature functions, online stores, Quasar operators ...).

    Examples
    --------
    >>> stores = Registry[str]("example.group", "store")
    >>> stores.register("mem", "memory")
    >>> stores.get("mem"), "mem" in stores
    ('memory', True)
    """

    def __init__(self, group: str, what: str, *, normalize: Callable[[str], str] = str) -> None:
        self.group = group
        self.what = what
        self._normalize = normalize
        self._items: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str, item: T) -> None:
        self._items[self._normalize(name)] = item

    def get(self, name: str) -> T | None:
        """The item registered as ``name`` (after loading plugins), or None."""
        self._load()
        return self._items.get(self._normalize(name))

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for ep in entry_points(group=self.group):
            try:
                self._items.setdefault(self._normalize(ep.name), ep.load())
            except Exception as exc:  # a broken plugin must not break the others
                warnings.warn(f"{self.what} plugin {ep.name!r} failed to load: {exc}", stacklevel=3)
