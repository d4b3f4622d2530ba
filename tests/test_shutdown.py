"""Stopping a server stops everything it started: the fence worker processes of its CPU pool included (they were
left running, orphaned, after every `serve` that had validated a fence)."""

from __future__ import annotations

import httpx
import psutil

from tests.conftest import ADMIN, ADMIN_KEY
from tests.fixtures import ALFAMA_CAFE
from tests.servers import serving


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
