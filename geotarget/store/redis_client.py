"""Redis connections with short, explicit timeouts, so a slow or absent Redis is a defined fault, not a hang.

A URL ``redis+cluster://host:port`` (any node) names a Redis Cluster: the clients are then cluster clients, and
``key_prefix`` makes the deployment's prefix a hash tag, so each script and transaction stays in one slot: with
one shard every key of the deployment is there; with several, each device's keys are in its shard's slot
(``store.keys``, docs/operations.md#redis-cluster)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.retry import Retry

CLUSTER_SCHEME = "redis+cluster://"


def is_cluster(url: str) -> bool:
    return url.startswith(CLUSTER_SCHEME)


def key_prefix(url: str, prefix: str) -> str:
    """``gt`` on one Redis; ``{gt}`` on a cluster (the hash tag of the deployment's slot)."""
    return f"{{{prefix}}}" if is_cluster(url) else prefix


def _client(url: str, **options: Any) -> redis.Redis:
    if not is_cluster(url):
        return redis.Redis.from_url(url, **options)
    # the cluster client speaks the same commands, scripts and pipelines for keys of one slot
    return cast(redis.Redis, RedisCluster.from_url("redis://" + url.removeprefix(CLUSTER_SCHEME), **options))


ScriptCall = tuple[Script, Sequence[Any], Sequence[Any]]  # a registered script, its keys, its arguments


def run_scripts(client: redis.Redis, calls: Sequence[ScriptCall]) -> list[Any]:
    """Each script's answer, in order: several in one round trip, except on a cluster, whose pipelines refuse
    scripts (there they run one after another)."""
    if isinstance(client, RedisCluster) or len(calls) == 1:  # one call: a pipeline would only add its own cost
        return [script(keys=keys, args=args) for script, keys, args in calls]
    pipe = client.pipeline(transaction=False)
    for script, keys, args in calls:
        script(keys=keys, args=args, client=pipe)
    return pipe.execute()


def text(value: object) -> str:
    """A Redis answer as text, whether the client decodes answers or not."""
    return value.decode() if isinstance(value, bytes) else str(value)


def close(client: Any) -> None:
    """Close a client; a cluster client's ``close()`` leaves its nodes' pools connected, so disconnect them."""
    if isinstance(client, RedisCluster):
        for node in client.get_nodes():  # type: ignore[no-untyped-call]
            if node.redis_connection is not None:
                node.redis_connection.connection_pool.disconnect()
    client.close()


def connect(url: str, timeout_ms: int = 50) -> redis.Redis:
    """A pooled client whose every call gives up after ``timeout_ms``, connecting included, and never retries:
    on the request path a late answer is as bad as none."""
    timeout_s = timeout_ms / 1000
    return _client(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )


def connect_blocking(url: str, socket_timeout_s: float | None = None) -> redis.Redis:
    """A client for pub/sub listeners and background work, where waiting is the point (``socket_timeout_s``
    bounds one read, for loops that must notice a dead connection)."""
    return _client(
        url, socket_connect_timeout=2, socket_timeout=socket_timeout_s, socket_keepalive=True, decode_responses=True
    )


def persistence(client: redis.Redis) -> str:
    """How this Redis keeps data across a restart: ``aof``, ``rdb`` or ``none`` (what caps need is either)."""
    try:
        config = client.config_get("appendonly")
        config.update(client.config_get("save"))
        if config.get("appendonly") == "yes":
            return "aof"
        return "rdb" if config.get("save") else "none"
    except redis.ResponseError:  # CONFIG is often disabled on managed Redis; INFO still tells about AOF
        info = client.info("persistence")
        return "aof" if info.get("aof_enabled") else "unknown"


def connect_raw(url: str, socket_timeout_s: float = 10.0) -> redis.Redis:
    """A client answering bytes (bodies are sent exactly as stored), for the trigger and delivery loops, whose
    reads block up to a second; ``socket_timeout_s`` bounds each call."""
    return _client(url, socket_connect_timeout=2, socket_timeout=socket_timeout_s, socket_keepalive=True)


def ensure_group(client: redis.Redis, stream: str, group: str) -> None:
    """The consumer group on the stream, made (with the stream) if missing; already there is fine."""
    try:
        client.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
