"""``geotarget serve`` (and ``demo``): kept apart from the other commands so that starting a server imports only
what launching needs. The workers import the API themselves (they are fresh processes); every module this
launcher imports on top of that only delays them."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console

from api.cli_support import reachable_cluster
from api.logs import log_config
from api.loops_process import LoopsProcess
from geotarget.metrics import MULTIPROCESS_DIR
from geotarget.settings import Settings
from geotarget.store import database
from geotarget.store.embedded_redis import EmbeddedRedis

console = Console()


def _admin_key(settings: Settings) -> str:
    """The configured admin key, else one kept in the data directory (generated on first start)."""
    if settings.admin_key:
        return settings.admin_key
    path = settings.data_dir / "admin.key"
    if path.exists():
        return path.read_text().strip()
    key = f"gt_admin_{secrets.token_urlsafe(24)}"
    path.write_text(key + "\n")
    path.chmod(0o600)
    console.print(f"[bold]No GEOTARGET_ADMIN_KEY set; generated one[/] (kept in {path}):\n  {key}")
    return key


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (they share Redis and the database).")] = 1,
    demo: Annotated[bool, typer.Option(help="Load the demo city and print keys to try.")] = False,
    loop: Annotated[
        Literal["auto", "asyncio", "uvloop"], typer.Option(help="Event loop (auto: uvloop where installed).")
    ] = "auto",
) -> None:
    """Serve the API and web pages; with nothing configured, SQLite and a private embedded Redis."""
    import uvicorn

    from api.http_protocol import DeadlineHttpToolsProtocol

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["GEOTARGET_ADMIN_KEY"] = _admin_key(settings)
    embedded = None
    if not settings.redis_url:
        embedded = EmbeddedRedis(settings.data_dir.resolve() / "redis")
        os.environ["GEOTARGET_REDIS_URL"] = embedded.start()
        embedded.supervise()  # started again within a second if it dies
        url = os.environ["GEOTARGET_REDIS_URL"]
        console.print(f"No GEOTARGET_REDIS_URL set; started an embedded Redis at {url}", soft_wrap=True)  # unbroken
    os.environ["GEOTARGET_DATA_DIR"] = str(settings.data_dir.resolve())
    settings = Settings()
    reachable_cluster(settings.redis_url or "")
    database.migrate(database.make_engine(settings.sqlalchemy_url()))
    os.environ["GEOTARGET_MIGRATE_ON_START"] = "false"
    os.environ["GEOTARGET_WORKERS"] = str(workers)  # each worker takes its share of the per-device limits
    if workers > 1:
        _share_metrics(settings.data_dir.resolve() / "metrics")
    if demo:
        from api.demo.launch import load_demo  # the demo city and its traffic: only with --demo

        load_demo(Settings(), host, port, console)
    loops = None
    if settings.triggers and settings.deliver_in_serve:  # one process of loops for every worker (api/loops_process.py)
        os.environ["GEOTARGET_DELIVER_IN_SERVE"] = "false"  # the workers leave the loops to it
        loops = LoopsProcess(dict(os.environ))
        loops.start(f"http://{_local(host)}:{port}/readyz")
    if workers > 1:
        from api.forked_workers import fork_workers_from_preloaded_app

        fork_workers_from_preloaded_app()  # the API imported once for every worker (api/forked_workers.py)
    try:
        uvicorn.run(
            "api.main:create_app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
            access_log=False,  # it prints query strings: device ids and positions (see api/access_log.py)
            http=DeadlineHttpToolsProtocol,  # slow headers and bodies are cut off (api/http_protocol.py)
            loop=loop,
            log_config=log_config(settings.log_format),
        )
    finally:
        if loops is not None:
            loops.stop()
        if embedded is not None:
            embedded.stop()


def _local(host: str) -> str:
    """Where this machine reaches a server listening on ``host``."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _share_metrics(folder: Path) -> None:
    """Workers keep their Prometheus figures in files there, so any worker's /metrics answers for all (the
    workers import prometheus_client after this is set; a folder the operator set is kept as it is)."""
    if os.environ.get(MULTIPROCESS_DIR):
        return
    shutil.rmtree(folder, ignore_errors=True)  # the figures of a previous run's processes
    folder.mkdir(parents=True)
    os.environ[MULTIPROCESS_DIR] = str(folder)


def demo_command(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    workers: Annotated[int, typer.Option(min=1)] = 1,
) -> None:
    """Serve the demo city (the same as serve --demo)."""
    serve(host=host, port=port, workers=workers, demo=True)
