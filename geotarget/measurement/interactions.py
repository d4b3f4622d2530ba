"""What a device did with an offer it was shown: ``click``, ``redeem`` or ``dismiss`` (``POST /v1/interactions``).

Impression ids are signed: 16 random hex characters and 16 of ``HMAC-SHA256(secret, random:app)``, where ``app`` is
the key that was shown the offer. So an interaction is checked without a lookup: a forged id, or one issued to
another app, is refused in its row. The interaction event carries only the impression id (``ref``); reports join
it to the impression for the offer, the fence and the device. Its event id is ``x:<impression>:<type>``, so sending
one twice counts once.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

from geotarget.errors import InvalidInput
from geotarget.measurement.events import Event
from geotarget.measurement.pings import json_body

InteractionType = Literal["click", "redeem", "dismiss"]
TYPES: tuple[str, ...] = get_args(InteractionType)
MAX_INTERACTIONS = 1_000
MAX_AGE = timedelta(days=30)  # an interaction this much older than its request is refused


def impression_id(secret: str, app: str) -> str:
    """A new impression id for an offer shown to ``app``'s device.

    >>> len(impression_id("s3cret", "key_app")), issued_to("s3cret", impression_id("s3cret", "key_app"), "key_app")
    (32, True)
    """
    nonce = secrets.token_hex(8)
    return nonce + _mac(secret, nonce, app)


def issued_to(secret: str, impression: str, app: str) -> bool:
    """Whether this server issued ``impression`` to ``app`` (constant time)."""
    if len(impression) != 32 or not all(c in "0123456789abcdef" for c in impression):
        return False
    return hmac.compare_digest(impression[16:], _mac(secret, impression[:16], app))


def _mac(secret: str, nonce: str, app: str) -> str:
    keyed = _keyed(secret).copy()  # the key's set-up done once: every served candidate gets an id
    keyed.update(f"imp:{nonce}:{app}".encode())
    return keyed.hexdigest()[:16]


@functools.cache
def _keyed(secret: str) -> hmac.HMAC:
    return hmac.new(secret.encode(), digestmod=hashlib.sha256)


@dataclass(frozen=True)
class InteractionResult:
    index: int
    event_id: str | None = None
    error: InvalidInput | None = None


def parse_interactions_body(body: bytes) -> list[Any]:
    """One interaction object, or ``{"interactions": [...]}`` (at most ``MAX_INTERACTIONS``)."""
    document = json_body(body)
    if isinstance(document, dict) and "interactions" in document:
        rows = document["interactions"]
        if not isinstance(rows, list):
            raise InvalidInput("interactions must be a list", "interactions")
        if len(rows) > MAX_INTERACTIONS:
            raise InvalidInput(f"at most {MAX_INTERACTIONS:,} interactions per request", "interactions")
        return rows
    if isinstance(document, dict):
        return [document]
    raise InvalidInput('send one interaction object or {"interactions": [...]}', "body")


def judge(rows: Sequence[Any], secret: str, app: str, now: datetime) -> tuple[list[Event], list[InteractionResult]]:
    """The events of the good rows, and a result per row (bad ones with the reason and where)."""
    events, results = [], []
    for index, row in enumerate(rows):
        try:
            event = _event(row, secret, app, now, f"interactions[{index}].")
        except InvalidInput as error:
            results.append(InteractionResult(index, error=error))
            continue
        events.append(event)
        results.append(InteractionResult(index, event.event_id))
    return events, results


def _event(row: Any, secret: str, app: str, now: datetime, where: str) -> Event:
    if not isinstance(row, dict):
        raise InvalidInput("an interaction is an object with impression_id and type", where.rstrip("."))
    unknown = set(row) - {"impression_id", "type", "ts"}
    if unknown:
        raise InvalidInput(f"unknown field(s) {sorted(unknown)}", f"{where}{sorted(unknown)[0]}")
    kind = row.get("type")
    if kind not in TYPES:
        raise InvalidInput(f"type must be one of {list(TYPES)}", f"{where}type")
    impression = row.get("impression_id")
    if not isinstance(impression, str) or not issued_to(secret, impression, app):
        message = "unknown impression_id: not one this server showed to this app"
        raise InvalidInput(message, f"{where}impression_id", code="unknown_impression")
    at = _when(row.get("ts"), now, f"{where}ts")
    return Event(
        kind=kind, event_id=f"x:{impression}:{kind}", at=at, device_key="", lat=0.0, lon=0.0, cell="", ref=impression
    )


def _when(raw: Any, now: datetime, field: str) -> datetime:
    if raw is None:
        return now
    try:
        if isinstance(raw, bool):
            raise ValueError
        at = datetime.fromtimestamp(raw, now.tzinfo) if isinstance(raw, int | float) else datetime.fromisoformat(raw)
    except (TypeError, ValueError, OverflowError, OSError):
        raise InvalidInput("ts must be ISO 8601 with a UTC offset, or epoch seconds", field) from None
    if at.tzinfo is None:
        raise InvalidInput("ts must carry a UTC offset (Z or +hh:mm)", field)
    if not now - MAX_AGE <= at <= now + timedelta(minutes=5):
        raise InvalidInput("ts must be within the last 30 days (and not in the future)", field)
    return at
