"""A large fence file imported for one merchant (``geotarget fences import``), batch by batch.

Batches are prepared (parsed, validated, covered) on every core of the CPU pool while earlier ones are stored;
each batch is stored in one transaction, so a crash loses at most the batches in flight. Every feature has an
external id, its own ``properties.external_id`` or else ``<file digest>:<row>``, and a re-run skips the
features already stored *before* preparing them: it resumes where a crash left off, in seconds, and never
stores a fence twice. The merchant's quota (``MAX_FENCES_PER_MERCHANT``) holds per batch.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from geotarget.catalog.fences import BulkResult, FenceService
from geotarget.catalog.preparing import Prepared, prepare_fences

BATCH = 2_000  # features per transaction: large enough that a round of inserts dominates, small enough to lose


@dataclass
class ImportTotals:
    imported: int = 0
    existing: int = 0  # stored by an earlier run (or earlier in this file): left as they are
    rejected: list[BulkResult] = field(default_factory=list)  # ``index`` is the feature's row in the file


def file_digest(path: Path) -> str:
    """What names a file's rows that bring no external id of their own: the same bytes, the same names."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def with_external_id(feature: Any, name: str) -> Any:
    """The feature with ``properties.external_id`` set to ``name`` unless it has one (or is not an object); a
    whole number there (a store number column) is read as its digits."""
    if not isinstance(feature, dict):
        return feature
    properties = feature.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    given = properties.get("external_id")
    if isinstance(given, int) and not isinstance(given, bool):
        given = str(given)
    return {**feature, "properties": {**properties, "external_id": name if given is None else given}}


def external_id_of(feature: Any) -> str | None:
    properties = feature.get("properties") if isinstance(feature, dict) else None
    value = properties.get("external_id") if isinstance(properties, dict) else None
    return value if isinstance(value, str) else None


def import_batches(
    service: FenceService,
    merchant_id: str,
    batches: Iterable[list[Any]],
    digest: str,
    *,
    repair: bool = False,
    default_radius_m: float | None = None,
    progress: Callable[[int], None] = lambda _: None,
) -> ImportTotals:
    """Import every batch; ``progress`` hears how many more features were dealt with."""
    totals = ImportTotals()
    prepare = partial(prepare_fences, repair=repair, bulk=False, default_radius_m=default_radius_m)
    in_flight: deque[tuple[list[int], Future[list[Prepared]]]] = deque()
    first_row = 0
    for batch in batches:
        keyed = [with_external_id(f, f"{digest}:{first_row + i}") for i, f in enumerate(batch)]
        known = {e for f in keyed if (e := external_id_of(f)) is not None}
        stored = service.repository.fences_by_external_id(merchant_id, list(known)) if known else {}
        new = [i for i, f in enumerate(keyed) if external_id_of(f) not in stored]
        totals.existing += len(batch) - len(new)
        progress(len(batch) - len(new))
        if new:
            job = service.pool.submit(prepare, [keyed[i] for i in new], service.limits)
            in_flight.append(([first_row + i for i in new], job))
        first_row += len(batch)
        while len(in_flight) > max(service.pool.workers, 1):
            _store(service, merchant_id, *in_flight.popleft(), totals, progress)
    while in_flight:
        _store(service, merchant_id, *in_flight.popleft(), totals, progress)
    return totals


def _store(
    service: FenceService,
    merchant_id: str,
    rows: list[int],
    prepared: Future[list[Prepared]],
    totals: ImportTotals,
    progress: Callable[[int], None],
) -> None:
    results = service.store_prepared(merchant_id, prepared.result(), index=False)
    for result in results:
        row = rows[result.index]
        if result.error is not None:
            totals.rejected.append(BulkResult(row, error=result.error))
        elif result.existing:
            totals.existing += 1
        else:
            totals.imported += 1
    progress(len(results))
