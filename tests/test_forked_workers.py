"""``serve --workers N`` forks its workers from one process that imported the API (api/forked_workers.py), and
uvicorn's supervisor still replaces a worker that dies."""

from __future__ import annotations

import httpx
import psutil
import pytest

from tests.conftest import ADMIN_KEY
from tests.servers import eventually, serving


def _ours(data_dir) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["environ", "cmdline"]):
        try:
            if (process.info["environ"] or {}).get("GEOTARGET_DATA_DIR") == str(data_dir):
                found.append(process)
        except psutil.Error:
            continue
    return found


def _forkserver(process: psutil.Process) -> bool:
    try:
        return "forkserver" in " ".join(process.cmdline())
    except psutil.Error:
        return False


def _workers(data_dir) -> tuple[psutil.Process, list[psutil.Process]]:
    [server] = [p for p in _ours(data_dir) if _forkserver(p) and not _forkserver(p.parent())]
    return server, [w for w in server.children() if _forkserver(w)]


@pytest.mark.slow
def test_workers_are_forked_from_one_preloaded_process_and_a_killed_worker_is_replaced(tmp_path, redis_url):
    with serving(tmp_path, redis_url, ADMIN_KEY, workers=2) as [base]:
        server, workers = _workers(tmp_path)
        assert len(workers) == 2
        assert "serve" in server.parent().cmdline(), "the forkserver is the launcher's own child"
        victim = workers[0]
        victim.kill()
        victim.wait(10)

        def replaced() -> list[int]:
            _, now = _workers(tmp_path)
            pids = sorted(w.pid for w in now)
            return pids if len(pids) == 2 and victim.pid not in pids else []

        eventually(replaced, timeout_s=30)
        for _ in range(10):  # both workers answer (new connections spread over them)
            assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200
