"""Catalog snapshots on this machine's disk: one folder per change-log position, of numpy arrays and one JSON
file. Every worker of the machine maps the arrays read-only, so their pages are in memory once, and starts from
them instead of reading and decoding every fence and offer from SQL.

Serving reads a few rows here and there of every array. The kernel would map a whole large folio (2 MB) of a
file it holds in its page cache for each such read, and read ahead around it from disk: at 1,000,000 fences a
minute of requests put the whole 2 GB snapshot in each worker's memory. So a written snapshot is dropped from
the page cache, and the workers map it for random reads (``MADV_RANDOM``): a read brings in its own 4 KB page,
and what a worker holds is what it has read.

A snapshot is written to a temporary folder and renamed into a folder of its own: a reader sees all of one or
nothing. One writer at a time per machine (a lock file); the newest two are kept. Arrays are read without
pickle: a file here is data, never code.
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

log = logging.getLogger(__name__)

FORMAT = 3  # moves on when the arrays change meaning; older snapshots are then ignored
_KEEP = 2
_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
_META = "meta.json"


@dataclass(frozen=True)
class Snapshot:
    """One stored snapshot: the catalog as it was once every change up to ``seq`` was applied."""

    seq: int
    res: int
    arrays: Mapping[str, npt.NDArray[Any]]
    meta: dict[str, Any]


class SnapshotFolder:
    def __init__(self, root: Path) -> None:
        self.root = root

    def newest(self, res: int, at_most: int) -> Snapshot | None:
        """The newest whole snapshot at ``res`` of a change-log position this database has reached (a snapshot
        ahead of the log is of another database, or of one restored from a backup: never used)."""
        for seq, _, folder in sorted(self._folders(res), reverse=True):
            if seq <= at_most:
                return self._read(folder, seq, res)
        return None

    def newest_seq(self, res: int) -> int | None:
        """The change-log position of the newest whole snapshot at ``res`` (nothing is mapped)."""
        return max((seq for seq, _, _ in self._folders(res)), default=None)

    def write(self, seq: int, res: int, arrays: Mapping[str, npt.NDArray[Any]], meta: dict[str, Any]) -> None:
        """Store a snapshot (the caller holds ``writing``). Each goes to a folder of its own, never written again:
        a reader of an older one that is pruned meanwhile fails to read it, it never reads two mixed."""
        for left in self.root.glob(".writing-*"):  # by a writer that died: nobody else writes now
            shutil.rmtree(left, ignore_errors=True)
        temporary = Path(tempfile.mkdtemp(prefix=".writing-", dir=self.root))
        try:
            for name, array in arrays.items():
                _save(temporary / f"{name}.npy", array)
            (temporary / _META).write_bytes(orjson.dumps({"format": FORMAT, "seq": seq, "res": res, **meta}))
            temporary.rename(self.root / f"{seq:012d}-{res}-{time.time_ns()}")
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
        for *_, old in sorted(self._folders(res), reverse=True)[_KEEP:]:
            shutil.rmtree(old, ignore_errors=True)

    @contextmanager
    def writing(self, wait: bool) -> Iterator[bool]:
        """Hold the machine's one right to write snapshots (``wait``: until it is free); yields whether held.
        The lock is the kernel's: a process that dies lets it go."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a+b") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _folders(self, res: int) -> Iterator[tuple[int, int, Path]]:
        """(seq, when written, folder) of every whole snapshot at ``res``."""
        if not self.root.is_dir():
            return
        for folder in self.root.iterdir():
            seq, at, written = [*folder.name.split("-"), "", ""][:3]
            if seq.isdigit() and at == str(res) and written.isdigit() and (folder / _META).is_file():
                yield int(seq), int(written), folder

    @staticmethod
    def _read(folder: Path, seq: int, res: int) -> Snapshot | None:
        meta = orjson.loads((folder / _META).read_bytes())
        if meta.get("format") != FORMAT or meta.get("seq") != seq or meta.get("res") != res:
            log.warning("ignoring the catalog snapshot %s: written by another version", folder)
            return None
        return Snapshot(seq, res, {p.stem: _mapped(p) for p in folder.glob("*.npy")}, meta)


def _save(path: Path, array: npt.NDArray[Any]) -> None:
    """Write one array and drop it from the page cache (see the module's docstring)."""
    with path.open("wb") as file:
        np.save(file, np.ascontiguousarray(array), allow_pickle=False)
        file.flush()
        os.fsync(file.fileno())  # only clean pages can be dropped
        os.posix_fadvise(file.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def _mapped(path: Path) -> npt.NDArray[Any]:
    """A read-only array over the mapped ``.npy`` file, mapped for random reads; a plain ndarray (numpy's memmap
    class costs microseconds on every slice). Only plain dtypes: a file here is data, never pickled code."""
    with path.open("rb") as file:
        version = np.lib.format.read_magic(file)
        if version not in _HEADERS:
            raise ValueError(f"{path.name}: .npy format {version}")
        shape, fortran, dtype = _HEADERS[version](file)
        if dtype.hasobject:
            raise ValueError(f"{path.name}: an array of Python objects")
        offset = file.tell()
        mapped = mmap.mmap(file.fileno(), 0, prot=mmap.PROT_READ)
    mapped.madvise(mmap.MADV_RANDOM)
    count = int(np.prod(shape, dtype=np.int64))
    array = np.frombuffer(mapped, dtype=dtype, count=count, offset=offset)
    return array.reshape(shape, order="F" if fortran else "C")
