"""A worker's start: from the newest catalog snapshot of this machine and the changes logged after it. Without one
it can use, it reads SQL and writes one first; when the one it used is far behind the log, it writes a newer one
in the background (a compaction: the next start applies fewer changes).

A snapshot is used only when the change it was written at is the same change in this database (kind, entity and
time): a database restored from an older backup, or another database, never gets a snapshot of a different
history. A snapshot that cannot be read is logged and skipped; SQL is always the way back.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from geotarget.catalog.frozen import thaw
from geotarget.catalog.snapshot import Catalog
from geotarget.store.catalog_files import SnapshotFolder
from geotarget.store.repository import Repository

log = logging.getLogger(__name__)

COMPACT_AFTER = 2_000  # changes applied after a snapshot at start; more and the starting worker writes a new one
COMPACT_EVERY_S = 600.0  # how often the loops process looks whether the machine's newest snapshot is that far behind


def open_catalog(catalog: Catalog, repository: Repository, snapshots: Path) -> threading.Thread | None:
    """Load ``catalog``; returns the thread writing a newer snapshot, if one is being written.

    Without a usable snapshot, one worker of the machine at a time reads SQL, writes a snapshot and starts again
    from it, while the others wait and then map the snapshot it wrote: a million fences read from SQL take
    gigabytes, once, not once per worker."""
    folder = SnapshotFolder(snapshots)
    behind = _restored(catalog, repository, folder)
    if behind is None:
        with folder.writing(wait=True):
            behind = _restored(catalog, repository, folder)  # written by the worker that held it before
            if behind is None:
                catalog.load_all(repository)
                if not len(catalog.index) or not _written(catalog, repository, folder):
                    return None
                behind = _restored(catalog, repository, folder)  # the compact form, and the SQL objects let go
                if behind is None:
                    catalog.load_all(repository)
                    return None
    if behind < COMPACT_AFTER:
        return None
    writer = threading.Thread(target=_compact, args=(catalog, repository, folder), name="snapshot")
    writer.daemon = True
    writer.start()
    return writer


def write_snapshot(catalog: Catalog, repository: Repository, folder: SnapshotFolder) -> bool:
    """Write a snapshot of ``catalog`` now (the caller holds ``folder.writing``)."""
    began = time.perf_counter()
    seq, arrays, meta = catalog.frozen()
    mark = repository.change_mark(seq)
    if mark is None:
        return False
    folder.write(seq, catalog.index.res, arrays, meta | {"mark": mark})
    log.info("wrote a catalog snapshot at change %d in %.1f s", seq, time.perf_counter() - began)
    return True


def compact_when_behind(catalog: Catalog, repository: Repository, snapshots: Path) -> None:
    """Write a newer snapshot when this catalog has applied more than ``COMPACT_AFTER`` changes beyond the
    machine's newest one. Run by the loops process (one per machine, serving nothing) every ``COMPACT_EVERY_S``,
    so that a machine that takes writes for weeks without a restart still starts its next workers in seconds."""
    folder = SnapshotFolder(snapshots)
    newest = folder.newest_seq(catalog.index.res)
    if len(catalog.index) and catalog.seq - (newest if newest is not None else 0) > COMPACT_AFTER:
        _compact(catalog, repository, folder)


def _compact(catalog: Catalog, repository: Repository, folder: SnapshotFolder) -> None:
    """Write a newer snapshot unless another process is writing one."""
    with folder.writing(wait=False) as alone:
        if alone:
            _written(catalog, repository, folder)


def _written(catalog: Catalog, repository: Repository, folder: SnapshotFolder) -> bool:
    """A snapshot that cannot be written (disk full, the process closing) only means the next start reads SQL or
    more of the log: logged, never raised."""
    try:
        return write_snapshot(catalog, repository, folder)
    except Exception:
        log.warning("could not write a catalog snapshot in %s", folder.root, exc_info=True)
        return False


def _restored(catalog: Catalog, repository: Repository, folder: SnapshotFolder) -> int | None:
    """Changes applied after the snapshot started from, or None when no snapshot could be used."""
    try:
        latest = repository.latest_change()
        snapshot = folder.newest(catalog.index.res, latest)
        if snapshot is None or snapshot.meta.get("mark") != repository.change_mark(snapshot.seq):
            return None
        kept = len(snapshot.arrays["fence_id"]) + len(snapshot.arrays["offer_id"])
        if latest - snapshot.seq > max(COMPACT_AFTER, kept // 2):
            return None  # much of it changed since: reading it all from SQL costs less than the change log
        catalog.restore(thaw(snapshot.arrays, snapshot.meta, snapshot.res), snapshot.seq, repository)
    except (OSError, ValueError, KeyError, IndexError, TypeError) as error:
        log.warning("the catalog snapshot in %s cannot be used (%s): reading SQL", folder.root, error)
        return None
    return catalog.sync(repository)
