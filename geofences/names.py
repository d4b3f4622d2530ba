"""Names: string ids numbered 0, 1, 2… without a Python object per id for the stored ones.

A catalog snapshot holds a million fence ids and two million offer ids. Kept as Python strings in dicts, they
cost every worker ~100 bytes each before anything is served. Here the stored ones are one fixed-width bytes
array in their numbering, plus a sorted copy and its order for lookups (``np.searchsorted``: a few microseconds),
all memory-mapped from the snapshot and shared by the machine's workers. Ids named after that are appended.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Names"]


class Names:
    """Stored ids (``stored[n]`` is id number ``n``) and ids appended since, each with its own number."""

    def __init__(
        self,
        stored: npt.NDArray[np.bytes_] | None = None,
        ordered: npt.NDArray[np.bytes_] | None = None,
        order: npt.NDArray[np.int64] | None = None,
    ) -> None:
        """``ordered``: ``stored`` sorted; ``order``: the number of each of ``ordered`` (``arrays`` makes them)."""
        self._stored = np.zeros(0, dtype="S1") if stored is None else stored
        self._ordered = self._stored if ordered is None else ordered
        self._order = np.zeros(0, dtype=np.int64) if order is None else order
        if not (len(self._stored) == len(self._ordered) == len(self._order)):
            raise ValueError("the arrays of stored names do not fit together")
        self._added: list[str] = []
        self._numbers: dict[str, int] = {}  # appended ids -> their newest number

    @staticmethod
    def arrays(ids: Sequence[str]) -> tuple[npt.NDArray[np.bytes_], npt.NDArray[np.bytes_], npt.NDArray[np.int64]]:
        """(stored, ordered, order) of ``ids`` for a snapshot."""
        stored = np.array([i.encode() for i in ids], dtype=np.bytes_) if ids else np.zeros(0, dtype="S1")
        order = np.argsort(stored, kind="stable").astype(np.int64)
        return stored, stored[order], order

    @property
    def stored(self) -> int:
        """How many ids are stored (numbers below this are the snapshot's)."""
        return len(self._stored)

    def __len__(self) -> int:
        return len(self._stored) + len(self._added)

    def name(self, number: int) -> str:
        if number >= len(self._stored):
            return self._added[number - len(self._stored)]
        if number < 0:
            raise IndexError(number)
        return bytes(self._stored[number]).decode()

    def stored_number(self, name: str) -> int | None:
        """The number ``name`` has among the stored ids, if it is one."""
        key = name.encode()
        ordered = self._ordered
        if not len(ordered) or len(key) > ordered.dtype.itemsize or key.endswith(b"\0"):
            return None
        at = int(np.searchsorted(ordered, key))
        if at < len(ordered) and ordered[at] == key:
            return int(self._order[at])
        return None

    def number(self, name: str) -> int | None:
        """The newest number of ``name``: appended, else stored."""
        found = self._numbers.get(name)
        return found if found is not None else self.stored_number(name)

    def append(self, name: str) -> int:
        """Number ``name`` anew (its newest number from now on)."""
        number = len(self)
        self._added.append(name)
        self._numbers[name] = number
        return number

    def names(self, numbers: Any) -> list[str]:
        """The ids of many numbers at once."""
        return [self.name(n) for n in np.asarray(numbers, dtype=np.int64).tolist()]
