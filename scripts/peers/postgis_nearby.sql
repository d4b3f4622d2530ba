-- Offers within their nearby_m of the point (inside-only offers: covering it), best first.
WITH p AS (SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography AS g),
near AS (
    SELECT o.id, o.merchant_id, o.title, f.id AS fence_id, o.per_device_per_day,
           ST_Covers(f.geog, p.g) AS inside, ST_Distance(f.geog, p.g, false) AS distance_m,
           o.priority * CASE WHEN o.special THEN 1.5 ELSE 1.0 END AS base, o.nearby_m
    FROM p, peer_fences f JOIN peer_offers o ON o.fence_id = f.id
    WHERE ST_DWithin(f.geog, p.g, %(reach)s, false)
)
SELECT id, merchant_id, title, fence_id, per_device_per_day, inside, distance_m
FROM near
WHERE distance_m <= nearby_m
ORDER BY inside DESC, CASE WHEN inside THEN base ELSE base / (1 + distance_m / 100) END DESC, distance_m, id
LIMIT 50
