"""The only I/O of ``geotarget``, behind small interfaces: SQL (``repository`` over SQLAlchemy + Alembic, rows
mapped to domain objects in ``records``), Redis (``keys``, clients, caps and stream adapters, Lua scripts, the
embedded server), the Parquet event store read with DuckDB (``sql/``), ping files, and atomic file writes."""
