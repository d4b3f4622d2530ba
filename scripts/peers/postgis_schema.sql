-- The PostGIS peer's tables: fences as geography with a GiST index, offers joined by fence.
CREATE EXTENSION IF NOT EXISTS postgis;
DROP TABLE IF EXISTS peer_offers;
DROP TABLE IF EXISTS peer_fences;
CREATE TABLE peer_fences (id integer PRIMARY KEY, lon double precision, lat double precision,
                          radius_m double precision, wkt text, geog geography);
CREATE TABLE peer_offers (id text PRIMARY KEY, fence_id integer NOT NULL, merchant_id integer NOT NULL,
                          title text NOT NULL, nearby_m double precision NOT NULL, priority integer NOT NULL,
                          special boolean NOT NULL, per_device_per_day integer NOT NULL);
