"""CellTable: an immutable map from H3 cells (of any resolutions) to integer entries, built for one lookup per
request and cheap copies per write.

The bulk of it is packed into sorted numpy arrays (keys, group starts, entries), so a point's cells at every
resolution present are found with one ``searchsorted``. Later additions go to a small overlay that each new
table copies; once the overlay grows past a share of the packed part, the next table packs both again. Tables
never change after they are made, so a reader holding one sees one consistent state while writers make the
next. Removing is the caller's business: entries name slots that the caller marks dead, and ``packed`` drops
them when it repacks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import chain

import numpy as np
import numpy.typing as npt

from geofences import cells
from geofences.cells import Cell

__all__ = ["CellTable"]

IntArray = npt.NDArray[np.int64]
_EMPTY = np.empty(0, dtype=np.int64)
_MIN_OVERLAY = 20_000  # entries; below this the overlay is never repacked


class CellTable:
    def __init__(
        self,
        keys: npt.NDArray[np.uint64],
        starts: IntArray,
        entries: IntArray,
        overlay: Mapping[int, tuple[int, ...]],
        overlay_size: int,
    ) -> None:
        self._keys, self._starts, self._entries = keys, starts, entries
        self._overlay = overlay
        self._overlay_size = overlay_size
        present = {cells.cell_to_res(Cell(int(k))) for k in _sample_by_res(keys)} | {
            cells.cell_to_res(Cell(k)) for k in overlay
        }
        self.resolutions = tuple(sorted(present, reverse=True))  # finest first

    @classmethod
    def empty(cls) -> CellTable:
        return cls(np.empty(0, np.uint64), np.zeros(1, np.int64), _EMPTY, {}, 0)

    @classmethod
    def pack(cls, rows: Iterable[tuple[int, int]]) -> CellTable:
        """A table of (cell, entry) rows, all packed."""
        pairs = np.fromiter(chain.from_iterable(rows), dtype=np.int64).reshape(-1, 2)  # 2.4x np.array (1M rows)
        return cls._packed(pairs[:, 0].astype(np.uint64), pairs[:, 1])

    @classmethod
    def stored(cls, keys: npt.NDArray[np.uint64], starts: IntArray, entries: IntArray) -> CellTable:
        """A table from the arrays ``packed_arrays`` gave (memory-mapped, they are shared with other readers)."""
        if len(starts) != len(keys) + 1 or (len(keys) and int(starts[-1]) != len(entries)):
            raise ValueError("the arrays of a cell table do not fit together")
        return cls(keys, starts, entries, {}, 0)

    def packed_arrays(self) -> tuple[npt.NDArray[np.uint64], IntArray, IntArray]:
        """(keys, group starts, entries) of a table without an overlay (``pack`` made it)."""
        if self._overlay:
            raise ValueError("only a packed table is kept as arrays")
        return self._keys, self._starts, self._entries

    @classmethod
    def from_pairs(cls, keys: npt.NDArray[np.uint64], entries: IntArray) -> CellTable:
        """A packed table of parallel arrays of cells and entries."""
        return cls._packed(keys.astype(np.uint64), entries.astype(np.int64))

    @classmethod
    def _packed(cls, keys: npt.NDArray[np.uint64], entries: IntArray) -> CellTable:
        order = np.argsort(keys, kind="stable")
        keys, entries = keys[order], entries[order]
        unique, first = np.unique(keys, return_index=True)
        starts = np.append(first, len(keys)).astype(np.int64)
        return cls(unique, starts, entries, {}, 0)

    def __len__(self) -> int:
        return len(self._entries) + self._overlay_size

    def adding(self, rows: Sequence[tuple[int, int]], alive: Callable[[IntArray], npt.NDArray[np.bool_]]) -> CellTable:
        """A new table with ``rows`` (cell, entry) added; repacked (keeping only ``alive`` entries) when the
        overlay has grown past an eighth of the packed part."""
        if not rows:
            return self
        if self._overlay_size + len(rows) > max(_MIN_OVERLAY, len(self._entries) // 8):
            return self.packed(alive, rows)
        overlay = dict(self._overlay)
        for cell, entry in rows:
            overlay[cell] = (*overlay.get(cell, ()), entry)
        return CellTable(self._keys, self._starts, self._entries, overlay, self._overlay_size + len(rows))

    def packed(
        self, alive: Callable[[IntArray], npt.NDArray[np.bool_]], extra: Sequence[tuple[int, int]] = ()
    ) -> CellTable:
        """Everything (plus ``extra``) packed again, dropping entries that are no longer ``alive``."""
        all_keys, all_entries = self.rows(extra)
        keep = alive(all_entries)
        return CellTable._packed(all_keys[keep], all_entries[keep])

    def rows(self, extra: Sequence[tuple[int, int]] = ()) -> tuple[npt.NDArray[np.uint64], IntArray]:
        """Every (cell, entry) of the table (and ``extra``) as two parallel arrays."""
        keys = [np.repeat(self._keys, np.diff(self._starts))]
        entries = [self._entries]
        rows = [(c, e) for c, group in self._overlay.items() for e in group] + list(extra)
        if rows:
            more = np.array(rows, dtype=np.uint64).reshape(-1, 2)
            keys.append(more[:, 0])
            entries.append(more[:, 1].astype(np.int64))
        return np.concatenate(keys), np.concatenate(entries)

    def lookup(self, keys: npt.NDArray[np.uint64]) -> IntArray:
        """Every entry stored under any of ``keys``."""
        parts: list[IntArray] = []
        if len(self._keys):
            slot = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
            for s in slot[self._keys[slot] == keys].tolist():
                parts.append(self._entries[self._starts[s] : self._starts[s + 1]])
        if self._overlay:
            for key in keys.tolist():
                extra = self._overlay.get(key)
                if extra:
                    parts.append(np.array(extra, dtype=np.int64))
        if not parts:
            return _EMPTY
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _sample_by_res(keys: npt.NDArray[np.uint64]) -> list[int]:
    """One key of each resolution present (the resolution lives in bits 52-55 of an H3 index)."""
    if not len(keys):
        return []
    res = (keys >> np.uint64(52)) & np.uint64(0xF)
    _, first = np.unique(res, return_index=True)
    return [int(keys[i]) for i in first]
