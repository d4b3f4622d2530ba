"""One ping validator: a row means the same whether an app posts it as JSON or a file brings it as CSV."""

from __future__ import annotations

import dataclasses
import io
import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geotarget.measurement import ping_rules

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
GOOD = {"device_id": "phone", "lat": 38.71125, "lon": -9.13015, "ts": "2026-11-24T10:00:00Z"}

# (what is wrong, the row, the reason both paths give, the field the API names)
CASES = [
    ("nothing", GOOD, None, None),
    ("epoch seconds", {**GOOD, "ts": 1_795_000_000}, None, None),
    ("empty device", {**GOOD, "device_id": ""}, "device_id missing or longer than 200", "device_id"),
    ("long device", {**GOOD, "device_id": "x" * 201}, "device_id missing or longer than 200", "device_id"),
    ("lat outside", {**GOOD, "lat": 123.456}, "lat/lon outside ±90/±180", "lat"),
    ("lon outside", {**GOOD, "lon": 678.9}, "lat/lon outside ±90/±180", "lon"),
    ("naive ts", {**GOOD, "ts": "2026-11-24T10:00:00"}, "ts not ISO 8601 with an offset, nor epoch seconds", "ts"),
    ("ts six minutes ahead", {**GOOD, "ts": "2026-11-24T12:06:00Z"}, "ts before 2000 or ahead of the clock", "ts"),
    ("ts four minutes ahead", {**GOOD, "ts": "2026-11-24T12:04:00Z"}, None, None),
    ("ts in 1999", {**GOOD, "ts": "1999-12-31T23:00:00Z"}, "ts before 2000 or ahead of the clock", "ts"),
    ("ts next week", {**GOOD, "ts": "2026-12-01T10:00:00Z"}, "ts before 2000 or ahead of the clock", "ts"),
    (
        "epoch milliseconds",
        {**GOOD, "ts": 1_795_000_000_000},
        "ts not ISO 8601 with an offset, nor epoch seconds",
        "ts",
    ),
    ("ts in 2099", {**GOOD, "ts": "2099-01-01T00:00:00Z"}, "ts before 2000 or ahead of the clock", "ts"),
    # Beyond 2262 no nanosecond clock holds the moment: refused in its row (these crashed every path before)
    (
        "ts in year 3000",
        {**GOOD, "ts": "3000-01-01T00:00:00Z"},
        "ts not ISO 8601 with an offset, nor epoch seconds",
        "ts",
    ),
    ("ts in year 1", {**GOOD, "ts": "0001-01-01T00:00:00Z"}, "ts not ISO 8601 with an offset, nor epoch seconds", "ts"),
    ("epoch seconds in 3554", {**GOOD, "ts": 5e10}, "ts not ISO 8601 with an offset, nor epoch seconds", "ts"),
    ("negative accuracy", {**GOOD, "accuracy_m": -3}, "accuracy_m outside 0–100,000", "accuracy_m"),
    ("huge accuracy", {**GOOD, "accuracy_m": 100_001}, "accuracy_m outside 0–100,000", "accuracy_m"),
    ("lmt not a boolean", {**GOOD, "lmt": "maybe"}, "lmt not true or false", "lmt"),
]


def reasons(columns: ping_rules.PingColumns) -> list[str | None]:
    return [None if v < 0 else ping_rules.RULES[v].reason for v in ping_rules.judge(columns, NOW).tolist()]


def as_csv(rows: list[dict]) -> pd.DataFrame:
    text = pd.DataFrame(rows).to_csv(index=False)
    return pd.read_csv(io.StringIO(text), dtype={"device_id": "string", "ts": "string", "lmt": "string"})


@pytest.mark.parametrize(("case", "row", "reason", "field"), CASES, ids=[c[0] for c in CASES])
def test_the_api_and_a_csv_file_judge_a_row_alike(case, row, reason, field):
    assert reasons(ping_rules.from_rows([row])) == [reason]
    full = {"accuracy_m": "", "lmt": "", **row}
    assert reasons(ping_rules.from_frame(as_csv([GOOD, full]))) == [None, reason]
    if field is not None:
        columns = ping_rules.from_rows([row])
        assert ping_rules.RULES[ping_rules.judge(columns, NOW)[0]].field(columns, 0) == field


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({**GOOD, "lat": "38.7"}, "lat/lon not a finite number"),  # JSON text is not a number
        ({**GOOD, "lat": True}, "lat/lon not a finite number"),
        ({**GOOD, "accuracy_m": "8"}, "accuracy_m outside 0–100,000"),
        ({**GOOD, "lmt": "true"}, "lmt not true or false"),
        ("not an object", "not an object"),
    ],
)
def test_json_values_must_have_their_json_type(row, reason):
    assert reasons(ping_rules.from_rows([row])) == [reason]


