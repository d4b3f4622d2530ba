"""Erasure of everything held for one device (admin only)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import Admin, RuntimeDep
from api.errors import ERROR_RESPONSES
from api.schemas import ErasedOut

router = APIRouter(prefix="/v1", tags=["privacy"], responses=ERROR_RESPONSES)


@router.delete("/devices/{device_id}", response_model=ErasedOut, operation_id="erase_device")
def erase(device_id: str, _: Admin, runtime: RuntimeDep) -> ErasedOut:
    """Erase everything held for a device: counters, queued events, stored events; later events are dropped.
    Redis is checked first, so with Redis away this is a 503 with nothing changed; should Redis fail half-way,
    the erasure is recorded (later events are dropped) and repeating the request completes it."""
    return ErasedOut.model_validate(runtime.erase_device(device_id))
