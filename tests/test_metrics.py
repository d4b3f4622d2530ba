"""/metrics as Prometheus reads it: with several workers, any worker answers for all of them (request latency
histograms per route, offer decisions, Redis call latency), parsed by prometheus_client's own parser."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures import ALFAMA_CAFE, INSIDE_ALFAMA_CAFE
from tests.servers import serving

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(text: str) -> Samples:
    """Every sample of a /metrics answer by (name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.slow
def test_metrics_are_summed_over_two_workers(tmp_path: Path, redis_url: str) -> None:
    requests = 60
    with serving(tmp_path / "data", redis_url, "metrics-admin", workers=2) as [base]:
        admin = {"Authorization": "Bearer metrics-admin"}
        merchant = httpx.post(f"{base}/v1/merchants", json={"name": "Café"}, headers=admin).json()
        cafe = {"Authorization": f"Bearer {merchant['api_key']}"}
        fence = httpx.post(f"{base}/v1/geofences", json=ALFAMA_CAFE, headers=cafe).json()["id"]
        offer = {"title": "latte", "geofence_ids": [fence], "status": "active"}
        assert httpx.post(f"{base}/v1/offers", json=offer, headers=cafe).status_code == 201
        app = httpx.post(f"{base}/v1/apps", json={"name": "app"}, headers=admin).json()["api_key"]

        def ask(i: int) -> int:
            with httpx.Client(base_url=base) as fresh:  # a connection each: the kernel spreads them over workers
                params = {**INSIDE_ALFAMA_CAFE, "device_id": f"phone-{i}"}
                return fresh.get("/v1/nearby", params=params, headers={"Authorization": f"Bearer {app}"}).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(ask, range(requests))) == {200}
        answers = [scrape(httpx.get(f"{base}/metrics").text) for _ in range(6)]
        ours = [p for p in psutil.process_iter(["cmdline", "environ"]) if _of(p, tmp_path / "data")]
        loops = {str(p.pid) for p in ours if "--parent-pid" in (p.info["cmdline"] or [])}
        # the process the workers are forked from (api/forked_workers.py) imported the metrics: zeros, never served
        forkserver = {str(p.pid) for p in ours if _forkserver(p) and not _forkserver(p.parent())}

    pids = {path.stem.rsplit("_", 1)[-1] for path in (tmp_path / "data" / "metrics").glob("histogram_*.db")}
    workers = pids - loops - forkserver
    assert len(workers) == 2, f"both workers should have served and kept figures: {pids} ({loops}: loops)"
    nearby = ("geotarget_http_request_duration_seconds_count", (("method", "GET"), ("route", "/v1/nearby")))
    for samples in answers:  # whichever worker answered: the sum over both
        assert samples[nearby] == requests
        assert samples[("geotarget_offer_decisions_total", (("decision", "served"),))] == requests
        redis_calls = sum(
            v for (name, _), v in samples.items() if name == "geotarget_redis_call_duration_seconds_count"
        )
        assert redis_calls >= requests
        bucket = ("geotarget_http_request_duration_seconds_bucket", (("le", "+Inf"), *nearby[1]))
        assert samples[bucket] == requests


def _of(process: psutil.Process, data_dir: Path) -> bool:
    """A process of the server in ``data_dir``: its workers, their forkserver, the loops process (it keeps
    figures of its own beside the workers')."""
    try:
        return Path((process.info["environ"] or {}).get("GEOTARGET_DATA_DIR", "/")).resolve() == data_dir.resolve()
    except psutil.Error:
        return False


def _forkserver(process: psutil.Process | None) -> bool:
    try:
        return process is not None and "forkserver" in " ".join(process.cmdline())
    except psutil.Error:
        return False
