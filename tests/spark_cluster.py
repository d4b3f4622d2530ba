"""A real Apache Spark standalone cluster for tests: one master and one worker on loopback (pyspark's own jars,
Java 17), every port picked free, started once per session (about ten seconds)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port


def _spark_home() -> Path:
    if not shutil.which("java"):
        if os.environ.get("CI"):
            pytest.fail("the Spark tests need Java 17 in CI (scripts/test.sh installs openjdk-17-jre-headless)")
        pytest.skip("no Java (apt-get install openjdk-17-jre-headless)")
    try:
        import pyspark
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("the Spark tests need pyspark in CI (the dev extra has it)")
        pytest.skip("no pyspark (pip install -e '.[spark]')")
    return Path(pyspark.__file__).parent


def _alive_workers(ui: str) -> int:
    """Workers registered with the master, or -1 while the master does not answer."""
    try:
        state = httpx.get(f"{ui}/json/", timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return -1
    return sum(worker.get("state") == "ALIVE" for worker in state.get("workers", []))


@contextmanager
def spark_standalone(folder: Path, workers: int = 1, cores: int = 2) -> Iterator[str]:
    """Yields the master's ``spark://`` URL once its ``workers`` (1 or 0) have registered with it."""
    home = _spark_home()
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"  # the driver (this process) binds and advertises loopback too
    environment = os.environ | {"SPARK_HOME": str(home), "SPARK_LOG_DIR": str(folder), "SPARK_NO_DAEMONIZE": "1"}
    master_port, master_ui, worker_ui = free_port(), free_port(), free_port()
    master = f"spark://127.0.0.1:{master_port}"
    spark_class = [str(home / "bin" / "spark-class")]
    started = []
    logs = []
    try:
        processes = [
            ("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(master_port),
                        "--webui-port", str(master_ui)]),
            ("worker", ["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--webui-port",
                        str(worker_ui), "--cores", str(cores), "--memory", "2g", "--work-dir", str(folder / "work"),
                        master]),
        ]  # fmt: skip
        for name, arguments in processes[: 1 + workers]:
            log = (folder / f"{name}.log").open("wb")
            logs.append(log)
            started.append(
                subprocess.Popen(spark_class + arguments, stdout=log, stderr=subprocess.STDOUT, env=environment)
            )
        deadline = time.monotonic() + 120
        while _alive_workers(f"http://127.0.0.1:{master_ui}") < workers:
            for process, name in zip(started, ("master", "worker"), strict=False):
                assert process.poll() is None, (folder / f"{name}.log").read_text()[-2_000:]
            assert time.monotonic() < deadline, (folder / "worker.log").read_text()[-2_000:]
            time.sleep(0.5)
        yield master
    finally:
        for process in reversed(started):
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in logs:
            log.close()
