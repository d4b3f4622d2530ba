"""A real Redis Cluster for tests: ``masters`` primaries of Debian's redis-server on loopback, joined by
``redis-cli --cluster create`` (no replicas), each with its data and bus ports picked free."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from tests.servers import free_port


def _binaries() -> tuple[str, str]:
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server and cli:
        return server, cli
    if os.environ.get("CI"):
        pytest.fail("the Redis Cluster tests need redis-server and redis-cli in CI (apt-get install redis-server)")
    pytest.skip("no redis-server / redis-cli (apt-get install redis-server)")


@contextmanager
def redis_cluster(folder: Path, masters: int = 3) -> Iterator[str]:
    """Yields the cluster's URL as geotarget takes it: ``redis+cluster://127.0.0.1:<a node's port>``."""
    server, cli = _binaries()
    ports = [free_port() for _ in range(masters)]
    processes = []
    try:
        for port in ports:
            work = folder / f"node-{port}"
            work.mkdir(parents=True)
            command = [
                server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                "--cluster-port", str(free_port()), "--cluster-config-file", str(work / "nodes.conf"),
                "--cluster-node-timeout", "5000", "--dir", str(work), "--save", "", "--appendonly", "no",
            ]  # fmt: skip
            processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port in ports:
            _wait(lambda port=port: redis.Redis(port=port).ping())
        nodes = [f"127.0.0.1:{port}" for port in ports]
        create = [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"]
        done = subprocess.run(create, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        for port in ports:
            _wait(lambda port=port: redis.Redis(port=port).cluster("info").get("cluster_state") == "ok")
        yield f"redis+cluster://127.0.0.1:{ports[0]}"
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)


def _wait(ready, timeout_s: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if ready():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("the Redis Cluster did not come up")
        time.sleep(0.1)
