"""A key's life after it is issued: list (admin), rotate (admin, or any key its own), revoke (admin).

A rotation keeps the key's id, so an app's impressions and webhooks stay its own; the new key is in the answer
and nowhere else. Every worker forgets a rotated or revoked key within a second (docs/operations.md#keys)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Response

from api.account_schemas import KeyOut, KeysOut, RotatedOut, RotateIn
from api.deps import Admin, RuntimeDep, get_principal
from api.errors import ERROR_RESPONSES, NOT_FOUND
from api.schemas import ErrorBody
from geotarget.catalog.accounts import Principal

router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=ERROR_RESPONSES)
KeyId = Annotated[str, Path(max_length=64)]
Rotation = Annotated[RotateIn, Body(default_factory=RotateIn)]
REVOKED: dict[int | str, dict[str, Any]] = {409: {"model": ErrorBody, "description": "The key is revoked"}}


@router.get("", response_model=KeysOut)
def list_keys(_: Admin, runtime: RuntimeDep) -> KeysOut:
    """Every issued key, oldest first, with its last use; never the key itself."""
    return KeysOut(keys=[KeyOut.model_validate(k) for k in runtime.repository.keys.records()])


@router.post("/self/rotate", response_model=RotatedOut, responses=REVOKED)
def rotate_own_key(
    body: Rotation, principal: Annotated[Principal, Depends(get_principal)], runtime: RuntimeDep
) -> RotatedOut:
    """A new key for the caller's own key; the one used for this call keeps working ``grace_s`` more seconds.
    Neither outlives the key's ``expires_at``: a key cannot extend its own end."""
    return RotatedOut.model_validate(runtime.rotate_key(principal.key_id, body.grace_s, body.expires_at))


@router.post("/{key_id}/rotate", response_model=RotatedOut, responses=NOT_FOUND | REVOKED)
def rotate_key(key_id: KeyId, body: Rotation, _: Admin, runtime: RuntimeDep) -> RotatedOut:
    """A new key for ``key_id``; the old one keeps working ``grace_s`` more seconds (409 if it is revoked)."""
    return RotatedOut.model_validate(runtime.rotate_key(key_id, body.grace_s, body.expires_at, by_admin=True))


@router.delete("/{key_id}", status_code=204, response_class=Response, responses=NOT_FOUND)
def revoke_key(key_id: KeyId, _: Admin, runtime: RuntimeDep) -> Response:
    """Refused (401) from now on, on every worker within a second; revoking twice is fine."""
    runtime.revoke_key(key_id)
    return Response(status_code=204)
