"""Webhook subscriptions: an app key hears its own devices' enter, dwell, exit and push events (with their
device ids); a merchant key hears its own fences' (without). Another owner's webhook is a 404."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response

from api.deps import RuntimeDep, require
from api.errors import ERROR_RESPONSES, NOT_FOUND
from api.webhook_schemas import (
    DeliveriesOut,
    DeliveryOut,
    TestDeliveryOut,
    WebhookCreated,
    WebhookIn,
    WebhookOut,
    WebhooksOut,
)
from geotarget.catalog.accounts import Principal
from geotarget.triggers.service import Owner, WebhookService

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], responses=ERROR_RESPONSES)
WebhookId = Annotated[str, Path(max_length=64)]


async def owner(principal: Annotated[Principal, require("app", "merchant")]) -> Owner:
    if principal.role == "merchant" and principal.merchant_id:
        return Owner("merchant", principal.merchant_id)
    return Owner("app", principal.key_id)


async def service(runtime: RuntimeDep) -> WebhookService:
    return runtime.webhooks


Subscriber = Annotated[Owner, Depends(owner)]
Webhooks = Annotated[WebhookService, Depends(service)]


@router.post("", status_code=201, response_model=WebhookCreated, operation_id="create_webhook")
def create_webhook(body: WebhookIn, who: Subscriber, webhooks: Webhooks) -> WebhookCreated:
    """Subscribe; the answer holds the signing secret, shown this once."""
    made = webhooks.subscribe(who, body.url, body.events, body.geofence_ids)
    return WebhookCreated.model_validate(made)


@router.get("", response_model=WebhooksOut, operation_id="list_webhooks")
def list_webhooks(who: Subscriber, webhooks: Webhooks) -> WebhooksOut:
    return WebhooksOut(webhooks=[WebhookOut.model_validate(s) for s in webhooks.listed(who)])


@router.delete("/{webhook_id}", status_code=204, responses=NOT_FOUND, operation_id="delete_webhook")
def delete_webhook(webhook_id: WebhookId, who: Subscriber, webhooks: Webhooks) -> Response:
    """Stops new deliveries; pending ones fail as 'the webhook was deleted'."""
    webhooks.delete(who, webhook_id)
    return Response(status_code=204)


@router.get(
    "/{webhook_id}/deliveries", response_model=DeliveriesOut, responses=NOT_FOUND, operation_id="list_deliveries"
)
def list_deliveries(
    webhook_id: WebhookId,
    who: Subscriber,
    webhooks: Webhooks,
    status: Annotated[Literal["pending", "delivered", "failed"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1_000)] = 100,
) -> DeliveriesOut:
    """Newest first. Delivered ones stay listed 7 days, failed ones 30."""
    found = webhooks.deliveries_of(who, webhook_id, status, limit)
    return DeliveriesOut(deliveries=[DeliveryOut.model_validate(d) for d in found])


@router.post("/{webhook_id}/test", response_model=TestDeliveryOut, responses=NOT_FOUND, operation_id="test_webhook")
async def test_webhook(webhook_id: WebhookId, who: Subscriber, webhooks: Webhooks) -> TestDeliveryOut:
    """Send a signed ``test`` event now and say how it went (not queued, retried or listed). One test at a time
    per key: another while the first waits for its receiver is a 429."""
    return TestDeliveryOut.model_validate(await asyncio.wrap_future(webhooks.test_soon(who, webhook_id)))
