"""``geotarget fences import``: a merchant's fence file, however large, from a shell on the server.

GeoParquet is streamed in batches, every core prepares them, and each batch is stored in one transaction; a
re-run after a crash skips what was stored (``geotarget.catalog.importing``). The serving workers are told as
batches land; this process indexes nothing itself."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from api.cli_support import existing_deployment, user_errors
from geofences.batches import count_features, feature_batches
from geofences.formats import UploadLimits
from geotarget.catalog.importing import BATCH, ImportTotals, file_digest, import_batches
from geotarget.errors import NotFound
from geotarget.runtime import Runtime
from geotarget.settings import Settings
from geotarget.store.repository import EVERYONE

fences_app = typer.Typer(help="Geofence files.", no_args_is_help=True)
console = Console()


@fences_app.command("import")
def import_fences(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="GeoParquet (streamed), GeoJSON, KML, zipped Shapefile")
    ],
    merchant: Annotated[str, typer.Option("--merchant", help="Merchant id that will own the fences.")],
    repair: Annotated[bool, typer.Option(help="Fix self-intersections with make_valid.")] = False,
    radius_m: Annotated[
        float | None, typer.Option("--radius-m", help="Radius (m) for points that give none: circle fences.")
    ] = None,
) -> None:
    """Validate and store every fence in FILE; invalid ones are listed, valid ones kept. Run it again after a
    failure: what was stored is skipped (by properties.external_id, else by the row in this very file)."""
    settings = existing_deployment(Settings(cpu_workers=max(os.cpu_count() or 1, 1)))
    runtime = Runtime.open(settings, follow=False, consume=False, load_catalog=False)
    try:
        with user_errors():
            if runtime.repository.merchant(EVERYONE, merchant) is None:
                raise NotFound(f"no merchant {merchant!r}", "--merchant")
            limits = UploadLimits(max_features=settings.max_fences_per_merchant)
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=not console.is_terminal,
            ) as bar:
                task = bar.add_task(f"importing {file.name}", total=count_features(file))
                totals = import_batches(
                    runtime.fences,
                    merchant,
                    feature_batches(file, BATCH, limits),
                    file_digest(file),
                    repair=repair,
                    default_radius_m=radius_m,
                    progress=lambda done: bar.advance(task, done),
                )
    finally:
        runtime.close()
    _report(totals)


def _report(totals: ImportTotals) -> None:
    console.print(
        f"{totals.imported:,} fence(s) imported, {totals.existing:,} already stored, {len(totals.rejected):,} rejected"
    )
    if not totals.rejected:
        return
    by_problem: dict[str, list[int]] = {}
    for r in totals.rejected:
        if r.error is not None:
            by_problem.setdefault(r.error.message, []).append(r.index)
    table = Table("problem", "features", "first ones")
    for problem, rows in sorted(by_problem.items(), key=lambda item: -len(item[1])):
        table.add_row(problem, f"{len(rows):,}", ", ".join(map(str, rows[:5])) + ("…" * (len(rows) > 5)))
    console.print(table)
    raise typer.Exit(1)
