-- Visit starts among the raw pings before $cutoff (same rule as the reach report: a device's run of pings
-- inside one fence with gaps under 30 minutes), to be kept as 'visit' records when the raw pings are deleted.
WITH ev AS (
    SELECT * FROM read_parquet($glob, union_by_name = true)
    WHERE kind IN ('ping', 'visit') AND device_key <> '' AND len(fences) > 0 AND ts < $cutoff
    QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY ts, lat, lon) = 1
),
inside AS (
    SELECT device_key, ts, unnest(fences) AS fence FROM ev
),
marked AS (
    SELECT device_key, fence, ts,
           coalesce(ts - lag(ts) OVER (PARTITION BY device_key, fence ORDER BY ts) >= INTERVAL 30 MINUTE, true)
               AS starts_visit
    FROM inside
)
SELECT device_key, fence, epoch_ms(ts) AS ms FROM marked WHERE starts_visit
