"""Rows: an append-only sequence whose stored part is made on first read (a catalog snapshot's fences, offers
and pairs, numbered as stored; rows appended later are kept as given)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, overload

__all__ = ["Rows"]

T = TypeVar("T")


class Rows(Generic[T]):
    """An append-only sequence whose first ``stored`` items are made by ``decode(i)`` at each read (a decoder that
    is costly keeps what it made itself, as many as it should)."""

    def __init__(self, decode: Callable[[int], T] | None = None, stored: int = 0) -> None:
        self._decode, self._stored = decode, stored
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
        return self._decode(i)

    def __iter__(self) -> Iterator[T]:
        return (self[i] for i in range(len(self)))

    def append(self, item: T) -> None:
        self._added.append(item)
