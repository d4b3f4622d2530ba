"""A worker starts from the newest catalog snapshot on its machine and the changes logged after it, and serves
exactly what a worker reading everything from SQL serves (DESIGN §9.2); a snapshot it cannot trust is never
used."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from geofences import LatLng
from geofences.shapes import moved
from geotarget.catalog import accounts, frozen, starting
from geotarget.catalog.lazy import LazyMap
from geotarget.catalog.model import OfferFields
from geotarget.catalog.snapshot import Catalog
from geotarget.catalog.starting import open_catalog, write_snapshot
from geotarget.runtime import Runtime
from geotarget.serving import search
from geotarget.serving.matcher import MatchRequest
from geotarget.serving.types import Attributes
from geotarget.store.catalog_files import SnapshotFolder
from geotarget.store.repository import EVERYONE
from tests.fixtures import ALFAMA_CAFE, CHIADO_KIOSK

LISBON = LatLng(38.7110, -9.1350)
MORNINGS = {"days": ["mon", "tue"], "start": "07:00", "end": "10:00"}


def store(lon: float, lat: float, *tags: str) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": {"name": f"Store {lon:.4f}", "radius_m": 40, "tags": list(tags)},
    }


@pytest.fixture
def chain(runtime: Runtime) -> tuple[Runtime, str]:
    """Fences and offers of every kind a snapshot keeps: by id, by tag, over all fences, near, triggered,
    scheduled, paced, rotating by clicks, and one fence drawn only for an audience."""
    merchant = accounts.create_merchant(runtime.repository, "Tejo", "Europe/Lisbon").id
    cafe = runtime.fences.create(merchant, ALFAMA_CAFE).fence.id
    kiosk = runtime.fences.create(merchant, CHIADO_KIOSK).fence.id
    for i in range(6):
        runtime.fences.create(merchant, store(-9.1400 + i * 0.002, 38.7130, "lisbon"))
    rival = store(-9.1350, 38.7100)
    runtime.fences.create(merchant, rival | {"properties": rival["properties"] | {"purpose": "audience"}})
    offers: list[dict[str, Any]] = [
        {"title": "inside", "geofence_ids": [cafe]},
        {"title": "near", "geofence_ids": [cafe, kiosk], "nearby_m": 300, "priority": 80},
        {"title": "chain", "geofence_tags": ["lisbon"], "nearby_m": 150, "special": True},
        {"title": "everywhere", "all_geofences": True},
        {"title": "pushed", "geofence_tags": ["lisbon"], "trigger": {"on": "dwell", "dwell_s": 600}},
        {"title": "mornings", "geofence_ids": [kiosk], "schedule": {"windows": [MORNINGS]}},
        {"title": "paced", "geofence_ids": [kiosk], "daily_budget": 10, "pacing": "even"},
        {"title": "learns", "geofence_ids": [cafe], "variants": [{"id": "a"}, {"id": "b"}], "rotation": "optimized"},
    ]  # fmt: skip
    for body in offers:
        runtime.offers.create(merchant, OfferFields.model_validate(body))
    return runtime, merchant


def loaded_from_sql(runtime: Runtime) -> Catalog:
    catalog = Catalog(runtime.catalog.index.res)
    catalog.load_all(runtime.repository)
    return catalog


def started(runtime: Runtime, folder: Path) -> Catalog:
    """A worker's start as ``Runtime.open`` makes it (waiting for a snapshot it writes)."""
    catalog = Catalog(runtime.catalog.index.res)
    writer = open_catalog(catalog, runtime.repository, folder)
    if writer is not None:
        writer.join()
    return catalog


def served(catalog: Catalog) -> dict[str, Any]:
    """Everything a worker answers from: pairs, index, offers per fence, trigger tables, loops' offers, and
    ranked answers around the fences."""
    view = catalog.view
    pairs = sorted(
        (view.offers[r].id, view.offers[r].version, view.fence_ids[r], float(view.nearby_m[r]),
         float(view.static[r]), tuple(view.bounds[r].tolist()), view.zones[r],
         view.schedule_of[view.schedules[r]] if view.schedules[r] >= 0 else None)
        for r in range(view.count) if view.alive[r]
    )  # fmt: skip
    fences = sorted(catalog.index)
    points = [moved(LISBON, east, north) for east in range(-800, 801, 40) for north in range(-300, 301, 40)]
    requests = [
        MatchRequest(datetime(2026, 12, 7, h, 30, tzinfo=UTC), None, Attributes(), pushed=pushed)
        for h in (8, 15)
        for pushed in (False, True)
    ]
    return {
        "pairs": pairs,
        "covers": {f: catalog.index.cover(f) for f in fences},
        "metas": {f: catalog.meta(f) for f in fences},
        "on": {f: sorted((o.id, o.version) for o in catalog.offers_on(f)) for f in fences},
        "inside": [catalog.index.query(p) for p in points],
        "near": [catalog.index.nearby(p, 200) for p in points[::7]],
        "triggered": {f: sorted(o.id for o in offers) for f, offers in catalog.triggered.items()},
        "dwell": catalog.dwell_thresholds,
        "audience_fences": catalog.audience_fences,
        "paced": sorted(o.id for o in catalog.paced_offers()),
        "optimized": sorted(o.id for o in catalog.optimized_offers()),
        "answers": [
            [(c.offer.id, c.fence_id, c.inside, round(c.distance_m, 6)) for c in search.ranked(view, p, r)]
            for p in points
            for r in requests
        ],
    }


