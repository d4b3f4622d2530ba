"""The one ping validator. ``POST /v1/pings`` (JSON rows) and ``geotarget ingest`` (CSV or Parquet columns) turn
their input into the same ``PingColumns`` and judge every row by the same ``RULES``, column-wise.

A value of the wrong kind (a JSON string where a number belongs, CSV text that is not a number) counts as given
and wrong, never as absent. Each row is judged by the first rule it breaks; the rules are, in order:

>>> [rule.reason for rule in RULES]  # doctest: +NORMALIZE_WHITESPACE
['not an object', 'device_id missing or longer than 200', 'lat/lon not a finite number',
 'lat/lon outside ±90/±180', 'ts not ISO 8601 with an offset, nor epoch seconds',
 'ts before 2000 or ahead of the clock', 'accuracy_m outside 0–100,000', 'lmt not true or false']

A ping dated more than ``max_ahead_s`` (``GEOTARGET_MAX_CLOCK_SKEW_S``, 300) ahead of the server's clock is
refused: a future timestamp would freeze the device's presence (pings older than the newest one change nothing).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

MAX_DEVICE_ID = 200
MAX_ACCURACY_M = 100_000
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
MAX_CLOCK_SKEW_S = 300
COLUMNS = ("device_id", "lat", "lon", "ts", "accuracy_m", "lmt")
REQUIRED = COLUMNS[:4]
_OFFSET = r"(?:Z|z|[+-]\d\d:?\d\d)$"
_OFFSET_RE = re.compile(_OFFSET)
_MAX_EPOCH_S = 9_223_372_036  # 2262-04-11, the last second a datetime64[ns] holds: beyond, not a timestamp
_MILLIS = (1e11, 1e14)  # numbers in this range are most likely epoch milliseconds (1973 to 5138)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no", "")
Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class PingColumns:
    """Rows as columns. Missing or malformed numbers are NaN, with ``*_malformed`` saying which were given."""

    # str; None where missing or not a string. From a typed file, the file's Arrow column: a million Python
    # strings per chunk, built holding the GIL, held up the bulk load's other thread, and ingest never needs them.
    device_id: npt.NDArray[np.object_] | pa.Array
    device_length: npt.NDArray[np.int64]  # 0 where missing
    lat: npt.NDArray[np.float64]
    lon: npt.NDArray[np.float64]
    ts: npt.NDArray[np.datetime64]  # UTC, datetime64[ns]; NaT where missing, naive or unreadable
    ts_given: Mask  # a ts was sent (readable or not)
    ts_millis: Mask  # a number in the range of epoch *milliseconds* of the last decades and the next
    accuracy_m: npt.NDArray[np.float64]  # NaN: not given
    accuracy_malformed: Mask
    lmt: Mask
    lmt_malformed: Mask
    not_object: Mask  # JSON rows that are not objects at all

    def __len__(self) -> int:
        return len(self.lat)


@dataclass(frozen=True)
class Rule:
    reason: str  # counted by ingest
    field: Callable[[PingColumns, int], str]  # which field of a row broke it
    message: Callable[[PingColumns, int], str]  # what the API says about that row
    broken: Callable[[PingColumns, datetime], Mask]


def _coordinate_field(columns: PingColumns, i: int) -> str:
    lat = columns.lat[i]
    return "lat" if not np.isfinite(lat) or abs(lat) > 90 else "lon"


def _coordinate_message(columns: PingColumns, i: int) -> str:
    name = _coordinate_field(columns, i)
    value, bound = (columns.lat[i], 90) if name == "lat" else (columns.lon[i], 180)
    return f"{value:g} is outside ±{bound}"


def _device_broken(c: PingColumns, _: datetime) -> Mask:
    return np.asarray((c.device_length == 0) | (c.device_length > MAX_DEVICE_ID))


def _outside(c: PingColumns, _: datetime) -> Mask:
    return np.asarray((np.abs(c.lat) > 90) | (np.abs(c.lon) > 180))


def _out_of_range(c: PingColumns, latest: datetime) -> Mask:
    ns = c.ts.astype(np.int64)  # NaT is the smallest int64, so it is judged by the rule before this one only
    return np.asarray(~np.isnat(c.ts) & ((ns < _ns(EARLIEST)) | (ns > _ns(latest))))


def _ns(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def ns_to_datetime(ns: int) -> datetime:
    """A stored ``ts`` back as an aware datetime (microseconds, like every ``datetime``)."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


