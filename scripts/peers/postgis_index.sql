-- After COPY: circles become buffered points, polygons are parsed; then index and analyse.
UPDATE peer_fences SET geog = CASE WHEN wkt IS NULL
    THEN ST_Buffer(ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography, radius_m)
    ELSE ST_GeogFromText(wkt) END;
CREATE INDEX peer_fences_geog ON peer_fences USING gist (geog);
CREATE INDEX peer_offers_fence ON peer_offers (fence_id);
ANALYZE peer_fences;
ANALYZE peer_offers;
