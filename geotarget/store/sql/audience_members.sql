-- The members of one audience rule: linked devices whose visits to the chosen fences fit it.
--
-- $glob the event files; $fences / $zones the chosen fences and each one's time zone (same order); $now the
-- refresh instant; $since the earliest instant any window of the rule reaches (a day more, so a visit already
-- under way then is seen from its start); $erased devices erased on request (their events may still wait for
-- compaction); $kind and the rule's figures ($days, $min_visits, $min_days, $seen_days, $not_days,
-- $min_dwell_s; unused ones are 0).
--
-- A visit is a device's run of pings inside one fence with gaps under 30 minutes (the reach report's rule),
-- dated by its first ping; its dwell is first to last ping. A 'visit' record (kept after its raw pings expired)
-- is one visit of unknown dwell (0). Limit-ad-tracking devices have no linked pings, so they are never members.
WITH chosen AS (
    SELECT unnest($fences) AS fence, unnest($zones) AS zone
),
inside AS (
    SELECT event_id, kind, device_key, ts, lat, lon, unnest(fences) AS fence
    FROM read_parquet($glob, union_by_name = true)
    WHERE kind IN ('ping', 'visit') AND device_key <> '' AND len(fences) > 0 AND ts >= $since AND ts <= $now
),
scoped AS (
    SELECT i.device_key, i.ts, i.kind, i.fence, c.zone
    FROM inside i JOIN chosen c ON i.fence = c.fence
    WHERE i.device_key NOT IN (SELECT unnest($erased))
    QUALIFY row_number() OVER (PARTITION BY i.event_id, i.fence ORDER BY i.ts, i.lat, i.lon) = 1
),
marked AS (
    SELECT *, kind = 'visit' OR coalesce(ts - lag(ts) OVER run >= INTERVAL 30 MINUTE, true) AS starts
    FROM scoped WINDOW run AS (PARTITION BY device_key, fence ORDER BY ts)
),
numbered AS (
    SELECT *, sum(starts::INTEGER) OVER (PARTITION BY device_key, fence ORDER BY ts ROWS UNBOUNDED PRECEDING) AS n
    FROM marked
),
visits AS (
    SELECT device_key, min(ts) AS started, epoch(max(ts)) - epoch(min(ts)) AS dwell_s,
           CAST(timezone(any_value(zone), min(ts)) AS DATE) AS local_day
    FROM numbered GROUP BY device_key, fence, n
)
SELECT device_key
FROM visits
GROUP BY device_key
HAVING CASE $kind
    WHEN 'visitors' THEN
        count(*) FILTER (WHERE started >= $now - to_days(CAST($days AS INTEGER))) >= $min_visits
    WHEN 'regulars' THEN
        count(DISTINCT local_day) FILTER (WHERE started >= $now - to_days(CAST($days AS INTEGER))) >= $min_days
    WHEN 'lapsed' THEN
        count(*) FILTER (WHERE started >= $now - to_days(CAST($seen_days AS INTEGER))) > 0
        AND count(*) FILTER (WHERE started >= $now - to_days(CAST($not_days AS INTEGER))) = 0
    WHEN 'dwellers' THEN
        coalesce(max(dwell_s) FILTER (WHERE started >= $now - to_days(CAST($days AS INTEGER))), -1) >= $min_dwell_s
    ELSE false
END
ORDER BY device_key
