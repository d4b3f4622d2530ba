"""Hostile input never yields a 5xx: schemathesis drives a real server from its own /openapi.json, with a merchant
key (fence and offer routes) and with the admin key (account routes), on SQLite and on PostgreSQL. Its stateful
phase follows the OpenAPI links (a created fence or offer's id into the routes that read, patch and delete it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.fixtures import ALFAMA_CAFE
from tests.servers import serving

# positive_data_acceptance: the schema is deliberately looser than the geometry rules (a schema-valid ring can
# still self-intersect), so a 422 for schema-valid data is correct here. unsupported_method and
# allow_header_conformance: Starlette lists only the first matching route's methods in a 405's Allow header.
EXCLUDED = "positive_data_acceptance,unsupported_method,allow_header_conformance"


def schemathesis(base: str, key: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    st = Path(sys.executable).with_name("st")
    command = [
        str(st),
        "run",
        f"{base}/openapi.json",
        "-H",
        f"Authorization: Bearer {key}",
        "--max-examples",
        os.environ.get("GEOTARGET_FUZZ_EXAMPLES", "40"),
        "--seed",
        "20261123",
        "--exclude-checks",
        EXCLUDED,
        "--generation-database",
        "none",
        "--exclude-operation-id",  # would rotate away the very key the run is using
        "rotate_own_key",
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False)


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(tmp_path, redis_url, database_url):
    database = None if database_url.startswith("sqlite") else database_url
    with serving(tmp_path / "data", redis_url, "fuzz-admin", database_url=database) as [base]:
        admin = {"Authorization": "Bearer fuzz-admin"}
        merchant = httpx.post(f"{base}/v1/merchants", json={"name": "Fuzzed"}, headers=admin).json()
        headers = {"Authorization": f"Bearer {merchant['api_key']}"}
        assert httpx.post(f"{base}/v1/geofences", json=ALFAMA_CAFE, headers=headers).status_code == 201

        for key in (merchant["api_key"], "fuzz-admin"):
            run = schemathesis(base, key, tmp_path)
            assert run.returncode == 0, run.stdout[-6000:]
            if key != "fuzz-admin":  # the stateful phase followed links from created fences
                covered = re.search(r"API Links:\s+(\d+) covered", run.stdout)
                assert covered is not None and int(covered.group(1)) > 0, run.stdout[-3000:]
