-- The members of one audience rule: linked devices whose visits to the chosen fences fit it.
--
-- events / rolled_segments views of the event store over the days the rule reaches (event_store.reading);
-- $zoned the chosen fences, each with its time zone ({fence, zone}); $now the refresh instant; $since the earliest
-- instant any window of the rule reaches (a day more, so a visit already under way then is seen from its start); $erased devices erased on request (their events may still wait for
-- compaction); $kind and the rule's figures ($days, $min_visits, $min_days, $seen_days, $not_days,
-- $min_dwell_s; unused ones are 0).
--
-- A visit is a device's run of pings inside one fence with gaps under 30 minutes (the reach report's rule),
-- dated by its first ping; its dwell is first to last ping. A 'visit' record (kept after its raw pings expired)
-- is one visit of unknown dwell (0). Limit-ad-tracking devices have no linked pings, so they are never members.
WITH chosen AS (
    SELECT z.fence AS fence, z.zone AS zone FROM (SELECT unnest($zoned) AS z)
),
inside AS (
    SELECT event_id, kind, device_key, ts, lat, lon, unnest(fences) AS fence
    FROM events
    WHERE kind IN ('ping', 'visit') AND device_key <> '' AND array_length(fences) > 0 AND ts >= $since AND ts <= $now
),
once AS (
    SELECT i.device_key, i.ts, i.kind, i.fence
    FROM inside i
    WHERE i.fence IN (SELECT fence FROM chosen) AND i.device_key NOT IN (SELECT unnest($erased))
    QUALIFY row_number() OVER (PARTITION BY i.event_id, i.fence ORDER BY i.ts, i.lat, i.lon) = 1
),
segments AS (  -- per device, fence, kind and UTC quarter hour; rolled days have them stored (store/rollups.py)
    SELECT device_key, fence, kind, min(ts) AS ts, max(ts) AS last_ts
    FROM once GROUP BY device_key, fence, kind, epoch_us(ts) // 900000000
    UNION ALL
    SELECT device_key, fence, kind, ts, last_ts
    FROM rolled_segments
    WHERE fence IN (SELECT fence FROM chosen) AND device_key NOT IN (SELECT unnest($erased))
      AND ts >= $since AND ts <= $now
),
scoped AS (
    SELECT s.*, c.zone FROM segments s JOIN chosen c ON s.fence = c.fence
),
marked AS (  -- only a segment's first ping can start a visit: its pings are under 15 minutes apart
    SELECT *, kind = 'visit' OR coalesce(ts - lag(last_ts) OVER run >= INTERVAL 30 MINUTE, true) AS starts
    FROM scoped WINDOW run AS (PARTITION BY device_key, fence ORDER BY ts, last_ts, kind)  -- ties in one order
),
numbered AS (
    SELECT *, sum(starts::INTEGER) OVER (PARTITION BY device_key, fence ORDER BY ts, last_ts, kind ROWS UNBOUNDED PRECEDING) AS n
    FROM marked
),
visits AS (
    SELECT device_key, min(ts) AS started, date_diff('microsecond', min(ts), max(last_ts)) / 1000000 AS dwell_s,
           CAST(min(ts) AT TIME ZONE any_value(zone) AS DATE) AS local_day
    FROM numbered GROUP BY device_key, fence, n
)
SELECT device_key
FROM visits
GROUP BY device_key
HAVING CASE $kind
    WHEN 'visitors' THEN
        count(*) FILTER (WHERE started >= $now - $days * INTERVAL 1 DAY) >= $min_visits
    WHEN 'regulars' THEN
        count(DISTINCT local_day) FILTER (WHERE started >= $now - $days * INTERVAL 1 DAY) >= $min_days
    WHEN 'lapsed' THEN
        count(*) FILTER (WHERE started >= $now - $seen_days * INTERVAL 1 DAY) > 0
        AND count(*) FILTER (WHERE started >= $now - $not_days * INTERVAL 1 DAY) = 0
    WHEN 'dwellers' THEN
        coalesce(max(dwell_s) FILTER (WHERE started >= $now - $days * INTERVAL 1 DAY), -1) >= $min_dwell_s
    ELSE false
END
ORDER BY device_key
