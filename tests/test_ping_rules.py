"""One ping validator: a row means the same whether an app posts it as JSON or a file brings it as CSV."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pandas as pd
import pytest

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
