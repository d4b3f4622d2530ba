"""Zip archives from strangers, opened in memory and within limits.

A zipped Shapefile is inspected before a single byte is inflated: how many members, what they are called, how
large they say they are and how well they say they compress. Members are then read into memory through a
counting reader, so an archive that lies in its headers is stopped at the limit too. Nothing is written to disk
and no member name is ever used as a path, so a name such as ``../../etc/passwd`` has nothing to reach.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath

from geofences.errors import FenceError

__all__ = ["ArchiveLimits", "read_members"]


@dataclass(frozen=True)
class ArchiveLimits:
    max_members: int = 16
    max_unpacked_bytes: int = 64 * 1024 * 1024
    max_ratio: float = 200.0  # real shapefiles deflate 2-20x; 1 GiB of zeros deflates about 1,000x


def read_members(data: bytes, suffixes: frozenset[str], limits: ArchiveLimits) -> dict[str, bytes]:
    """The members whose suffix is in ``suffixes`` (lower case, e.g. ``".shp"``), keyed by their lower-cased
    file name without folders; macOS resource forks and folders are skipped.

    >>> buffer = io.BytesIO()
    >>> with zipfile.ZipFile(buffer, "w") as z:
    ...     z.writestr("shop/Kiosk.SHP", b"shape")
    >>> read_members(buffer.getvalue(), frozenset({".shp"}), ArchiveLimits())
    {'kiosk.shp': b'shape'}
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = archive.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise FenceError("bad_archive", f"the upload is not a readable zip archive ({exc})", "file") from None
    wanted = [e for e in entries if not e.is_dir() and not _is_noise(e.filename)]
    if len(wanted) > limits.max_members:
        raise FenceError(
            "archive_too_large", f"the zip holds {len(wanted)} files; at most {limits.max_members} are read", "file"
        )
    declared = sum(e.file_size for e in wanted)
    if declared > limits.max_unpacked_bytes:
        raise FenceError(
            "archive_too_large",
            f"the zip unpacks to {declared:,} bytes; at most {limits.max_unpacked_bytes:,} are read",
            "file",
        )
    members: dict[str, bytes] = {}
    budget = limits.max_unpacked_bytes
    for entry in wanted:
        name = PurePosixPath(entry.filename.replace("\\", "/")).name.lower()
        if PurePosixPath(name).suffix not in suffixes:
            continue
        if name in members:
            raise FenceError("bad_archive", f"the zip holds two files named {name!r}", "file")
        if entry.flag_bits & 0x1:
            raise FenceError("bad_archive", f"{name!r} is encrypted", "file")
        if entry.file_size > max(entry.compress_size, 1) * limits.max_ratio:
            raise FenceError(
                "archive_too_large",
                f"{name!r} claims to inflate {entry.file_size / max(entry.compress_size, 1):,.0f} times; "
                f"at most {limits.max_ratio:,.0f} is accepted",
                "file",
            )
        members[name] = _read_bounded(archive, entry, name, budget)
        budget -= len(members[name])
    return members


def _read_bounded(archive: zipfile.ZipFile, entry: zipfile.ZipInfo, name: str, budget: int) -> bytes:
    try:
        with archive.open(entry) as member:
            content = member.read(min(entry.file_size, budget) + 1)
    except (zipfile.BadZipFile, NotImplementedError, ValueError, EOFError, OSError, RuntimeError) as exc:
        raise FenceError("bad_archive", f"{name!r} cannot be unpacked ({exc})", "file") from None
    if len(content) > min(entry.file_size, budget):
        raise FenceError("archive_too_large", f"{name!r} unpacks to more than it declares or is allowed", "file")
    return content


def _is_noise(name: str) -> bool:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return "__MACOSX" in parts or any(p.startswith("._") for p in parts)
