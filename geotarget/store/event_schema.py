"""The columns of every event file (raw days and rollups' events alike); files written before a column existed
are read with it NULL."""

import pyarrow as pa

SCHEMA = pa.schema(
    [
        ("kind", pa.string()),
        ("event_id", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("device_key", pa.string()),
        ("lat", pa.float64()),
        ("lon", pa.float64()),
        ("cell", pa.string()),
        ("offer_id", pa.string()),
        ("merchant_id", pa.string()),
        ("fence_id", pa.string()),
        ("inside", pa.bool_()),
        ("distance_m", pa.float64()),
        ("accuracy_m", pa.float64()),
        ("trigger", pa.string()),
        ("code", pa.string()),
        ("ref", pa.string()),
        ("variant", pa.string()),
        ("price", pa.float64()),
        ("fences", pa.list_(pa.string())),  # for pings: the fences the device was inside
    ]
)
