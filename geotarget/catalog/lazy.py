"""A mapping whose stored part is decoded at each read: a worker started from a catalog snapshot holds a million
fences and two million offers as arrays and bytes, and makes Python objects only of the few that a request, a
write or a loop touches (a costly decoder keeps the ones it made last). What changed since the snapshot is kept
beside it; a reader decoding an entry while a writer replaces it gets the entry as it was, like any read just
before a write, and the next read gets the writer's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import Any, TypeVar

from geofences.names import Names
from geofences.rows import Rows

__all__ = ["LazyMap", "Rows", "later"]

T = TypeVar("T")


class LazyMap(MutableMapping[str, T]):
    """A mapping whose stored entries (numbered by ``names``) are made by ``decode(number)`` when read."""

    def __init__(self, names: Names, decode: Callable[[int], T]) -> None:
        self._names, self._decode = names, decode
        self._count = names.stored
        self._gone: set[int] = set()  # stored numbers replaced or removed since
        self._known: dict[str, T] = {}  # set since
        self._moving = threading.Lock()  # writers, and readers taking every key

    def _stored(self, key: str) -> int | None:
        number = self._names.stored_number(key)
        return None if number is None or number in self._gone else number

    def get(self, key: str, default: Any = None) -> Any:
        item = self._known.get(key)
        if item is not None:
            return item
        number = self._stored(key)
        if number is None:
            return default
        return self._decode(number)

    def __getitem__(self, key: str) -> T:
        item: T | None = self.get(key)
        if item is None:
            raise KeyError(key)
        return item

    def __contains__(self, key: object) -> bool:
        return key in self._known or (isinstance(key, str) and self._stored(key) is not None)

    def __setitem__(self, key: str, value: T) -> None:
        with self._moving:
            self._known[key] = value
            if (number := self._names.stored_number(key)) is not None:
                self._gone.add(number)

    def __delitem__(self, key: str) -> None:
        with self._moving:
            found = self._known.pop(key, None) is not None
            number = self._stored(key)
            if number is not None:
                self._gone.add(number)
            elif not found:
                raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        with self._moving:  # both parts as one writer left them
            gone, known = set(self._gone), list(self._known)
        yield from (self._names.name(n) for n in range(self._count) if n not in gone)
        yield from known

    def __len__(self) -> int:
        return self._count - len(self._gone) + len(self._known)

    def known(self) -> list[T]:
        """The items set since the snapshot."""
        return list(self._known.values())

    def among(self, numbers: Iterable[int]) -> list[T]:
        """The items numbered ``numbers`` in the snapshot (where still as stored), and every item set since: a
        search for items with a property the snapshot marked looks no further."""
        known = list(self._known.values())
        return known + [self[self._names.name(n)] for n in numbers if n not in self._gone]


def later(mapping: Mapping[str, T]) -> Callable[[], Mapping[str, T]]:
    """What ``mapping`` holds now, taken under its writer's lock, as a function to call after letting it go: a
    ``LazyMap``'s stored items are decoded then (by number: the map itself is not touched)."""
    if not isinstance(mapping, LazyMap):
        copy = dict(mapping)
        return lambda: copy
    with mapping._moving:
        gone, known, decode = set(mapping._gone), dict(mapping._known), mapping._decode
    names, count = mapping._names, mapping._count
    return lambda: {names.name(n): decode(n) for n in range(count) if n not in gone} | known
