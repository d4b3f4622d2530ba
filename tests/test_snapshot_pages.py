"""A worker holds the pages of a catalog snapshot it has read, not the whole file (geotarget/store/catalog_files.py):
the kernel used to map a 2 MB folio per random read, and a minute of requests over a 1,000,000-fence snapshot
put all of its 2 GB in every worker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

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