def change_everything(runtime: Runtime, merchant: str) -> None:
    """Writes after a snapshot: a new store with the chain's tag, a fence moved, one deleted, offers changed,
    added and deleted."""
    repository = runtime.repository
    fences = {f.name: f for f in repository.fences(merchant)}
    offers = {o.title: o for o in repository.offers(merchant)}
    runtime.fences.create(merchant, store(-9.1330, 38.7090, "lisbon"))  # the chain's offers reach it at once
    runtime.fences.update(merchant, fences["Store -9.1400"].id, store(-9.1395, 38.7125, "lisbon", "riverside"))
    runtime.fences.delete(merchant, fences["Store -9.1380"].id)
    runtime.offers.update(merchant, offers["near"].id, {"nearby_m": 450, "priority": 20})
    runtime.offers.update(merchant, offers["paced"].id, {"pacing": "asap"})
    runtime.offers.delete(merchant, offers["inside"].id)
    runtime.offers.create(merchant, OfferFields(title="riverside", geofence_tags=("riverside",), nearby_m=100))


def test_a_worker_started_from_a_snapshot_serves_what_one_reading_sql_serves(chain, tmp_path):
    runtime, merchant = chain
    folder = tmp_path / "catalog"
    first = started(runtime, folder)  # no snapshot yet: from SQL, then it writes one
    assert SnapshotFolder(folder).newest(first.index.res, first.seq) is not None
    restored = started(runtime, folder)
    assert isinstance(restored._offers, LazyMap)  # it did start from the snapshot
    assert served(restored) == served(loaded_from_sql(runtime))

    change_everything(runtime, merchant)
    assert restored.sync(runtime.repository) > 0  # the writes, as the overlay of the snapshot
    later = started(runtime, folder)  # the snapshot and the change log after it
    truth = served(loaded_from_sql(runtime))
    assert served(restored) == truth
    assert served(later) == truth
    assert later.offers_on(next(f.id for f in runtime.repository.fences(merchant) if f.name == "Store -9.1330"))


def test_a_start_far_behind_its_snapshot_writes_a_newer_one(chain, tmp_path, monkeypatch):
    runtime, merchant = chain
    folder = tmp_path / "catalog"
    first = started(runtime, folder)
    monkeypatch.setattr(starting, "COMPACT_AFTER", 3)
    change_everything(runtime, merchant)
    compacted = started(runtime, folder)  # applies the changes, then writes them into a new snapshot
    newest = SnapshotFolder(folder).newest(compacted.index.res, 10**9)
    assert newest is not None and newest.seq == compacted.seq > first.seq
    assert served(started(runtime, folder)) == served(loaded_from_sql(runtime))


def test_the_loops_process_writes_a_newer_snapshot_once_its_catalog_is_far_ahead(chain, tmp_path, monkeypatch):
    """Compaction while running, not only at start: a round writes when more than COMPACT_AFTER changes were
    applied beyond the machine's newest snapshot, and a round with nothing new writes nothing."""
    runtime, merchant = chain
    folder = tmp_path / "catalog"
    running = started(runtime, folder)
    monkeypatch.setattr(starting, "COMPACT_AFTER", 3)

    def snapshots() -> list[str]:
        return sorted(p.name for p in folder.iterdir() if p.name[0].isdigit())

    [first] = snapshots()
    starting.compact_when_behind(running, runtime.repository, folder)
    assert snapshots() == [first]
    change_everything(runtime, merchant)
    running.sync(runtime.repository)
    starting.compact_when_behind(running, runtime.repository, folder)
    assert SnapshotFolder(folder).newest_seq(running.index.res) == running.seq
    [_, newer] = snapshots()
    starting.compact_when_behind(running, runtime.repository, folder)
    assert snapshots() == [first, newer]
    assert served(started(runtime, folder)) == served(loaded_from_sql(runtime))


def test_a_snapshot_of_another_history_is_never_used(chain, tmp_path):
    runtime, _ = chain
    folder = tmp_path / "catalog"
    first = started(runtime, folder)
    snapshot = SnapshotFolder(folder).newest(first.index.res, first.seq)
    assert snapshot is not None
    arrays, meta = dict(snapshot.arrays), dict(snapshot.meta)
    # the same change number in a database restored from an older backup, or in another database
    SnapshotFolder(folder).write(snapshot.seq, snapshot.res, arrays, meta | {"mark": "fence:other:2020-01-01"})
    fresh = started(runtime, folder)  # reads SQL and writes a snapshot of this history
    newest = SnapshotFolder(folder).newest(fresh.index.res, fresh.seq)
    assert newest is not None and newest.meta["mark"] == runtime.repository.change_mark(newest.seq)
    assert served(fresh) == served(loaded_from_sql(runtime))


