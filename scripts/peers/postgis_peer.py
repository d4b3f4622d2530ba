"""The peer a user would build in an afternoon: FastAPI, PostGIS (geography, GiST, ``ST_DWithin``) and a Redis
Lua script for per-device daily caps that also appends the impressions to a stream (one round trip).

    PEER_DSN=postgresql://postgres@127.0.0.1:5432/test PEER_REDIS=redis://127.0.0.1:6379/0 PEER_REACH_M=500 \
        uvicorn scripts.peers.postgis_peer:app --workers 2

Same request and answer shape as ``GET /v1/nearby``; the ranking is done by the database.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import psycopg
import redis
from fastapi import FastAPI, Header, HTTPException, Query
from fastapi.responses import Response

_HERE = Path(__file__).parent
_QUERY = (_HERE / "postgis_nearby.sql").read_text()
_CAP = """
local served = {}
for i = 1, #KEYS do
  if #served >= tonumber(ARGV[1]) then break end
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if used < tonumber(ARGV[i + 2]) then
    if redis.call('INCR', KEYS[i]) == 1 then redis.call('EXPIRE', KEYS[i], 90000) end
    served[#served + 1] = i
    redis.call('XADD', ARGV[2], 'MAXLEN', '~', 1000000, '*', 'e', ARGV[i + 2 + #KEYS])
  end
end
return served
"""

app = FastAPI()
_local = threading.local()
_redis = redis.Redis.from_url(os.environ.get("PEER_REDIS", "redis://127.0.0.1:6379/0"))
_cap = _redis.register_script(_CAP)
_REACH_M = float(os.environ.get("PEER_REACH_M", "500"))
_KEY = os.environ.get("PEER_KEY", "peer-key")


def _connection() -> psycopg.Connection[Any]:
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = psycopg.connect(os.environ["PEER_DSN"], autocommit=True, prepare_threshold=0)
        _local.conn = conn
    return conn


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/readyz")
def readyz() -> dict[str, str]:
    _connection().execute("SELECT 1")
    return {"status": "ready"}


@app.get("/v1/nearby")
def nearby(
    lat: float = Query(ge=-90, le=90),
    lon: float = Query(ge=-180, le=180),
    device_id: str = Query(min_length=1, max_length=200),
    accuracy_m: float | None = None,
    limit: int = Query(5, ge=1, le=20),
    authorization: str = Header(""),
) -> Response:
    if authorization != f"Bearer {_KEY}":
        raise HTTPException(401, "bad key")
    rows = _connection().execute(_QUERY, {"lat": lat, "lon": lon, "reach": _REACH_M}).fetchall()
    per_merchant: dict[int, int] = {}
    ranked = []
    for row in rows:
        if per_merchant.get(row[1], 0) < 2:
            per_merchant[row[1]] = per_merchant.get(row[1], 0) + 1
            ranked.append(row)
    offers = []
    if ranked:
        day = time.strftime("%Y-%m-%d")
        keys = [f"peer:{{{device_id}}}:{row[0]}:{day}" for row in ranked]
        events = [
            orjson.dumps({"offer_id": row[0], "device": device_id, "lat": lat, "lon": lon, "id": uuid.uuid4().hex})
            for row in ranked
        ]
        served = _cap(keys=keys, args=[limit, "peer:events", *(row[4] for row in ranked), *events])
        offers = [
            {
                "offer_id": ranked[i - 1][0],
                "merchant_id": ranked[i - 1][1],
                "title": ranked[i - 1][2],
                "geofence_id": ranked[i - 1][3],
                "inside": ranked[i - 1][5],
                "distance_m": round(ranked[i - 1][6], 1),
            }
            for i in served
        ]
    return Response(orjson.dumps({"offers": offers}), media_type="application/json")
