"""What merchants own: merchants and their API keys, fences and offers as typed objects, and the catalog
snapshot (fence index + live offers) every worker keeps equal to SQL. Storage goes through ``geotarget.store``."""
