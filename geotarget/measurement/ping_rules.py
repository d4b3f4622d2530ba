"""The one ping validator. ``POST /v1/pings`` (JSON rows) and ``geotarget ingest`` (CSV or Parquet columns) turn
their input into the same ``PingColumns`` and judge every row by the same ``RULES``, column-wise.

A value of the wrong kind (a JSON string where a number belongs, CSV text that is not a number) counts as given
and wrong, never as absent. Each row is judged by the first rule it breaks; the rules are, in order:

>>> [rule.reason for rule in RULES]  # doctest: +NORMALIZE_WHITESPACE
['not an object', 'device_id missing or longer than 200', 'lat/lon not a finite number',
 'lat/lon outside ±90/±180', 'ts not ISO 8601 with an offset, nor epoch seconds',
 'ts before 2000 or after tomorrow', 'accuracy_m outside 0–100,000', 'lmt not true or false']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

MAX_DEVICE_ID = 200
MAX_ACCURACY_M = 100_000
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
COLUMNS = ("device_id", "lat", "lon", "ts", "accuracy_m", "lmt")
REQUIRED = COLUMNS[:4]
_OFFSET = r"(?:Z|z|[+-]\d\d:?\d\d)$"
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no", "")
Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class PingColumns:
    """Rows as columns. Missing or malformed numbers are NaN, with ``*_malformed`` saying which were given."""

    device_id: pd.Series  # strings; NA where missing or not a string
    lat: npt.NDArray[np.float64]
    lon: npt.NDArray[np.float64]
    ts: pd.Series  # UTC timestamps; NaT where missing, naive or unreadable
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
    length = c.device_id.str.len().fillna(0).to_numpy()
    return np.asarray(c.device_id.isna().to_numpy() | (length == 0) | (length > MAX_DEVICE_ID))


def _outside(c: PingColumns, _: datetime) -> Mask:
    return np.asarray((np.abs(c.lat) > 90) | (np.abs(c.lon) > 180))


def _out_of_range(c: PingColumns, now: datetime) -> Mask:
    latest = pd.Timestamp(now + timedelta(days=1))
    return np.asarray(c.ts.notna().to_numpy() & ((c.ts < pd.Timestamp(EARLIEST)) | (c.ts > latest)).to_numpy())


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
        lambda c, i: "ts must be ISO 8601 with a UTC offset (Z or +hh:mm), or epoch seconds",
        lambda c, _: np.asarray(c.ts.isna().to_numpy()),
    ),
    Rule(
        "ts before 2000 or after tomorrow",
        lambda c, i: "ts",
        lambda c, i: f"{c.ts.iloc[i].isoformat()} is outside the accepted range (2000 until tomorrow)",
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


def judge(columns: PingColumns, now: datetime) -> npt.NDArray[np.int_]:
    """For each row, the index in ``RULES`` of the first rule it breaks, or -1 for a good ping."""
    verdict = np.full(len(columns), -1)
    for number, rule in enumerate(RULES):
        verdict[(verdict == -1) & rule.broken(columns, now)] = number
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
    stamps = [None if isinstance(t := row.get("ts"), bool) else t for row in objects]
    return PingColumns(
        device_id=pd.Series(devices, dtype="string"),
        lat=lat,
        lon=lon,
        ts=timestamps(pd.Series(stamps, dtype=object)),
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
    return PingColumns(
        device_id=frame["device_id"].astype("string").reset_index(drop=True),
        lat=pd.to_numeric(frame["lat"], errors="coerce").to_numpy(dtype=np.float64),
        lon=pd.to_numeric(frame["lon"], errors="coerce").to_numpy(dtype=np.float64),
        ts=timestamps(frame["ts"].reset_index(drop=True)),
        accuracy_m=accuracy,
        accuracy_malformed=accuracy_malformed,
        lmt=lmt,
        lmt_malformed=lmt_malformed,
        not_object=np.zeros(n, dtype=bool),
    )


def timestamps(column: pd.Series) -> pd.Series:
    """UTC timestamps; NaT where a value is neither ISO 8601 with an offset nor epoch seconds."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return pd.to_datetime(column, unit="s", utc=True, errors="coerce")
    text = column.astype("string")
    numeric = pd.to_numeric(column.where(column.map(_is_number)), errors="coerce")
    numeric = numeric.where(np.isfinite(numeric) & (numeric.abs() < 1e11))
    parsed = pd.to_datetime(
        text.where(text.str.contains(_OFFSET, regex=True, na=False)), utc=True, errors="coerce", format="ISO8601"
    )
    from_epoch = pd.to_datetime(numeric, unit="s", utc=True, errors="coerce")
    return parsed.fillna(from_epoch)


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