def _ts_message(c: PingColumns, i: int) -> str:
    expected = "ISO 8601 with a UTC offset (Z or +hh:mm), or epoch seconds"
    if c.ts_millis[i]:
        return f"ts looks like milliseconds since 1970: divide by 1,000 (ts is {expected})"
    return f"ts must be {expected}" if c.ts_given[i] else f"ts is missing: give the moment of the fix, {expected}"


def _inaccurate(c: PingColumns, _: datetime) -> Mask:
    given = ~np.isnan(c.accuracy_m)
    return np.asarray(c.accuracy_malformed | (given & ((c.accuracy_m < 0) | (c.accuracy_m > MAX_ACCURACY_M))))


RULES: tuple[Rule, ...] = (
    Rule(
        "not an object",
        lambda c, i: "",
        lambda c, i: "a ping is an object with device_id, lat, lon, ts",
        lambda c, _: c.not_object,
    ),
    Rule(
        "device_id missing or longer than 200",
        lambda c, i: "device_id",
        lambda c, i: f"device_id must be a string of 1 to {MAX_DEVICE_ID} characters",
        _device_broken,
    ),
    Rule(
        "lat/lon not a finite number",
        _coordinate_field,
        lambda c, i: "must be a finite number of degrees",
        lambda c, _: np.asarray(~np.isfinite(c.lat) | ~np.isfinite(c.lon)),
    ),
    Rule("lat/lon outside ±90/±180", _coordinate_field, _coordinate_message, _outside),
    Rule(
        "ts not ISO 8601 with an offset, nor epoch seconds",
        lambda c, i: "ts",
        lambda c, i: _ts_message(c, i),
        lambda c, _: np.isnat(c.ts),
    ),
    Rule(
        "ts before 2000 or ahead of the clock",
        lambda c, i: "ts",
        lambda c, i: (
            f"{ns_to_datetime(int(c.ts[i].astype(np.int64))).isoformat()} is outside the accepted range"
            " (2000 until the server's clock plus GEOTARGET_MAX_CLOCK_SKEW_S)"
        ),
        _out_of_range,
    ),
    Rule(
        "accuracy_m outside 0–100,000",
        lambda c, i: "accuracy_m",
        lambda c, i: f"accuracy_m must be a number of metres, 0 to {MAX_ACCURACY_M:,}",
        _inaccurate,
    ),
    Rule(
        "lmt not true or false",
        lambda c, i: "lmt",
        lambda c, i: "lmt must be true or false",
        lambda c, _: c.lmt_malformed,
    ),
)


def judge(columns: PingColumns, now: datetime, max_ahead_s: float = MAX_CLOCK_SKEW_S) -> npt.NDArray[np.int_]:
    """For each row, the index in ``RULES`` of the first rule it breaks, or -1 for a good ping."""
    verdict = np.full(len(columns), -1)
    latest = now + timedelta(seconds=max_ahead_s)  # what the rules call "now": the latest moment accepted
    for number, rule in enumerate(RULES):
        verdict[(verdict == -1) & rule.broken(columns, latest)] = number
    return verdict


