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

# How new event files are encoded: dictionaries only for columns whose values repeat (building one for event ids,
# which never repeat, before falling back cost a fifth of the writing), doubles split by byte and times as
# deltas (smaller, and cheaper to compress). Every reader (DuckDB, pyarrow, Spark) decodes them.
ENCODING: dict[str, object] = {
    "use_dictionary": [
        *("kind", "device_key", "cell", "offer_id", "merchant_id", "fence_id"),
        *("trigger", "code", "ref", "variant", "fences"),
    ],
    "column_encoding": {
        "event_id": "PLAIN",
        "ts": "DELTA_BINARY_PACKED",
        "lat": "BYTE_STREAM_SPLIT",
        "lon": "BYTE_STREAM_SPLIT",
        "accuracy_m": "BYTE_STREAM_SPLIT",
    },
}
