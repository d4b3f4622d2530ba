-- Pings of linked devices in a box, deduplicated by event id, for the heatmap (aggregated and k-suppressed in
-- Python, at whatever H3 resolution was asked for). The window is widened to whole UTC days on both sides:
-- published units (one cell on one UTC day) are judged on whole days, whatever window was asked for.
WITH ev AS (
    SELECT * FROM raw_events
    WHERE kind = 'ping' AND device_key <> '' AND ts >= $from_ts - INTERVAL 1 DAY AND ts < $to_ts + INTERVAL 1 DAY
      AND lon BETWEEN $west AND $east AND lat BETWEEN $south AND $north
    QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY ts, lat, lon) = 1
)
SELECT lat, lon, device_key, list_contains(fences, $fence_id) AS inside, ts >= $from_ts AND ts < $to_ts AS in_window,
       CAST(ts AT TIME ZONE 'UTC' AS DATE) AS unit_day
FROM ev
