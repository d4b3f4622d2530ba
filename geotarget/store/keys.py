"""Every Redis key name is built here, under one configurable prefix.

Per-device keys will carry the ``{device_key}`` hash tag so one device's keys share a Redis Cluster slot.
"""

from __future__ import annotations


def fences_version(prefix: str) -> str:
    """Incremented on every fence change; workers compare it to know they are behind."""
    return f"{prefix}:fences:version"


def fences_channel(prefix: str) -> str:
    """Pub/sub channel announcing fence changes (payload: the change sequence number)."""
    return f"{prefix}:fences:changed"
