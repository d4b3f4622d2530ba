-- One closed UTC day's events other than pings and visit records, each once (the first copy, as every report
-- query picks it), sorted so that a one-merchant, one-offer or one-fence read touches a few row groups
-- (store/rollups.py). $files the day's raw files.
SELECT *
FROM read_parquet($files, union_by_name = true)
WHERE kind NOT IN ('ping', 'visit')
QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY ts, lat, lon) = 1
ORDER BY merchant_id, offer_id, fence_id, ts