def test_lmt_rows_are_good_and_marked_so_in_both_paths():
    assert ping_rules.from_rows([{**GOOD, "lmt": True}]).lmt.tolist() == [True]
    assert ping_rules.from_frame(as_csv([{**GOOD, "lmt": "yes"}])).lmt.tolist() == [True]


@pytest.mark.parametrize(
    ("ts", "says"),
    [
        (1_795_000_000_000, "ts looks like milliseconds since 1970: divide by 1,000"),
        ("1795000000000", "ts looks like milliseconds since 1970: divide by 1,000"),  # as text in a file
        (None, "ts is missing"),
        ("2026-11-24T10:00:00", "ts must be ISO 8601 with a UTC offset"),
    ],
)
def test_a_millisecond_or_missing_ts_is_told_apart_from_an_unreadable_one(ts, says):
    """One reason for all three (counted alike), but the message says which mistake it is, in both paths."""
    row = {k: v for k, v in {**GOOD, "ts": ts}.items() if v is not None}
    paths = [ping_rules.from_frame(as_csv([{"accuracy_m": "", "lmt": "", "ts": "", **row}]))]
    if not isinstance(ts, str) or not ts.isdigit():
        paths.append(ping_rules.from_rows([row]))
    for columns in paths:
        rule = ping_rules.RULES[ping_rules.judge(columns, NOW)[0]]
        assert rule.reason == "ts not ISO 8601 with an offset, nor epoch seconds"
        assert rule.message(columns, 0).startswith(says), rule.message(columns, 0)


numbers = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**62), 2**62),
    st.sampled_from([1_795_000_000, 1_795_000_000_000, 1e11, 1e14, -1e11, 0, 946_684_800]),
)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.one_of(st.none(), st.text(max_size=210)), numbers, numbers, numbers, numbers),
        min_size=1,
        max_size=40,
    ),
    integer_ts=st.booleans(),
    with_accuracy=st.booleans(),
    large_text=st.booleans(),
)
def test_a_typed_parquet_chunk_reads_as_the_same_columns_without_text(rows, integer_ts, with_accuracy, large_text):
    """``from_batch`` skips the text round trip for typed columns; every verdict and column stays the same."""
    devices, lats, lons, stamps, accuracies = map(list, zip(*rows, strict=True))
    as_float = [None if v is None else float(v) for v in stamps]
    ts = pa.array(
        [None if v is None or not math.isfinite(v) or abs(v) >= 2**62 else int(v) for v in as_float]
        if integer_ts
        else as_float,
        pa.int64() if integer_ts else pa.float64(),
    )
    columns = {
        "device_id": pa.array(devices, pa.large_string() if large_text else pa.string()),
        "lat": pa.array([None if v is None else float(v) for v in lats], pa.float64()),
        "lon": pa.array([None if v is None else float(v) for v in lons], pa.float64()),
        "ts": ts,
    }
    if with_accuracy:
        columns["accuracy_m"] = pa.array([None if v is None else float(v) for v in accuracies], pa.float64())
    batch = pa.RecordBatch.from_pydict(columns)
    fast, slow = ping_rules.from_batch(batch), ping_rules.from_frame(batch.to_pandas())
    for field in dataclasses.fields(ping_rules.PingColumns):
        np.testing.assert_array_equal(getattr(fast, field.name), getattr(slow, field.name), err_msg=field.name)
    assert reasons(fast) == reasons(slow)


def test_text_or_lmt_columns_take_the_text_path():
    batch = pa.RecordBatch.from_pydict(
        {"device_id": ["phone"], "lat": [38.7], "lon": [-9.1], "ts": ["2026-11-24T10:00:00Z"], "lmt": ["no"]}
    )
    assert reasons(ping_rules.from_batch(batch)) == [None]