def from_rows(rows: Sequence[Any]) -> PingColumns:
    """JSON rows: numbers must be JSON numbers, ``lmt`` a JSON boolean."""
    objects = [row if isinstance(row, Mapping) else {} for row in rows]

    def numbers(name: str) -> tuple[npt.NDArray[np.float64], Mask]:
        raw = [row.get(name) for row in objects]
        ok = [isinstance(v, int | float) and not isinstance(v, bool) for v in raw]
        values = np.array([v if good else np.nan for v, good in zip(raw, ok, strict=True)], dtype=np.float64)
        return values, np.array([v is not None and not good for v, good in zip(raw, ok, strict=True)], dtype=bool)

    lat, _ = numbers("lat")
    lon, _ = numbers("lon")
    accuracy, accuracy_malformed = numbers("accuracy_m")
    lmt_raw = [row.get("lmt", False) for row in objects]
    devices = [d if isinstance(d := row.get("device_id"), str) else None for row in objects]
    raw_ts = [row.get("ts") for row in objects]
    stamps = [_epoch_ns(value) for value in raw_ts]
    return PingColumns(
        device_id=np.array(devices, dtype=object),
        device_length=np.array([0 if d is None else len(d) for d in devices], dtype=np.int64),
        lat=lat,
        lon=lon,
        ts=np.array(["NaT" if s is None else s for s in stamps], dtype="datetime64[ns]"),
        ts_given=np.array([v is not None and v != "" for v in raw_ts], dtype=bool),
        ts_millis=np.array([_in_millis(v) for v in raw_ts], dtype=bool),
        accuracy_m=accuracy,
        accuracy_malformed=accuracy_malformed,
        lmt=np.array([v is True for v in lmt_raw], dtype=bool),
        lmt_malformed=np.array([not isinstance(v, bool) for v in lmt_raw], dtype=bool),
        not_object=np.array([not isinstance(row, Mapping) for row in rows], dtype=bool),
    )


def from_frame(frame: pd.DataFrame) -> PingColumns:
    """A chunk of a CSV or Parquet file (``REQUIRED`` columns present; ``accuracy_m`` and ``lmt`` optional)."""
    n = len(frame)
    accuracy, accuracy_malformed = np.full(n, np.nan), np.zeros(n, dtype=bool)
    if "accuracy_m" in frame:
        given = frame["accuracy_m"].notna() & (frame["accuracy_m"].astype("string").str.strip() != "")
        accuracy = pd.to_numeric(frame["accuracy_m"], errors="coerce").to_numpy(dtype=np.float64)
        accuracy_malformed = given.to_numpy() & np.isnan(accuracy)
    lmt, lmt_malformed = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    if "lmt" in frame:
        text = frame["lmt"].astype("string").str.strip().str.lower().fillna("")
        lmt, lmt_malformed = text.isin(_TRUE).to_numpy(), ~text.isin(_TRUE + _FALSE).to_numpy()
    devices = frame["device_id"].astype("string")
    ts = timestamps(frame["ts"]).dt.tz_convert(None).astype("datetime64[ns]")
    ts_text = frame["ts"].astype("string").str.strip()
    ts_number = pd.to_numeric(ts_text, errors="coerce").abs()
    return PingColumns(
        device_id=devices.to_numpy(dtype=object, na_value=None),
        device_length=devices.str.len().fillna(0).to_numpy(dtype=np.int64),
        lat=pd.to_numeric(frame["lat"], errors="coerce").to_numpy(dtype=np.float64),
        lon=pd.to_numeric(frame["lon"], errors="coerce").to_numpy(dtype=np.float64),
        ts=ts.to_numpy(dtype="datetime64[ns]"),
        ts_given=(ts_text.fillna("") != "").to_numpy(dtype=bool),
        ts_millis=((ts_number >= _MILLIS[0]) & (ts_number < _MILLIS[1])).fillna(False).to_numpy(dtype=bool),
        accuracy_m=accuracy,
        accuracy_malformed=accuracy_malformed,
        lmt=lmt,
        lmt_malformed=lmt_malformed,
        not_object=np.zeros(n, dtype=bool),
    )


