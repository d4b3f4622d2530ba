"""Report queries on Apache Spark (``REPORT_ENGINE=spark``): the same SQL files, carried from DuckDB's dialect to
Spark's by sqlglot, over the same Parquet files.

Parameters become typed literals in the syntax tree (never text pasted into SQL), so a hostile fence id or time
zone is a string literal whatever it holds. Each query runs in its own Spark session (temporary views are per
session) on one shared SparkContext, started at the first query. Spark reads ``s3://`` areas through Hadoop's
``s3a`` connector, which must be on Spark's class path (``hadoop-aws``; docs/operations.md).
"""

from __future__ import annotations

import functools
import importlib.util
import threading
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import sqlglot
from sqlglot import exp

from geotarget.errors import Busy
from geotarget.store.file_area import FileArea, S3Options
from geotarget.store.report_engines import SCHEMA_OF_VIEW, Views

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

QUERY_TIMEOUT_S = 300.0


class ReportEngineUnavailable(Busy):
    """Spark could not run the query now (no master, no executor took it in time, or it failed to start)."""

    code = "report_engine_unavailable"


@functools.lru_cache(maxsize=32)
def _parsed(sql: str) -> exp.Expr:
    tree = sqlglot.parse_one(sql, read="duckdb")
    assert tree is not None
    return tree


def literal(value: Any) -> exp.Expr:
    """``value`` as a Spark SQL literal: datetimes as UTC timestamps, lists as typed arrays, dicts as structs."""
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, datetime):
        text = value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        return exp.cast(exp.Literal.string(text), "TIMESTAMP")
    if isinstance(value, date):
        return exp.cast(exp.Literal.string(value.isoformat()), "DATE")
    if isinstance(value, int):
        return exp.Literal.number(value)
    if isinstance(value, float):
        return exp.cast(exp.Literal.string(repr(value)), "DOUBLE")
    if isinstance(value, str):
        return exp.Literal.string(value)
    if isinstance(value, Mapping):
        return exp.Struct(expressions=[exp.alias_(literal(v), str(k)) for k, v in value.items()])
    if isinstance(value, Sequence):
        if not value:
            return exp.cast(exp.Array(expressions=[]), "ARRAY<STRING>")
        return exp.Array(expressions=[literal(v) for v in value])
    raise TypeError(f"no Spark literal for {type(value).__name__}")


_SPARK_NAME_OF = {"epoch_us": "unix_micros"}  # DuckDB functions sqlglot leaves as they are: Spark's same function


def to_spark(sql: str, params: Mapping[str, Any]) -> str:
    """``sql`` (DuckDB's dialect, ``$name`` parameters) in Spark's dialect with ``params`` in place."""

    def bind(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Placeholder) and node.name:
            if node.name not in params:
                raise KeyError(f"no value for ${node.name}")
            return literal(params[node.name])
        if isinstance(node, exp.Anonymous) and node.name.lower() in _SPARK_NAME_OF:
            return exp.Anonymous(this=_SPARK_NAME_OF[node.name.lower()], expressions=node.expressions)
        return node

    return _parsed(sql).copy().transform(bind).sql(dialect="spark")


class SparkEngine:
    def __init__(
        self, area: FileArea, master: str, s3: S3Options | None = None, timeout_s: float = QUERY_TIMEOUT_S
    ) -> None:
        if importlib.util.find_spec("pyspark") is None:
            raise RuntimeError("REPORT_ENGINE=spark needs pyspark: pip install 'geotarget[spark]' (and Java 17)")
        self.area = area
        self.master = master
        self.timeout_s = timeout_s
        self.s3 = s3 or S3Options()
        self._lock = threading.Lock()
        self._spark: SparkSession | None = None

    def run(self, sql: str, params: Mapping[str, Any], views: Views) -> list[tuple[Any, ...]]:
        text = to_spark(sql, params)
        session = self._session()
        return self._collect(session, text, views.files(sql))

    def _register(self, session: SparkSession, views: Mapping[str, Sequence[str]]) -> None:
        for name, files in views.items():
            schema = spark_schema(name)
            if files:
                session.read.schema(schema).parquet(*map(self._url, files)).createOrReplaceTempView(name)
            else:
                session.createDataFrame(session.sparkContext.emptyRDD(), schema).createOrReplaceTempView(name)

    def _collect(self, session: SparkSession, text: str, views: Mapping[str, Sequence[str]]) -> list[tuple[Any, ...]]:
        """Set up the views and run, in a job group cancelled after ``timeout_s`` (a master with no worker never
        says no, and reading many files' footers is a job of its own)."""
        group = uuid.uuid4().hex
        context = session.sparkContext
        rows: list[tuple[Any, ...]] = []
        failure: list[BaseException] = []

        def collect() -> None:
            try:
                context.setJobGroup(group, "geotarget report", interruptOnCancel=True)
                self._register(session, views)
                rows.extend(tuple(row) for row in session.sql(text).collect())
            except BaseException as exc:
                failure.append(exc)

        worker = threading.Thread(target=collect, daemon=True)
        worker.start()
        worker.join(self.timeout_s)
        if worker.is_alive():
            context.cancelJobGroup(group)
            raise ReportEngineUnavailable(f"Spark did not answer within {self.timeout_s:.0f} s; try again later")
        if failure:
            raise failure[0]
        return rows

    def _url(self, name: str) -> str:
        url = self.area.url_of(name)
        return "s3a://" + url.removeprefix("s3://") if self.area.remote else "file://" + url

    def _session(self) -> SparkSession:
        with self._lock:
            if self._spark is None:
                self._spark = self._start()
            return self._spark.newSession()

    def _start(self) -> SparkSession:
        from pyspark.sql import SparkSession

        utc = "-Duser.timezone=UTC"
        builder = (
            SparkSession.builder.master(self.master)
            .appName("geotarget-reports")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.driver.extraJavaOptions", utc)
            .config("spark.executor.extraJavaOptions", utc)
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", "8")
        )
        for key, value in _s3a_settings(self.s3).items():
            builder = builder.config(key, value)
        try:
            return builder.getOrCreate()
        except Exception as exc:
            raise ReportEngineUnavailable(f"Spark did not start ({type(exc).__name__}); try again later") from exc

    def close(self) -> None:
        with self._lock:
            if self._spark is not None:
                self._spark.stop()
                self._spark = None


def _s3a_settings(s3: S3Options) -> dict[str, str]:
    given = {
        "endpoint": s3.endpoint_url,
        "access.key": s3.access_key_id,
        "secret.key": s3.secret_access_key,
        "endpoint.region": s3.region,
    }
    settings = {f"spark.hadoop.fs.s3a.{key}": value for key, value in given.items() if value}
    if s3.endpoint_url:  # SeaweedFS, MinIO and most others name buckets in the path
        settings["spark.hadoop.fs.s3a.path.style.access"] = "true"
    return settings


_SPARK_TYPES = {
    pa.string(): "STRING",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
    pa.int64(): "BIGINT",
    pa.timestamp("us", tz="UTC"): "TIMESTAMP",
    pa.list_(pa.string()): "ARRAY<STRING>",
}


def spark_schema(view: str) -> str:
    """The view's columns as a Spark DDL schema: files read with it have every column, NULL where one lacks it."""
    return ", ".join(f"`{field.name}` {_SPARK_TYPES[field.type]}" for field in SCHEMA_OF_VIEW[view])
