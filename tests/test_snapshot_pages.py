"""A worker holds the pages of a catalog snapshot it has read, not the whole file (geotarget/store/catalog_files.py):
the kernel used to map a 2 MB folio per random read, and a minute of requests over a 1,000,000-fence snapshot
put all of its 2 GB in every worker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from geofences.rows import Column
from geotarget.store.catalog_files import SnapshotFolder

MB = 2**20


def _file_mb() -> float:
    """This process's resident pages of mapped files."""
    status = Path("/proc/self/status").read_text().splitlines()
    [kb] = [line.split()[1] for line in status if line.startswith("RssFile:")]
    return int(kb) / 1024


def test_random_reads_of_a_written_snapshot_bring_in_only_their_own_pages(tmp_path):
    folder = SnapshotFolder(tmp_path)
    rows = np.arange(64 * MB // 8, dtype=np.int64)  # 64 MB
    with folder.writing(wait=True):
        folder.write(seq=1, res=9, arrays={"rows": rows, "none": np.zeros(0)}, meta={})
    snapshot = folder.newest(res=9, at_most=1)
    assert snapshot is not None
    mapped = snapshot.arrays["rows"]
    assert not mapped.flags.writeable and len(snapshot.arrays["none"]) == 0
    before = _file_mb()
    picked = np.random.default_rng(7).integers(0, len(rows), 200)
    assert [int(mapped[i]) for i in picked] == picked.tolist()
    assert _file_mb() - before < 200 * 16 * 1024 / MB, "more than 16 KB per read"  # 4 KB pages, a few shared
    assert np.array_equal(mapped, rows)  # and it is all there


def test_a_snapshot_array_of_python_objects_is_refused(tmp_path):
    (tmp_path / "000000000001-9-1").mkdir()
    np.save(tmp_path / "000000000001-9-1" / "evil.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "000000000001-9-1" / "meta.json").write_text('{"format": 3, "seq": 1, "res": 9}')
    with pytest.raises(ValueError, match="Python objects"):
        SnapshotFolder(tmp_path).newest(res=9, at_most=1)


def test_rows_added_after_a_snapshot_go_beside_its_mapped_column_never_into_a_copy_of_it():
    stored = np.frombuffer(np.arange(6, dtype=np.float64).tobytes(), dtype=np.float64).reshape(3, 2)  # read-only
    column = Column(stored)
    for row in range(3, 2_000):
        column.set(row, (row, -row))
    assert column.stored is stored and len(column) == 2_000
    assert column[1].tolist() == [2.0, 3.0] and column[1_999].tolist() == [1_999.0, -1_999.0]
    assert column[np.array([1_500, 0, 2, 3])].tolist() == [[1_500, -1_500], [0, 1], [4, 5], [3, -3]]
    assert column[np.array([2, 0])].tolist() == [[4, 5], [0, 1]]
