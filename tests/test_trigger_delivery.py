"""What transitions set off beyond a plain webhook: offers pushed on enter and dwell (matched, capped and counted
like pulled ones), deliveries that survive a SIGKILLed worker, and the same signed events on real NATS,
MQTT and RabbitMQ brokers."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from geotarget.runtime import Runtime
from geotarget.store import keys
from geotarget.triggers.presence import Fired, Transition
from geotarget.triggers.webhooks import verify
from tests.conftest import ADMIN_KEY, make_settings
from tests.test_webhooks import FAR, INSIDE, subscribe, world
from tests.webhook_receiver import receiver


def ping(client: TestClient, headers: dict, device: str, at: datetime, inside: bool) -> None:
    where = INSIDE if inside else {"lat": FAR.lat, "lon": FAR.lon, "accuracy_m": 10}
    row = {"device_id": device, **where, "ts": int(at.timestamp())}
    assert client.post("/v1/pings", json={"pings": [row]}, headers=headers).status_code == 200


def impressions(runtime: Runtime) -> list[dict]:
    stream = keys.events_stream(runtime.settings.redis_prefix)
    found = [orjson.loads(fields.get("e") or fields[b"e"]) for _, fields in runtime.redis.xrange(stream)]
    return [e for e in found if e["kind"] == "impression"]


@pytest.mark.slow
def test_an_offer_triggered_on_enter_is_pushed_after_the_enter_event_within_its_caps_and_never_pulled(with_triggers):
    client, runtime = with_triggers
    merchant, app_headers, _, fence_id = world(client)
    offer = {
        "title": "2-for-1 lattes",
        "geofence_ids": [fence_id],
        "trigger": {"on": "enter"},
        "caps": {"per_device_per_day": 1},
    }
    made = client.post("/v1/offers", json=offer, headers=merchant)
    assert made.status_code == 201, made.text
    assert made.json()["trigger"] == {"on": "enter"}
    start = datetime.now(UTC) - timedelta(minutes=30)
    with receiver() as end:
        subscribe(client, app_headers, end.url, ["enter", "exit", "push"])
        answer = client.get("/v1/nearby", params={**INSIDE, "device_id": "ana"}, headers=app_headers).json()
        assert answer["offers"] == []  # a triggered offer is pushed, not pulled
        for minutes, inside in [(1, False), (2, True), (3, False)]:
            ping(client, app_headers, "ana", datetime.now(UTC) + timedelta(minutes=minutes), inside)
        got = end.wait_for(lambda r: len(r) >= 5)
        time.sleep(0.5)
        got = list(end.received)
    assert [r.event["type"] for r in got] == ["enter", "push", "exit", "enter", "exit"]  # the 2nd push: capped
    push = got[1].event
    assert push["trigger"] == "enter" and push["device_id"] == "ana" and push["geofence_id"] == fence_id
    assert push["offer"]["offer_id"] == made.json()["id"] and push["offer"]["title"] == "2-for-1 lattes"
    [counted] = impressions(runtime)
    assert counted["event_id"] == push["offer"]["impression_id"] and counted["trigger"] == "enter"
    assert start < datetime.fromisoformat(counted["at"])
    runtime.consumer.drain()
    day = datetime.now(ZoneInfo("Europe/Lisbon")).date().isoformat()
    params = {"offer_id": made.json()["id"], "from": day, "to": day}
    [row] = client.get("/v1/reports/reach", params=params, headers=merchant).json()["rows"]
    assert (row["impressions"], row["pushes"], row["reach"]) == (1, 1, 1)


@pytest.mark.slow
def test_an_offer_triggered_on_a_dwell_of_two_minutes_is_pushed_alone_at_two_minutes(with_triggers):
    """A dwell time of the offer's own fires its push; the webhook's dwell event keeps its 300 s."""
    client, _ = with_triggers
    merchant, app_headers, _, fence_id = world(client)
    offer = {"title": "Stay for cake", "geofence_ids": [fence_id], "trigger": {"on": "dwell", "dwell_s": 120}}
    assert client.post("/v1/offers", json=offer, headers=merchant).status_code == 201
    bad = client.post("/v1/offers", json={**offer, "trigger": {"on": "enter", "dwell_s": 120}}, headers=merchant)
    assert bad.status_code == 422
    t0 = datetime.now(UTC) - timedelta(minutes=20)
    with receiver() as end:
        subscribe(client, app_headers, end.url, ["dwell", "push"])
        for seconds in (0, 60, 130, 200, 310, 400):
            ping(client, app_headers, "ben", t0 + timedelta(seconds=seconds), True)
        got = end.wait_for(lambda r: len(r) >= 2)
        time.sleep(0.5)
        got = list(end.received)
    assert [(r.event["type"], r.event["dwell_s"]) for r in got] == [("push", 130), ("dwell", 310)]
    assert got[0].event["trigger"] == "dwell"


def fire(runtime: Runtime, fence_id: str, app_id: str, devices: int) -> None:
    """Transitions as the presence engine hands them on (one enter per device)."""
    now = datetime.now(UTC)
    runtime.server.tracker.store.publish(  # type: ignore[union-attr]
        [
            Fired(f"key{i}", f"device-{i}", app_id, Transition("enter", fence_id, now + timedelta(milliseconds=i)))
            for i in range(devices)
        ]
    )


@pytest.mark.slow
def test_killing_a_delivery_worker_with_sigkill_mid_stream_loses_nothing(tmp_path, redis_url):
    database = f"sqlite:///{tmp_path / 'gt.db'}"
    prefix = f"t{secrets.token_hex(4)}"
    settings = make_settings(tmp_path, redis_url, database, redis_prefix=prefix, webhook_allow_private=True)
    runtime = Runtime.open(settings)  # the loops run only in the worker processes
    env = {
        **os.environ,
        "GEOTARGET_DATA_DIR": str(tmp_path / "data"),
        "GEOTARGET_DATABASE_URL": database,
        "GEOTARGET_REDIS_URL": redis_url,
        "GEOTARGET_REDIS_PREFIX": prefix,
        "GEOTARGET_ADMIN_KEY": ADMIN_KEY,
        "GEOTARGET_WEBHOOK_ALLOW_PRIVATE": "true",
        "GEOTARGET_WEBHOOK_CLAIM_IDLE_S": "1",
        "GEOTARGET_WEBHOOK_PARALLEL": "4",
        "GEOTARGET_CONSUME_IN_SERVE": "false",
    }
    worker = [sys.executable, "-m", "api", "deliver"]
    try:
        with TestClient(create_app(settings, runtime)) as client, receiver(delay_s=0.05) as end:
            _, app_headers, app, fence_id = world(client)
            subscribe(client, app_headers, end.url, ["enter"])
            fire(runtime, fence_id, app["id"], 120)
            first = subprocess.Popen(worker, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            end.wait_for(lambda r: len(r) >= 20, timeout_s=120)
            first.send_signal(signal.SIGKILL)
            first.wait()
            before = len(end.received)
            assert before < 120, "the worker finished before it could be killed mid-stream"
            second = subprocess.Popen(worker, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                got = end.wait_for(lambda r: len({x.event["device_id"] for x in r}) == 120, timeout_s=120)
            finally:
                second.terminate()
                second.wait(15)
        assert {r.event["device_id"] for r in got} == {f"device-{i}" for i in range(120)}
        assert len(got) <= 120 + 4  # at most the ones in flight when killed come twice
        stats = runtime.triggers.deliveries.stats()
        assert stats["delivered"] == 120
    finally:
        runtime.close()


def broker_enter(client: TestClient, url: str) -> tuple[dict, str]:
    """Subscribe ``url`` for enters, walk a device in; returns the subscription and the device id."""
    _, app_headers, _, _ = world(client)
    hook = subscribe(client, app_headers, url, ["enter"])
    device = f"d-{secrets.token_hex(3)}"
    time.sleep(0.3)  # a subscriber's session is up
    assert client.get("/v1/nearby", params={**INSIDE, "device_id": device}, headers=app_headers).is_success
    return hook, device


def signed(secret: str, headers: dict[str, str], body: bytes) -> bool:
    return verify(secret, headers, body, time.time())


@pytest.mark.timeout(60)
def test_events_are_published_signed_to_a_nats_subject(with_triggers):
    import nats

    client, _ = with_triggers
    subject = f"geotarget.test.{secrets.token_hex(4)}"
    got: list = []
    ready, done = threading.Event(), threading.Event()

    async def listen() -> None:
        nc = await nats.connect("nats://127.0.0.1:4222")
        sub = await nc.subscribe(subject)
        ready.set()
        message = await sub.next_msg(timeout=30)
        got.append(message)
        await nc.close()
        done.set()

    thread = threading.Thread(target=lambda: asyncio.run(listen()), daemon=True)
    thread.start()
    assert ready.wait(10)
    hook, device = broker_enter(client, f"nats://127.0.0.1:4222/{subject}")
    assert done.wait(30)
    [message] = got
    assert orjson.loads(message.data)["device_id"] == device
    assert signed(hook["secret"], dict(message.headers), message.data)


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_events_are_published_signed_to_an_mqtt_topic(with_triggers):
    import paho.mqtt.client as mqtt

    client, _ = with_triggers
    topic = f"geotarget/test/{secrets.token_hex(4)}"
    got: list = []
    arrived = threading.Event()
    listener = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)

    def on_message(_client, _userdata, message) -> None:
        got.append(message)
        arrived.set()

    listener.on_message = on_message
    listener.connect("127.0.0.1", 1883)
    listener.subscribe(topic, qos=1)
    listener.loop_start()
    try:
        hook, device = broker_enter(client, f"mqtt://127.0.0.1:1883/{topic}")
        assert arrived.wait(30)
    finally:
        listener.loop_stop()
        listener.disconnect()
    message = got[0]
    headers = dict(message.properties.UserProperty)
    assert orjson.loads(message.payload)["device_id"] == device
    assert signed(hook["secret"], headers, message.payload)


@pytest.mark.timeout(60)
def test_events_are_published_signed_to_a_rabbitmq_exchange(with_triggers):
    import pika

    client, _ = with_triggers
    exchange = f"geotarget-test-{secrets.token_hex(4)}"
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672))
    channel = connection.channel()
    channel.exchange_declare(exchange, exchange_type="topic", auto_delete=True)
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, exchange, routing_key="geotarget.#")
    try:
        hook, device = broker_enter(client, f"amqp://guest:guest@127.0.0.1:5672/{exchange}")
        deadline = time.monotonic() + 30
        method = None
        while method is None and time.monotonic() < deadline:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            time.sleep(0.1)
        assert method is not None, "nothing arrived on the exchange"
        assert method.routing_key == "geotarget.enter"
        assert orjson.loads(body)["device_id"] == device
        assert signed(hook["secret"], {k: str(v) for k, v in properties.headers.items()}, body)
    finally:
        connection.close()


def test_a_missing_exchange_is_a_failed_attempt_not_a_lost_event(with_triggers):
    client, runtime = with_triggers
    hook, _ = broker_enter(client, f"amqp://guest:guest@127.0.0.1:5672/no-such-exchange-{secrets.token_hex(3)}")
    deadline = time.monotonic() + 20
    listed: list = []
    while time.monotonic() < deadline:
        listed = runtime.triggers.deliveries.listed(hook["id"], None)
        if listed and listed[0].attempts >= 1:
            break
        time.sleep(0.2)
    assert listed and listed[0].status in ("pending", "failed") and listed[0].error