def test_a_snapshot_that_cannot_be_read_is_skipped_for_sql(chain, tmp_path, caplog):
    runtime, _ = chain
    folder = tmp_path / "catalog"
    first = started(runtime, folder)
    snapshot = SnapshotFolder(folder).newest(first.index.res, first.seq)
    assert snapshot is not None
    written = next(p for p in folder.iterdir() if p.name.startswith(f"{snapshot.seq:012d}"))
    (written / "pair_fence.npy").write_bytes(b"\x93NUMPY garbage")
    fresh = started(runtime, folder)
    assert "cannot be used" in caplog.text
    assert served(fresh) == served(loaded_from_sql(runtime))


def test_a_snapshot_is_written_whole_or_not_at_all(chain, tmp_path):
    runtime, _ = chain
    folder = SnapshotFolder(tmp_path / "catalog")
    catalog = started(runtime, folder.root)
    (folder.root / ".writing-died").mkdir()  # a writer killed half-way
    with folder.writing(wait=True) as alone:
        assert alone
        with folder.writing(wait=False) as another:  # another process: it does not write now
            assert not another
        assert write_snapshot(catalog, runtime.repository, folder)
        assert write_snapshot(catalog, runtime.repository, folder)
    written = sorted(p.name for p in folder.root.iterdir() if p.name != ".lock")
    assert len(written) == 2 and all(name.startswith(f"{catalog.seq:012d}-10-") for name in written)  # the newest two


def test_workers_without_a_snapshot_read_sql_one_at_a_time_and_the_others_map_its_snapshot(chain, tmp_path):
    runtime, _ = chain
    folder = tmp_path / "catalog"
    reads: list[str] = []
    original = runtime.repository.fences

    def counted(owner: Any, ids: Any = None) -> Any:
        if ids is None:
            reads.append(threading.current_thread().name)  # a whole read of SQL: a start from SQL
        return original(owner, ids)

    runtime.repository.fences = counted  # type: ignore[method-assign]
    workers = [threading.Thread(target=started, args=(runtime, folder), name=f"worker {i}") for i in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(reads) == 1  # one of them read SQL; the two others waited and mapped the snapshot it wrote


def test_a_snapshot_written_by_another_version_of_the_offer_model_is_never_used(chain, tmp_path, monkeypatch):
    runtime, _ = chain
    folder = tmp_path / "catalog"
    started(runtime, folder)
    monkeypatch.setattr(frozen, "offer_schema", lambda: "another version")  # an upgrade that changed offers
    fresh = started(runtime, folder)  # reads SQL and writes a snapshot of this version
    newest = SnapshotFolder(folder).newest(fresh.index.res, fresh.seq)
    assert newest is not None and newest.meta["offer_schema"] == "another version"
    assert served(fresh) == served(loaded_from_sql(runtime))


def test_a_worker_catching_up_on_a_huge_bulk_reads_it_in_chunks(chain):
    """A worker starting behind a bulk of 100,000s of offers asks SQL for all of them by id: more than PostgreSQL
    takes as parameters of one statement (65,535; SQLite's limit depends on how it was built)."""
    runtime, merchant = chain
    ids = [o.id for o in runtime.repository.offers(merchant)]
    unknown = [f"off_gone{i}" for i in range(70_000)]
    asked = [*unknown[:35_000], *reversed(ids), *unknown[35_000:]]
    assert [o.id for o in runtime.repository.offers(EVERYONE, asked)] == ids  # oldest first, as always


def test_a_snapshot_numbers_fences_near_each_other_together_and_their_offers_and_pairs_after_them(runtime, tmp_path):
    """Stores written in no spatial order (Lisbon, Porto, Lisbon, ...) are numbered city by city, so that what
    one request reads lies on a few pages of each mapped array (geotarget/catalog/frozen.py)."""
    merchant = accounts.create_merchant(runtime.repository, "Two cities", "Europe/Lisbon").id
    porto = LatLng(41.1496, -8.6110)
    city_of = {}
    for i in range(12):
        centre = (LISBON, porto)[i % 2]
        spot = moved(centre, 150.0 * i, 90.0 * (i % 3))
        fence = runtime.fences.create(merchant, store(spot.lon, spot.lat)).fence.id
        city_of[fence] = i % 2
        runtime.offers.create(merchant, OfferFields(title=f"offer {i}", geofence_ids=(fence,)))
    started(runtime, tmp_path / "catalog")
    snapshot = SnapshotFolder(tmp_path / "catalog").newest(runtime.catalog.index.res, 10**9)
    assert snapshot is not None
    arrays = snapshot.arrays
    cities = [city_of[name.decode()] for name in arrays["fence_id"].tolist()]
    assert cities in ([0] * 6 + [1] * 6, [1] * 6 + [0] * 6)
    assert arrays["pair_fence"].tolist() == sorted(arrays["pair_fence"].tolist())
    first_fence = [int(arrays["offer_fences"][arrays["offer_fences_at"][n]]) for n in range(12)]
    assert first_fence == sorted(first_fence)
