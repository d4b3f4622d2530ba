-- One closed UTC day's pings and visit records inside fences as segments (store/rollups.py): per device, fence,
-- kind and UTC quarter hour, the first and last instant and the number of pings. A ping sent twice counts once
-- per fence (the first copy, as every report query picks it). $files the day's raw files.
WITH inside AS (
    SELECT event_id, kind, device_key, ts, lat, lon, unnest(fences) AS fence
    FROM read_parquet($files, union_by_name = true, hive_partitioning = false)
    WHERE kind IN ('ping', 'visit') AND device_key <> '' AND len(fences) > 0
),
once AS (
    SELECT * FROM inside QUALIFY row_number() OVER (PARTITION BY event_id, fence ORDER BY ts, lat, lon) = 1
)
SELECT device_key, fence, kind, min(ts) AS ts, max(ts) AS last_ts, count(*) AS pings
FROM once
GROUP BY device_key, fence, kind, epoch_us(ts) // 900000000
ORDER BY fence, device_key, ts
