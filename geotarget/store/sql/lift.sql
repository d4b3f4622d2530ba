-- Holdout lift of one offer: its exposed devices (an impression in the window) against its control devices (a
-- ghost in the window: held out, the offer withheld), and how many of each visited one of the offer's own fences
-- within $window_days after their first impression or ghost.
--
-- $glob the event files; $offer_id; $fences the offer's served fence ids (never audience-only ones); $from_ts/$to_ts the window (UTC, to
-- exclusive); $window_days.
-- A device with both impressions and ghosts of the offer (its holdout share changed meanwhile) counts in neither
-- arm. Limit-ad-tracking devices are never linked, so they count in neither; nor do browsers that scanned a poster.
WITH raw AS (
    SELECT kind, event_id, device_key, ts, offer_id, fences
    FROM read_parquet($glob, union_by_name = true)
    WHERE ts >= $from_ts AND ts < $to_ts + to_days(CAST($window_days AS INTEGER)) AND device_key <> ''
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
visited AS (
    SELECT DISTINCT a.device_key
    FROM arms a JOIN raw p ON p.device_key = a.device_key
    WHERE p.kind IN ('ping', 'visit') AND list_has_any(p.fences, $fences)
      AND p.ts > a.first_at AND p.ts <= a.first_at + to_days(CAST($window_days AS INTEGER))
)
SELECT a.arm, count(*) AS devices, count(v.device_key) AS visitors
FROM arms a LEFT JOIN visited v USING (device_key)
GROUP BY a.arm
ORDER BY a.arm
