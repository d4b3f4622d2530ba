-- Holdout lift of one offer: its exposed devices (an impression in the window) against its control devices (a
-- ghost in the window: held out, the offer withheld), and how many of each visited one of the offer's own fences
-- within $window_days after their first impression or ghost.
--
-- events / rolled_segments views of the event store over the days the lift reaches (event_store.reading);
-- $offer_id; $fences the offer's served fence ids (never audience-only ones); $from_ts/$to_ts the window (UTC, to
-- exclusive); $window_days.
-- A device with both impressions and ghosts of the offer (its holdout share changed meanwhile) counts in neither
-- arm. Limit-ad-tracking devices are never linked, so they count in neither; nor do browsers that scanned a poster.
WITH raw AS (
    SELECT kind, event_id, device_key, ts, offer_id, fences
    FROM events
    WHERE ts >= $from_ts AND ts < $to_ts + $window_days * INTERVAL 1 DAY AND device_key <> ''
      AND coalesce(trigger, '') <> 'scan'  -- a browser that scanned a poster: never held out, never pinging
),
firsts AS (
    SELECT device_key,
           min(ts) FILTER (WHERE kind = 'impression') AS exposed_at,
           min(ts) FILTER (WHERE kind = 'ghost') AS held_at
    FROM raw
    WHERE kind IN ('impression', 'ghost') AND offer_id = $offer_id AND ts >= $from_ts AND ts < $to_ts
    GROUP BY device_key
),
arms AS (
    SELECT device_key, CASE WHEN held_at IS NULL THEN 'exposed' ELSE 'control' END AS arm,
           coalesce(exposed_at, held_at) AS first_at
    FROM firsts
    WHERE (exposed_at IS NULL) <> (held_at IS NULL)
),
inside AS (  -- pings (and rolled days' segments: a ping within the window exists exactly when a segment's first
            -- is at most its end and its last after its start, the window being longer than a quarter hour)
    SELECT device_key, ts, ts AS last_ts
    FROM (SELECT device_key, ts, unnest(fences) AS fence FROM raw WHERE kind IN ('ping', 'visit') AND array_length(fences) > 0)
    WHERE fence IN (SELECT unnest($fences))  -- a hash join, whatever the list's length
    UNION ALL
    SELECT device_key, ts, last_ts FROM rolled_segments
    WHERE fence IN (SELECT unnest($fences)) AND device_key <> ''
      AND ts >= $from_ts AND ts < $to_ts + $window_days * INTERVAL 1 DAY
),
visited AS (
    SELECT DISTINCT a.device_key
    FROM arms a JOIN inside p ON p.device_key = a.device_key
    WHERE p.last_ts > a.first_at AND p.ts <= a.first_at + $window_days * INTERVAL 1 DAY
)
SELECT a.arm, count(*) AS devices, count(v.device_key) AS visitors
FROM arms a LEFT JOIN visited v USING (device_key)
GROUP BY a.arm
ORDER BY a.arm
