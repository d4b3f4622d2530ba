"""The only I/O of ``geotarget``: SQL (SQLAlchemy + Alembic), Redis (keys, clients, the embedded server)."""
