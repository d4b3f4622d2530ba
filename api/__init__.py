"""How geotarget is served: the FastAPI app (routers, auth, schemas, error handlers) and its web pages.

Imports ``geotarget`` and ``geofences``; nothing imports ``api``.
"""
