"""Request and response shapes of ``/v1/webhooks``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from geotarget.catalog.model import UtcTime
from geotarget.triggers.webhooks import EventType, masked_url


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(
        min_length=1,
        max_length=2000,
        examples=["https://example.com/hooks/geotarget", "nats://broker:4222/geotarget.events"],
        description="http(s)://, or nats://host/subject, mqtt://host/topic, amqp://host/exchange",
    )
    events: list[EventType] = Field(min_length=1, max_length=4, examples=[["enter", "exit"]])
    geofence_ids: list[str] | None = Field(default=None, max_length=500, description="only these fences")


class WebhookOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    url: str = Field(description="As subscribed, with any password shown as ****")
    events: list[EventType]
    geofence_ids: list[str] | None
    created_at: UtcTime | None

    @field_validator("url")
    @classmethod
    def _masked(cls, url: str) -> str:
        return masked_url(url)


class WebhookCreated(WebhookOut):
    secret: str = Field(description="Signs every delivery. Shown once: keep it now.")


class WebhooksOut(BaseModel):
    webhooks: list[WebhookOut]


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    event_id: str
    type: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    created_at: UtcTime
    last_attempt_at: UtcTime | None
    next_attempt_at: UtcTime | None
    response_status: int | None
    error: str | None
    latency_ms: float | None
    event: dict[str, Any] = Field(description="What was (or will be) sent, without the device id.")


class DeliveriesOut(BaseModel):
    deliveries: list[DeliveryOut]


class TestDeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    delivered: bool
    status: int | None = Field(description="The receiver's HTTP status, when it answered.")
    error: str | None
    latency_ms: float
    event: dict[str, Any]
