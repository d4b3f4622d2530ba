"""Sending a signed event: an HTTP POST, or a publish to NATS, MQTT or AMQP (RabbitMQ), behind one call.

Every send resolves the host itself (again once its last check is ``ADDRESS_TTL_S`` old), refuses loopback,
private and link-local addresses unless allowed (``triggers.webhooks.refusal``), and then connects to the address
it checked: a name that resolves differently a moment later (DNS rebinding) cannot redirect it. HTTP redirects
are not followed and at most ``MAX_ANSWER_BYTES`` of an answer are read. HTTP goes through urllib3 (a connection
pool per checked address and host name, TLS verified against the host name): a send costs about half of
httpx's CPU, and a busy webhook sends many. Broker connections are kept and reused per server *and
credentials* (a webhook with a wrong password never rides on another tenant's connection); a broken one is
dropped and made again on the next send.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import urllib3

from geotarget.triggers.webhooks import Sent, Target, TargetError, parse_target, refusal

Resolver = Callable[[str, int], list[str]]
ADDRESS_TTL_S = 30.0  # a host's checked address is used this long before it is resolved and checked again
MAX_ANSWER_BYTES = 65_536  # of a receiver's answer: only its status matters; a longer one costs its connection


def resolve(host: str, port: int) -> list[str]:
    return list(dict.fromkeys(str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)))


class Transports:
    def __init__(self, allow_private: bool, timeout_s: float = 10.0, resolver: Resolver = resolve) -> None:
        self.allow_private = allow_private
        self.timeout_s = timeout_s
        self.resolver = resolver
        self._http = urllib3.PoolManager(
            num_pools=512, maxsize=8, retries=False, timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s)
        )
        self._brokers: dict[tuple[str, str, int, str | None, str | None], _Broker] = {}
        self._checked: dict[tuple[str, int], tuple[float, str]] = {}  # (host, port) -> (until, address)
        self._lock = threading.Lock()

    def address(self, target: Target) -> str:
        """The checked address to connect to, or ``TargetError`` saying why there is none. Kept for
        ``ADDRESS_TTL_S``: a name that resolves elsewhere meanwhile still gets only an address that was checked."""
        now = time.monotonic()
        until, address = self._checked.get((target.host, target.port), (0.0, ""))
        if until > now:
            return address
        address = self._check(target)
        if len(self._checked) > 10_000:
            self._checked.clear()
        self._checked[(target.host, target.port)] = (now + ADDRESS_TTL_S, address)
        return address

    def _check(self, target: Target) -> str:
        try:
            found = self.resolver(target.host, target.port)
        except (OSError, UnicodeError) as exc:
            raise TargetError(f"{target.host} does not resolve ({exc.__class__.__name__})") from None
        if not found:
            raise TargetError(f"{target.host} does not resolve")
        for address in found:
            reason = refusal(address, self.allow_private)
            if reason:
                raise TargetError(f"{target.host} {'is' if address == target.host else 'resolves to'} {reason}")
        return found[0]

    def send(self, url: str, headers: Mapping[str, str], body: bytes) -> Sent:
        started = time.perf_counter()
        try:
            target = _parsed(url)
            address = self.address(target)
            if target.broker:
                self._broker(url, target, address).publish(target.path, dict(headers), body, self.timeout_s)
                return Sent(True, latency_ms=_since(started))
            return self._post(target, address, headers, body, started)
        except TargetError as exc:
            return Sent(False, error=str(exc), latency_ms=_since(started))
        except Exception as exc:
            return Sent(False, error=f"{exc.__class__.__name__}: {exc}"[:300], latency_ms=_since(started))

    def _post(self, target: Target, address: str, headers: Mapping[str, str], body: bytes, started: float) -> Sent:
        default = {"http": 80, "https": 443}[target.scheme]
        authority = target.host if target.port == default else f"{target.host}:{target.port}"
        tls = {"server_hostname": target.host, "assert_hostname": target.host} if target.scheme == "https" else None
        pool = self._http.connection_from_host(address, target.port, target.scheme, pool_kwargs=tls)
        response = pool.urlopen(
            "POST",
            target.path,
            body=body,
            headers={**headers, "Host": authority, "User-Agent": "geotarget-webhooks/1"},
            redirect=False,
            retries=False,
            assert_same_host=False,
            preload_content=False,
        )
        try:
            response.read(MAX_ANSWER_BYTES)
            if response.read(1):  # more than we read: the connection is not reused
                response.close()
        finally:
            response.release_conn()
        ok = 200 <= response.status < 300
        error = "" if ok else f"the receiver answered {response.status}"
        return Sent(ok, response.status, error, _since(started))

    def _broker(self, url: str, target: Target, address: str) -> _Broker:
        key = (target.scheme, address, target.port, *_credentials(url))  # a password never rides on another's
        with self._lock:
            broker = self._brokers.get(key)
            if broker is not None and broker.broken:
                with contextlib.suppress(Exception):
                    broker.close()
                broker = None
            if broker is None:
                maker = {"nats": _Nats, "mqtt": _Mqtt, "amqp": _Amqp}[target.scheme]
                broker = self._brokers[key] = maker(url, address, target.port, self.timeout_s)
            return broker

    def close(self) -> None:
        self._http.clear()
        with self._lock:
            for broker in self._brokers.values():
                broker.close()
            self._brokers.clear()


@functools.lru_cache(maxsize=4096)
def _parsed(url: str) -> Target:
    return parse_target(url)


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _credentials(url: str) -> tuple[str | None, str | None]:
    parts = urlsplit(url)
    return (unquote(parts.username) if parts.username else None, unquote(parts.password) if parts.password else None)


class _Broker:
    broken = False

    def publish(self, where: str, headers: dict[str, str], body: bytes, timeout_s: float) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _Nats(_Broker):
    """nats-py is asyncio-only: its connection lives on a loop in a thread of its own."""

    def __init__(self, url: str, address: str, port: int, timeout_s: float) -> None:
        from nats.aio.client import Client

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="nats-deliveries", daemon=True)
        self._thread.start()
        user, password = _credentials(url)
        self._client: Any = Client()
        connect = self._client.connect(
            f"nats://{address}:{port}",
            user=user,
            password=password,
            connect_timeout=max(1, round(timeout_s)),
            max_reconnect_attempts=0,
            allow_reconnect=False,
        )
        try:
            self._run(connect, timeout_s)
        except BaseException:
            self.close()  # a refused connection leaves nothing open behind it
            raise

    def _run(self, coroutine: Any, timeout_s: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout_s)

    def publish(self, where: str, headers: dict[str, str], body: bytes, timeout_s: float) -> None:
        subject = where.replace("/", ".")
        try:
            self._run(self._client.publish(subject, body, headers=headers), timeout_s)
            self._run(self._client.flush(timeout=timeout_s), timeout_s + 1)  # the server has it
        except Exception:
            self.broken = True
            raise

    def close(self) -> None:
        try:
            self._run(self._client.close(), 5)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop.close()


class _Mqtt(_Broker):
    """MQTT 5, QoS 1: a publish counts once the broker acknowledged it; the signature headers ride as user
    properties."""

    def __init__(self, url: str, address: str, port: int, timeout_s: float) -> None:
        import paho.mqtt.client as mqtt

        self._mqtt = mqtt
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)  # type: ignore[attr-defined]
        user, password = _credentials(url)
        if user:
            self._client.username_pw_set(user, password)
        answered, refused = threading.Event(), []

        def on_connect(_client: Any, _userdata: Any, _flags: Any, reason: Any, _properties: Any) -> None:
            if reason.is_failure:
                refused.append(str(reason))
            answered.set()

        self._client.on_connect = on_connect
        self._client.connect(address, port, keepalive=60)
        self._client.loop_start()
        if not answered.wait(timeout_s) or refused:  # the broker's answer, not the first publish, says no
            self.close()
            raise ConnectionRefusedError(f"the MQTT broker refused the connection: {''.join(refused) or 'no answer'}")

    def publish(self, where: str, headers: dict[str, str], body: bytes, timeout_s: float) -> None:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.UserProperty = list(headers.items())
        properties.ContentType = "application/json"
        info = self._client.publish(where, body, qos=1, properties=properties)
        info.wait_for_publish(timeout_s)
        if not info.is_published():
            self.broken = True
            raise TimeoutError(f"the MQTT broker did not acknowledge within {timeout_s:g} s (rc {info.rc})")

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


class _Amqp(_Broker):
    """AMQP 0-9-1 with publisher confirms: a publish counts once the broker routed it. The exchange must exist
    (geotarget never declares one on a user's broker); the routing key is ``geotarget.<event type>``.

    A blocking connection only answers heartbeats while it is used, so an idle one goes stale (the broker or a
    NAT drops it). Before each publish the connection is serviced; a stale one is made again, and a publish that
    meets a dropped connection is tried once more on a new one (receivers deduplicate by event id)."""

    def __init__(self, url: str, address: str, port: int, timeout_s: float) -> None:
        import pika

        user, password = _credentials(url)
        self._pika = pika
        self._parameters = pika.ConnectionParameters(
            host=address,
            port=port,
            credentials=pika.PlainCredentials(user or "guest", password or "guest"),
            socket_timeout=timeout_s,
            blocked_connection_timeout=timeout_s,
            heartbeat=30,
        )
        self._lock = threading.Lock()  # a blocking connection is not thread-safe
        self._connect()

    def _connect(self) -> None:
        self._connection = self._pika.BlockingConnection(self._parameters)
        self._channel = self._connection.channel()
        self._channel.confirm_delivery()

    def _fresh(self) -> None:
        try:
            self._connection.process_data_events(0)  # heartbeats, and news of a close
            if self._connection.is_open and self._channel.is_open:
                return
        except self._pika.exceptions.AMQPError:
            pass
        with contextlib.suppress(Exception):
            self._connection.close()
        self._connect()

    def publish(self, where: str, headers: dict[str, str], body: bytes, timeout_s: float) -> None:
        kind = headers.get("Geotarget-Event-Type", "event")
        properties = self._pika.BasicProperties(
            content_type="application/json", headers=headers, delivery_mode=2, message_id=headers["Geotarget-Event-Id"]
        )
        dropped = (self._pika.exceptions.AMQPConnectionError, self._pika.exceptions.ChannelWrongStateError)
        with self._lock:
            try:
                self._fresh()
                try:
                    self._channel.basic_publish(where, f"geotarget.{kind}", body, properties, mandatory=False)
                except dropped:
                    self._fresh()
                    self._channel.basic_publish(where, f"geotarget.{kind}", body, properties, mandatory=False)
            except Exception:
                self.broken = True
                raise

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._connection.close()
