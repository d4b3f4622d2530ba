"""Workers forked from one process that has imported the app, instead of each started from a bare interpreter.

uvicorn's supervisor spawns every worker as a fresh Python, which then imports FastAPI, pydantic, numpy,
shapely and the whole API (about 2.3 s of a 100,000-fence worker's start, paid by every worker at once on the
same cores, and again for each worker restarted). With multiprocessing's *forkserver*, one fresh process (without
the launcher's threads, which a fork would copy mid-work) imports the API once, then forks each worker: a
worker's start is its runtime's open, and the imported code's pages stay shared between the workers.

Everything else is uvicorn's own supervisor (health pings, restarts of dead workers, SIGHUP, SIGTTIN/SIGTTOU,
stop on SIGTERM): only the function it makes its processes with is swapped (``uvicorn._subprocess``, the one
place it decides how a worker process is made; tests/test_forked_workers.py fails if that changes).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from socket import socket

from uvicorn import _subprocess
from uvicorn.config import Config
from uvicorn.supervisors import multiprocess

PRELOAD = ["api.main"]  # the app and everything it imports; the runtime is opened by each worker (lifespan)


def fork_workers_from_preloaded_app() -> None:
    """From now on, ``uvicorn.run(workers=N)`` forks its workers from a process that imported ``PRELOAD``. It
    starts at the first worker, with the environment of that moment: call this after the environment is set."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)

    def forked(config: Config, target: Callable[..., None], sockets: list[socket]) -> multiprocessing.Process:
        kwargs = {"config": config, "target": target, "sockets": sockets, "stdin_fileno": None}
        return context.Process(target=_subprocess.subprocess_started, kwargs=kwargs)  # type: ignore[return-value]

    multiprocess.get_subprocess = forked  # type: ignore[attr-defined,assignment]
