"""Stopping a server stops everything it started: the fence worker processes of its CPU pool included (they were
left running, orphaned, after every `serve` that had validated a fence)."""

from __future__ import annotations

import time

import httpx
import psutil
import pytest

from tests.conftest import ADMIN, ADMIN_KEY
from tests.fixtures import ALFAMA_CAFE
from tests.servers import serving


@pytest.mark.slow
def test_a_stopped_server_leaves_no_fence_worker_behind(tmp_path, redis_url):
    with serving(tmp_path, redis_url, ADMIN_KEY, workers=2, cpu_workers="1") as [base]:
        merchant = httpx.post(f"{base}/v1/merchants", json={"name": "Café"}, headers=ADMIN).json()
        headers = {"Authorization": f"Bearer {merchant['api_key']}"}
        for _ in range(4):  # across both workers, each starts its pool
            assert httpx.post(f"{base}/v1/geofences", json=ALFAMA_CAFE, headers=headers).status_code == 201
        started = [p for p in psutil.process_iter(["environ"]) if _ours(p, tmp_path)]
        assert any("multiprocessing" in " ".join(p.cmdline()) for p in started)
    _, alive = psutil.wait_procs(started, timeout=10)
    assert alive == []


def _ours(process: psutil.Process, data_dir) -> bool:
    try:
        return (process.info["environ"] or {}).get("GEOTARGET_DATA_DIR") == str(data_dir)
    except psutil.Error:
        return False


@pytest.mark.slow
def test_a_killed_worker_takes_its_fence_workers_with_it(tmp_path, redis_url):
    """SIGKILL runs no shutdown: the pool's processes notice their parent is gone and end (they were orphaned,
    about 250 MB each)."""
    with serving(tmp_path, redis_url, ADMIN_KEY, workers=1, cpu_workers="1") as [base]:
        merchant = httpx.post(f"{base}/v1/merchants", json={"name": "Café"}, headers=ADMIN).json()
        headers = {"Authorization": f"Bearer {merchant['api_key']}"}
        assert httpx.post(f"{base}/v1/geofences", json=ALFAMA_CAFE, headers=headers).status_code == 201
        pool = [p for p in psutil.process_iter(["environ"]) if _ours(p, tmp_path) and _pool_process(p)]
        assert pool, "the fence pool started no process"
        workers = {p.parent() for p in pool}
        for worker in workers:
            worker.kill()
        _, alive = psutil.wait_procs(pool, timeout=10)
        assert alive == []


def _pool_process(process: psutil.Process) -> bool:
    try:
        return "multiprocessing" in " ".join(process.cmdline()) and "resource_tracker" not in " ".join(
            process.cmdline()
        )
    except psutil.Error:
        return False


def _loops_process(process: psutil.Process) -> bool:
    try:
        return process.cmdline()[-3:-1] == ["deliver", "--parent-pid"]
    except psutil.Error:
        return False


def _loops_of(tmp_path, within_s: float = 30.0) -> list[psutil.Process]:
    """The loops processes of the server in ``tmp_path``: it starts them once its workers answer /readyz."""
    deadline = time.monotonic() + within_s
    found: list[psutil.Process] = []
    while not found and time.monotonic() < deadline:
        found = [p for p in psutil.process_iter(["environ"]) if _ours(p, tmp_path) and _loops_process(p)]
        time.sleep(0.2)
    return found


@pytest.mark.slow
def test_serve_runs_one_loops_process_beside_its_workers_and_starts_it_again_when_it_dies(tmp_path, redis_url):
    """The trigger and delivery loops run once per server, not in each worker (their sending threads took the
    GIL from requests); a loops process that dies is started again, and none is left when serve stops."""
    with serving(tmp_path, redis_url, ADMIN_KEY, workers=2, deliver_in_serve="true") as [base]:
        assert httpx.get(f"{base}/healthz").status_code == 200
        [loops] = _loops_of(tmp_path)
        loops.kill()
        loops.wait(10)
        again = []
        for _ in range(50):
            again = [p for p in psutil.process_iter(["environ"]) if _ours(p, tmp_path) and _loops_process(p)]
            if again:
                break
            time.sleep(0.2)
        assert len(again) == 1 and again[0].pid != loops.pid
    _, alive = psutil.wait_procs(again, timeout=20)
    assert alive == []


@pytest.mark.slow
def test_a_killed_serve_takes_its_loops_process_with_it(tmp_path, redis_url):
    with serving(tmp_path, redis_url, ADMIN_KEY, workers=1, deliver_in_serve="true") as [base]:
        assert httpx.get(f"{base}/healthz").status_code == 200
        [loops] = _loops_of(tmp_path)
        loops.parent().kill()  # SIGKILL of serve itself: no shutdown runs
        _, alive = psutil.wait_procs([loops], timeout=10)
        assert alive == []
    # serving()'s own cleanup finds serve gone; its orphaned uvicorn worker notices and ends on its own
