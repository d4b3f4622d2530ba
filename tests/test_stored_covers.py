"""Covers are computed once, when a fence or an offer is written, and stored beside it: a worker that starts
reads them and never covers a fence again (DESIGN §9.2)."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from geotarget.catalog import accounts, snapshot, view
from geotarget.catalog.model import OfferFields
from geotarget.catalog.snapshot import Catalog
from geotarget.runtime import Runtime
from geotarget.store import models
from geotarget.store.repository import EVERYONE
from tests.fixtures import ALFAMA_CAFE

CORNER_SHOP = {
    "type": "Feature",
    "geometry": {"type": "Point", "coordinates": [-9.1365, 38.7101]},
    "properties": {"name": "Corner shop", "radius_m": 30},
}


def _never(*_args: object, **_kwargs: object) -> object:
    raise AssertionError("a worker starting covered a fence again")


@pytest.fixture
def stocked(runtime: Runtime) -> Runtime:
    """Two fences and offers shown 0, 200 and 500 m around them, written as a merchant writes them."""
    merchant = accounts.create_merchant(runtime.repository, "Tejo", "Europe/Lisbon").id
    fences = [runtime.fences.create(merchant, f).fence.id for f in (ALFAMA_CAFE, CORNER_SHOP)]
    for metres in (0, 200, 500):
        fields = OfferFields(title=f"{metres} m", geofence_ids=tuple(fences), nearby_m=metres)
        runtime.offers.create(merchant, fields)
    return runtime


def _fresh(runtime: Runtime) -> Catalog:
    catalog = Catalog(runtime.catalog.index.res)
    catalog.load_all(runtime.repository)
    return catalog


def _reaches(catalog: Catalog) -> dict[str, dict[float, tuple[int, ...]]]:
    return {
        f: {m: tuple(cells.tolist()) for m, cells in r.items()}
        for f, r in catalog._builder.reach_covers().later()().items()
        if r
    }


def _rows(runtime: Runtime, table: type[models.Base]) -> int:
    engine = runtime.engine
    with engine.connect() as connection:
        return int(connection.scalar(sqlalchemy.select(sqlalchemy.func.count()).select_from(table)) or 0)


def test_a_starting_worker_reads_covers_and_reaches_and_computes_none(stocked, monkeypatch):
    monkeypatch.setattr(snapshot, "cover_shape", _never)
    monkeypatch.setattr(view, "reach_cover", _never)
    monkeypatch.setattr("geofences.index.cover_shape", _never)
    fresh = _fresh(stocked)
    for fence_id in stocked.catalog.index:
        assert fresh.index.cover(fence_id) == stocked.catalog.index.cover(fence_id)
    assert _reaches(fresh) == _reaches(stocked.catalog)
    assert {m for r in _reaches(fresh).values() for m in r} == {200.0, 500.0}


def test_a_moved_fence_gets_a_new_cover_and_new_reaches_and_the_old_ones_are_never_served(stocked):
    merchant = stocked.repository.merchant_named("Tejo").id
    fence_id = next(iter(stocked.catalog.index))
    old = stocked.catalog.index.cover(fence_id)
    moved = {"type": "Point", "coordinates": [-9.1420, 38.7150]}
    stocked.fences.update(merchant, fence_id, {"geometry": moved, "properties": {"radius_m": 40}})
    fresh = _fresh(stocked)
    assert fresh.index.cover(fence_id) == stocked.catalog.index.cover(fence_id) != old
    assert _reaches(fresh)[fence_id] == _reaches(stocked.catalog)[fence_id]
    assert set(stocked.repository.covers.reaches(fresh.index.res, [fence_id])[fence_id]) == {200.0, 500.0}


def test_fences_stored_without_covers_get_them_once(stocked, monkeypatch):
    covered, reached = _rows(stocked, models.FenceCover), _rows(stocked, models.ReachCover)
    assert (covered, reached) == (2, 4)
    with stocked.engine.begin() as connection:  # as stored before covers were kept
        connection.execute(sqlalchemy.delete(models.ReachCover))
        connection.execute(sqlalchemy.delete(models.FenceCover))
    first = _fresh(stocked)
    assert (_rows(stocked, models.FenceCover), _rows(stocked, models.ReachCover)) == (covered, reached)
    monkeypatch.setattr(snapshot, "cover_shape", _never)
    monkeypatch.setattr(view, "reach_cover", _never)
    second = _fresh(stocked)
    assert _reaches(second) == _reaches(first)


def test_a_cover_made_for_another_resolution_is_not_used(stocked):
    finer = Catalog(stocked.catalog.index.res + 1)
    finer.load_all(stocked.repository)
    fence_id = next(iter(stocked.catalog.index))
    assert finer.index.cover(fence_id).res == stocked.catalog.index.res + 1


def test_the_migrations_make_exactly_the_tables_the_models_declare(runtime):
    with runtime.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), models.Base.metadata)
    assert differences == []


def test_offers_read_back_share_their_field_names_and_still_copy_apart(stocked: Runtime):
    """A starting worker reads every offer: offers alike share one set of field names (pydantic keeps one per
    model, 2.3 KB of an offer's 4.3), and changing a copy changes neither the original nor its neighbours."""
    first, second, third = stocked.repository.offers(EVERYONE)
    assert first.model_fields_set is second.model_fields_set is third.model_fields_set
    assert first.caps.model_fields_set is second.caps.model_fields_set
    names = set(first.model_fields_set)
    changed = first.model_copy(update={"title": "Changed"})
    assert changed.title == "Changed" and first.title == "0 m"
    assert set(second.model_fields_set) == set(first.model_fields_set) == names
    assert first.model_dump(exclude_unset=True) == first.model_dump()  # every field was read from its row


def test_a_writer_s_sync_returns_once_the_reaches_another_thread_took_are_stored(runtime, monkeypatch):
    """The follower's sync may apply a writer's change first; the writer's own sync, finding nothing left to
    apply, still returns only once that change's reaches are stored, so a worker starting next reads them."""
    merchant = accounts.create_merchant(runtime.repository, "Tejo", "Europe/Lisbon").id
    fence_id = runtime.fences.create(merchant, ALFAMA_CAFE).fence.id
    with monkeypatch.context() as unsynced:
        unsynced.setattr(runtime.offers, "_changed", lambda: None)  # stored in SQL, applied nowhere yet
        runtime.offers.create(merchant, OfferFields(title="500 m", geofence_ids=(fence_id,), nearby_m=500))
    storing, release = threading.Event(), threading.Event()
    put = runtime.repository.covers.put_reaches

    def slow_put(reaches: object) -> None:
        storing.set()
        release.wait(10)
        put(reaches)

    monkeypatch.setattr(runtime.repository.covers, "put_reaches", slow_put)
    follower = threading.Thread(target=runtime.catalog.sync, args=(runtime.repository,))
    follower.start()
    assert storing.wait(10)
    writer_done = threading.Event()
    writer = threading.Thread(target=lambda: (runtime.catalog.sync(runtime.repository), writer_done.set()))
    writer.start()
    assert not writer_done.wait(0.5), "the writer's sync returned before its reaches were stored"
    release.set()
    follower.join(10)
    writer.join(10)
    assert writer_done.is_set()
    assert set(runtime.repository.covers.reaches(runtime.catalog.index.res, [fence_id])[fence_id]) == {500.0}
