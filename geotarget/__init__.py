"""Who, what, when: merchants, keys, fences as stored records, the fence service and its sync across workers,
settings and the CLI. Imports ``geofences``; never imports ``api``. All I/O lives in ``geotarget.store``."""

from geotarget.settings import Settings

__all__ = ["Settings"]