def from_batch(batch: pa.RecordBatch) -> PingColumns:
    """A chunk of a bulk file as Arrow gives it. Typed Parquet (numbers for lat, lon, ts and accuracy_m, text for
    device_id, no lmt) takes the rule of ``from_frame`` without turning numbers into text and back; anything else
    goes through ``from_frame``."""
    types = dict(zip(batch.schema.names, batch.schema.types, strict=True))
    numbers = [types.get(name, pa.float64()) for name in ("lat", "lon", "ts", "accuracy_m")]
    typed = all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in numbers)
    text = pa.types.is_string(types["device_id"]) or pa.types.is_large_string(types["device_id"])
    if not typed or "lmt" in types or not text:
        return from_frame(batch.to_pandas())
    n = batch.num_rows
    given_ts = batch.column("ts").to_pandas()  # what from_frame sees (float64 with NaN where an int is null)
    number = given_ts.abs()
    accuracy = np.full(n, np.nan)
    if "accuracy_m" in types:
        accuracy = batch.column("accuracy_m").to_pandas().to_numpy(dtype=np.float64, na_value=np.nan)
    devices = batch.column("device_id")
    return PingColumns(
        device_id=devices,
        device_length=pc.utf8_length(devices).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64),
        lat=batch.column("lat").to_pandas().to_numpy(dtype=np.float64, na_value=np.nan),
        lon=batch.column("lon").to_pandas().to_numpy(dtype=np.float64, na_value=np.nan),
        ts=timestamps(given_ts).dt.tz_convert(None).astype("datetime64[ns]").to_numpy(dtype="datetime64[ns]"),
        ts_given=given_ts.notna().to_numpy(dtype=bool),
        ts_millis=((number >= _MILLIS[0]) & (number < _MILLIS[1])).to_numpy(dtype=bool),
        accuracy_m=accuracy,
        accuracy_malformed=np.zeros(n, dtype=bool),  # a number or null: never given and wrong
        lmt=np.zeros(n, dtype=bool),
        lmt_malformed=np.zeros(n, dtype=bool),
        not_object=np.zeros(n, dtype=bool),
    )


def _epoch_ns(value: Any) -> int | None:
    """One JSON ``ts``: the rule of ``timestamps`` for a single value, without pandas (an app's request is small)."""
    if isinstance(value, str) and _OFFSET_RE.search(value):
        try:
            at = datetime.fromisoformat(value[:-1] + "+00:00" if value[-1] in "Zz" else value)
        except ValueError:
            return None
        if at.tzinfo is None or not -_MAX_EPOCH_S < at.timestamp() < _MAX_EPOCH_S:
            return None
        return _ns(at)
    if not _is_number(value):
        return None
    seconds = float(value)
    return round(seconds * 1_000_000) * 1000 if math.isfinite(seconds) and abs(seconds) < _MAX_EPOCH_S else None


def timestamps(column: pd.Series) -> pd.Series:
    """A file's ``ts`` column as UTC timestamps; NaT where a value is neither ISO 8601 with an offset nor epoch
    seconds (``_epoch_ns`` is the same rule for one value)."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        seconds = column.astype(np.float64)
        return pd.to_datetime(seconds.where(seconds.abs() < _MAX_EPOCH_S), unit="s", utc=True, errors="coerce")
    return _nanosecond_range(_parsed(column))


def _nanosecond_range(stamps: pd.Series) -> pd.Series:
    """NaT beyond what datetime64[ns] holds (before 1677, after 2262): never a ping's time, and no crash later."""
    latest = pd.Timestamp(_MAX_EPOCH_S, unit="s", tz="UTC")
    earliest = pd.Timestamp(-_MAX_EPOCH_S, unit="s", tz="UTC")
    return stamps.where((stamps > earliest) & (stamps < latest))


def _parsed(column: pd.Series) -> pd.Series:
    text = column.astype("string")
    numeric = pd.to_numeric(text, errors="coerce")
    numeric = numeric.where(np.isfinite(numeric) & (numeric.abs() < _MAX_EPOCH_S))
    parsed = pd.to_datetime(
        text.where(text.str.contains(_OFFSET, regex=True, na=False)), utc=True, errors="coerce", format="ISO8601"
    )
    from_epoch = pd.to_datetime(numeric, unit="s", utc=True, errors="coerce")
    return parsed.fillna(from_epoch)


def _in_millis(value: Any) -> bool:
    return _is_number(value) and _MILLIS[0] <= abs(float(value)) < _MILLIS[1]


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return False
