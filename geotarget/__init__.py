"""Who, what, when: the domain of geotarget, by capability.

- ``catalog``      merchants and keys, fences and offers as typed objects, the per-worker catalog snapshot
- ``serving``      schedules, targeting, ranking, cap rules, the matcher (pure) and the offer server
- ``measurement``  events, device keys, the ping validator, bulk ingest, reach reports, privacy
- ``store``        the only I/O: SQL, Redis (+ Lua), Parquet (+ DuckDB SQL), files
- ``runtime``      one process's wiring of all of these, from ``settings``

Imports ``geofences``; never imports ``api``, not even by string.
"""

from geotarget.settings import Settings

__all__ = ["Settings"]
