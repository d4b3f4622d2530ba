"""Groups of numbers, byte strings and cells laid end to end in flat arrays, as a catalog snapshot keeps them:
``flat[at[n]:at[n + 1]]`` is group ``n``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt


def interned(values: Iterable[Any]) -> dict[Any, int]:
    """Each distinct value, numbered in the order first seen."""
    numbered: dict[Any, int] = {}
    for value in values:
        numbered.setdefault(value, len(numbered))
    return numbered


def blob(parts: Iterable[bytes]) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """Byte strings as one array and their starts (one more than there are strings)."""
    chunks = list(parts)
    at = np.zeros(len(chunks) + 1, dtype=np.int64)
    np.cumsum([len(c) for c in chunks], out=at[1:])
    return np.frombuffer(b"".join(chunks), dtype=np.uint8), at


def cells(groups: Sequence[Iterable[int]]) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]]:
    arrays = [np.asarray(list(g) if not isinstance(g, np.ndarray) else g, dtype=np.uint64) for g in groups]
    at = np.zeros(len(arrays) + 1, dtype=np.int64)
    np.cumsum([len(a) for a in arrays], out=at[1:])
    flat = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.uint64)
    return flat, at


def groups(groups: Sequence[Sequence[int]]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Groups of numbers laid end to end, and where each starts (one more than there are groups)."""
    at = np.zeros(len(groups) + 1, dtype=np.int64)
    np.cumsum([len(g) for g in groups], out=at[1:])
    return np.fromiter((n for g in groups for n in g), dtype=np.int64, count=int(at[-1])), at


def grouped_by(
    values: npt.NDArray[np.int64], keys: npt.NDArray[np.int64], count: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``values`` grouped by their ``keys`` (0 to ``count`` - 1; in their order within a group), and where each
    key's group starts."""
    order = np.argsort(keys, kind="stable")
    at = np.searchsorted(keys[order], np.arange(count + 1)).astype(np.int64)
    return values[order].astype(np.int64), at


def owners(at: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """For each item of groups laid end to end (``at``: where each starts), the number of its group."""
    return np.repeat(np.arange(len(at) - 1, dtype=np.int64), np.diff(at))


def gather(
    flat: npt.NDArray[np.uint64], at: npt.NDArray[np.int64], groups: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]]:
    """The cells of each of ``groups`` (repeats allowed), and the position in ``groups`` each came from."""
    starts, sizes = at[groups], at[groups + 1] - at[groups]
    owners = np.repeat(np.arange(len(groups), dtype=np.int64), sizes)
    offsets = np.arange(int(sizes.sum()), dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return flat[np.repeat(starts, sizes) + offsets], owners
