"""Two real ``geotarget serve`` processes on one Redis and one database agree about fences within a second."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import ADMIN, ADMIN_KEY
from tests.fixtures import ALFAMA_CAFE, INSIDE_ALFAMA_CAFE
from tests.servers import serving


def seconds_until(predicate, timeout_s: float = 5.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError("the other worker never caught up")


# Typically well under a second (pub/sub, then a 1 s poll as a fallback); generous for a loaded CI machine.
PROMPTLY_S = 5.0


def fences_containing_the_cafe(base: str, headers: dict[str, str]) -> int:
    answer = httpx.get(f"{base}/v1/geofences/contains", params=INSIDE_ALFAMA_CAFE, headers=headers).json()
    return len(answer["fences"])


@pytest.mark.slow
def test_a_fence_written_through_one_server_is_answered_by_the_other_promptly(tmp_path, redis_url):
    with serving(tmp_path, redis_url, ADMIN_KEY, count=2) as (first, second):
        merchant = httpx.post(f"{first}/v1/merchants", json={"name": "Café Tejo"}, headers=ADMIN).json()
        headers = {"Authorization": f"Bearer {merchant['api_key']}"}

        fence = httpx.post(f"{first}/v1/geofences", json=ALFAMA_CAFE, headers=headers).json()
        assert seconds_until(lambda: fences_containing_the_cafe(second, headers) == 1) < PROMPTLY_S

        assert httpx.delete(f"{second}/v1/geofences/{fence['id']}", headers=headers).status_code == 204
        assert seconds_until(lambda: fences_containing_the_cafe(first, headers) == 0) < PROMPTLY_S
