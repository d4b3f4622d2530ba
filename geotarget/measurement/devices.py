"""Device ids are never stored: every key and event uses ``HMAC-SHA256(secret, device_id)``, hex, 32 chars."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path


def device_key(secret: str, device_id: str) -> str:
    """Stable for one secret, unlinkable without it.

    >>> device_key("s3cret", "ABC-123")
    'fed2cfaea1602ae187a46f2600799a6e'
    """

    return hmac.new(secret.encode(), device_id.encode(), hashlib.sha256).hexdigest()[:32]


def load_or_create_secret(path: Path) -> str:
    """The secret kept at ``path``, created (exclusively, so concurrent workers agree) on first use."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        secret = secrets.token_hex(32)
        handle.write(secret + "\n")
    return secret
