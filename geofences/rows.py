"""Rows: an append-only sequence whose stored part is made on first read (a catalog snapshot's fences, offers
and pairs, numbered as stored; rows appended later are kept as given)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, overload

__all__ = ["Rows"]

T = TypeVar("T")


class Rows(Generic[T]):
    """An append-only sequence whose first ``stored`` items are made by ``decode(i)`` when first read."""

    def __init__(self, decode: Callable[[int], T] | None = None, stored: int = 0, keep: bool = True) -> None:
        """``keep``: remember what was decoded (off where decoding is a mere lookup)."""
        self._decode, self._stored, self._keep = decode, stored, keep
        self._decoded: dict[int, T] = {}
        self._added: list[T] = []

    def __len__(self) -> int:
        return self._stored + len(self._added)

    @overload
    def __getitem__(self, i: int) -> T: ...
    @overload
    def __getitem__(self, i: slice) -> list[T]: ...
    def __getitem__(self, i: int | slice) -> T | list[T]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i >= self._stored:
            return self._added[i - self._stored]
        if i < 0:
            raise IndexError(i)
        assert self._decode is not None
        if not self._keep:
            return self._decode(i)
        item = self._decoded.get(i)
        if item is None:
            item = self._decoded[i] = self._decode(i)
        return item

    def __iter__(self) -> Iterator[T]:
        return (self[i] for i in range(len(self)))

    def append(self, item: T) -> None:
        self._added.append(item)
