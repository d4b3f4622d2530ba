"""Rows: an append-only sequence whose stored part is made on first read (a catalog snapshot's fences, offers
and pairs, numbered as stored; rows appended later are kept as given); ``Column``: the same for numbers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar, overload

import numpy as np
import numpy.typing as npt

__all__ = ["Column", "Rows"]

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


class Column:
    """A numeric column: a snapshot's mapped array and the rows set after it, in an array of their own that
    grows by doubling. Setting a row never copies the stored part: a single ``np.concatenate`` did, and the
    first write after a start put a private copy of a million-fence snapshot's pair columns (about 200 MB,
    read from disk page by page) in every worker. Rows are read one at a time or as an array of row numbers."""

    def __init__(self, stored: npt.NDArray[Any]) -> None:
        self.stored = stored
        self.added = np.zeros((0, *stored.shape[1:]), dtype=stored.dtype)
        self._count = 0  # rows set after the stored ones

    def __len__(self) -> int:
        return len(self.stored) + self._count

    def __getitem__(self, rows: Any) -> Any:
        n = len(self.stored)
        if isinstance(rows, (int, np.integer)):
            return self.stored[rows] if rows < n else self.added[rows - n]
        rows = np.asarray(rows, dtype=np.int64)
        late = rows >= n
        if not self._count or not late.any():
            return self.stored[rows]
        added = self.added  # one array for the whole read, whatever a writer swaps in meanwhile
        out = np.empty((len(rows), *self.stored.shape[1:]), dtype=self.stored.dtype)
        out[~late] = self.stored[rows[~late]]
        out[late] = added[rows[late] - n]
        return out

    def set(self, row: int, value: Any) -> None:
        """Set row ``row``, the next one (``len(self)``): readers of older views never read it."""
        at = row - len(self.stored)
        assert at == self._count, "rows are set in order"
        if at >= len(self.added):
            grown = np.zeros((max(2 * at, 1024), *self.stored.shape[1:]), dtype=self.stored.dtype)
            grown[:at] = self.added[:at]
            self.added = grown
        self.added[at] = value
        self._count += 1
