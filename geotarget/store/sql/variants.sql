-- Per creative variant of the given offers: impressions, distinct devices shown it, and clicks on them, in
-- [$from_ts, $to_ts). Feeds optimized rotation (serving.variants) and the reach report's per-variant rows.
--
-- events a view of the event store from the window's first day (event_store.reading); $offer_ids; $from_ts/$to_ts (UTC).
WITH shown AS (
    SELECT event_id, offer_id, variant, device_key
    FROM events
    WHERE kind = 'impression' AND variant <> '' AND list_contains($offer_ids, offer_id)
      AND ts >= $from_ts AND ts < $to_ts
    QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY ts) = 1
),
clicked AS (
    SELECT DISTINCT ref FROM events
    WHERE kind = 'click' AND ts >= $from_ts AND ref <> ''
)
SELECT s.offer_id, s.variant, count(*) AS impressions, count(DISTINCT NULLIF(s.device_key, '')) AS devices,
       count(c.ref) AS clicks
FROM shown s LEFT JOIN clicked c ON c.ref = s.event_id
GROUP BY ALL
ORDER BY s.offer_id, s.variant
