"""Where event files live: a local folder or a prefix of an S3 bucket (any S3-compatible store), behind one small
interface on pyarrow's filesystems, so the event store writes, lists, rewrites and deletes both the same way and
DuckDB reads both with the same SQL."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from fsspec.implementations.arrow import ArrowFSWrapper

from geotarget.errors import InvalidInput


@dataclass(frozen=True)
class S3Options:
    """How to reach an S3-compatible store; what is left out comes from the usual AWS variables and files."""

    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    region: str | None = None


class _S3ForDuckDB(ArrowFSWrapper):  # type: ignore[misc]
    """pyarrow's S3 client lent to DuckDB under the ``s3://`` protocol: DuckDB's own S3 support is an extension
    downloaded at run time, which an offline machine cannot fetch."""

    protocol = "s3"


class FileArea:
    """Files under one base: ``names`` are relative to it with ``/`` separators (``day=2026-12-04/<batch>.parquet``)."""

    def __init__(self, filesystem: pafs.FileSystem, base: str, url: str) -> None:
        self.filesystem = filesystem
        self.base = base.rstrip("/")
        self.url = url.rstrip("/")  # what DuckDB is given

    @classmethod
    def at(cls, location: str | Path, s3: S3Options | None = None) -> FileArea:
        """A folder (made if missing) or ``s3://bucket/prefix`` of a bucket that exists (nothing is asked of the
        store until the first read or write, so a store out of reach does not stop a start)."""
        text = str(location)
        if not text.startswith("s3://"):
            folder = Path(text).expanduser().resolve()
            folder.mkdir(parents=True, exist_ok=True)
            return cls(pafs.LocalFileSystem(), str(folder), str(folder))
        parts = urlsplit(text)
        bucket, prefix = parts.netloc, parts.path.strip("/")
        if not bucket or parts.query or parts.fragment:
            raise InvalidInput(f"an S3 events URL reads s3://bucket/prefix, not {text!r}", "events_url")
        options = s3 or S3Options()
        endpoint = urlsplit(options.endpoint_url) if options.endpoint_url else None
        filesystem = pafs.S3FileSystem(
            access_key=options.access_key_id,
            secret_key=options.secret_access_key,
            region=options.region,
            endpoint_override=endpoint.netloc if endpoint else None,
            scheme=endpoint.scheme if endpoint else "https",
            connect_timeout=5,
            request_timeout=30,
            retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=3),
        )
        base = f"{bucket}/{prefix}" if prefix else bucket
        return cls(filesystem, base, f"s3://{base}")

    @property
    def remote(self) -> bool:
        return not isinstance(self.filesystem, pafs.LocalFileSystem)

    def path(self, name: str) -> str:
        return f"{self.base}/{name}"

    def url_of(self, pattern: str) -> str:
        return f"{self.url}/{pattern}"

    def names(self, under: str = "", suffix: str = ".parquet") -> list[str]:
        """Every file in the folder ``under`` (and below) ending in ``suffix``, sorted; temporary files being
        written are left out."""
        return sorted(self.sizes(under, suffix))

    def sizes(self, under: str = "", suffix: str = ".parquet") -> dict[str, int]:
        """``names`` with each file's size in bytes (a rewrite shows as another size)."""
        root = self.path(under) if under else self.base
        found = self.filesystem.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
        start = len(self.base) + 1
        return {
            info.path[start:]: int(info.size or 0)
            for info in found
            if info.type == pafs.FileType.File and info.path.endswith(suffix) and not info.base_name.startswith(".")
        }

    def read_bytes(self, name: str) -> bytes | None:
        """A small file's content, or None when there is none."""
        try:
            with self.filesystem.open_input_stream(self.path(name)) as stream:
                return bytes(stream.read())
        except FileNotFoundError:
            return None

    def write_bytes(self, name: str, data: bytes) -> None:
        """A small file, whole or not at all (as ``write_parquet``)."""
        self._whole(name, lambda target: self._put(target, data))

    def _put(self, target: str, data: bytes) -> None:
        with self.filesystem.open_output_stream(target) as stream:
            stream.write(data)

    def read_table(self, name: str, schema: pa.Schema | None = None) -> pa.Table:
        return pq.read_table(self.path(name), schema=schema, filesystem=self.filesystem)

    def write_parquet(self, table: pa.Table, name: str, **options: Any) -> str:
        """Whole or not at all: an object store publishes an object when its upload completes; a folder gets a
        hidden temporary file renamed over the name (atomic on POSIX)."""
        write = functools.partial(pq.write_table, table, compression="zstd", filesystem=self.filesystem, **options)
        self._whole(name, write)
        return name

    def _whole(self, name: str, write: Callable[[str], object]) -> None:
        target = self.path(name)
        if self.remote:
            write(target)
            return
        folder = target.rsplit("/", 1)[0]
        self.filesystem.create_dir(folder, recursive=True)
        temporary = f"{folder}/.{uuid.uuid4().hex}.tmp"
        try:
            write(temporary)
            self.filesystem.move(temporary, target)
        finally:
            if self.filesystem.get_file_info(temporary).type != pafs.FileType.NotFound:
                self.filesystem.delete_file(temporary)

    def delete(self, name: str) -> None:
        self.filesystem.delete_file(self.path(name))

    def lend_to(self, connection: duckdb.DuckDBPyConnection) -> None:
        """Let ``connection`` read ``s3://`` URLs of this area."""
        if self.remote:
            connection.register_filesystem(_S3ForDuckDB(self.filesystem))
