-- Reach report over the Parquet event store, in long form: one row per (period, metric) with the figure and
-- the number of distinct devices it was computed from (for k-suppression, which happens in Python).
--
-- events / rolled_segments   views of the event store over the days the report reaches (event_store.reading)
-- $from_ts/$to_ts the report window, UTC instants (to exclusive)
-- $tz            IANA zone whose calendar defines the periods
-- $unit          'day' or 'week' (ISO weeks, Monday first)
-- $whole         NULL, or a date: then the whole window is one period starting that day (totals: devices
--                counted once over the window, not once a day)
-- $offer_ids, $fence_ids, $merchant_id   which impressions count ([] / '' = no restriction)
-- $visit_fences  the fences whose visitors count
-- $k             the fewest distinct devices a published unit has
--
-- Differencing: every figure is built only from *published units*, the finest slices any report can ask for:
-- (offer, fence, UTC day) for impressions and cap-blocked serves, (fence, UTC day) for pings and visits. A unit
-- seen by fewer than $k distinct devices contributes to no report at all, so a merchant-wide, weekly or
-- multi-fence figure never moves when a slice that its own report suppresses is added or taken away. Units are
-- whole UTC days whatever the report window, so narrowing the window cannot split one. Rows 'withheld_<kind>'
-- count the devices of unpublished units per period, so that a period with only those shows as suppressed, not 0.
--
-- Clicks (interactions) and redemptions with a unique code count through their impression (its scope, unit and
-- device); a static code redeemed without one counts in offer- and merchant-wide reports, with no device.
-- Impressions pushed by a trigger ('trigger' set) count as impressions, and again as 'pushes'. Bids made on
-- exchanges are their own kind (and units); a won bid's impression counts as an impression, and again as a
-- 'win', its clearing price (CPM) adding a thousandth to 'spend'. A poster's scans are their own kind (and units,
-- of the poster's offer and store); a unique code a scan's page handed out is an impression with trigger 'scan'
-- (not a push), and its redemption counts again as a 'scan_redemption'. Files from before bidding have no price
-- column: the caller reads NULL for it there. Event files
-- written before pushes existed have no trigger column: the caller reads '' for it there.
-- Events are deduplicated by event_id (delivery is at-least-once), after the scope's filters so that only the
-- rows a report needs are sorted (every copy of an event carries the same scope fields; a ping counts inside a
-- fence if any copy of it was). Pings older than the retention period are replaced by 'visit' records (one per
-- visit, at its start), which count here like the pings they stood for.
-- A visit is a device's run of pings inside one fence with gaps under 30 minutes; it counts in the period where
-- it starts. A visit after exposure starts within 7 days after an impression of the same scope to the same device.
WITH offer_events AS (
    SELECT kind, event_id, device_key, ts, offer_id, fence_id, CAST(ts AT TIME ZONE 'UTC' AS DATE) AS unit_day,
           coalesce(trigger, '') AS trigger, CAST(price AS DOUBLE) AS price
    FROM events  -- each use of the view filters it itself, so that its files' row groups are skipped
    WHERE kind IN ('impression', 'cap_blocked', 'bid', 'scan')
      AND ts >= $from_ts - INTERVAL 8 DAY AND ts < $to_ts + INTERVAL 1 DAY
      AND (array_length($offer_ids) = 0 OR list_contains($offer_ids, offer_id))
      AND (array_length($fence_ids) = 0 OR list_contains($fence_ids, fence_id))
      AND ($merchant_id = '' OR merchant_id = $merchant_id)
    QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY ts, lat, lon) = 1
),
offer_units AS (
    SELECT kind, offer_id, fence_id, unit_day
    FROM offer_events WHERE device_key <> ''
    GROUP BY ALL HAVING count(DISTINCT device_key) >= $k
),
scoped AS (
    SELECT e.kind, e.event_id, e.device_key, e.ts, e.trigger, e.price, coalesce($whole, CAST(date_trunc($unit, e.ts AT TIME ZONE $tz) AS DATE)) AS period
    FROM offer_events e SEMI JOIN offer_units u
      ON e.kind = u.kind AND e.offer_id = u.offer_id AND e.fence_id = u.fence_id AND e.unit_day = u.unit_day
),
impressions AS (
    SELECT period, 'impressions' AS metric, count(*)::DOUBLE AS value,
           count(DISTINCT NULLIF(device_key, '')) AS devices
    FROM scoped WHERE kind = 'impression' AND ts >= $from_ts AND ts < $to_ts GROUP BY period
),
pushes AS (
    SELECT period, 'pushes' AS metric, count(*)::DOUBLE AS value, count(DISTINCT NULLIF(device_key, '')) AS devices
    FROM scoped WHERE kind = 'impression' AND trigger NOT IN ('', 'scan') AND ts >= $from_ts AND ts < $to_ts
    GROUP BY period
),
per_device AS (
    SELECT period, device_key, count(*) AS n
    FROM scoped
    WHERE kind = 'impression' AND ts >= $from_ts AND ts < $to_ts AND device_key <> ''
    GROUP BY period, device_key
),
linked AS (
    SELECT period, 'linked_impressions' AS metric, sum(n)::DOUBLE AS value, count(*) AS devices
    FROM per_device GROUP BY period
),
frequency AS (
    SELECT period, 'frequency_' || CAST(least(n, 5) AS VARCHAR) AS metric, count(*)::DOUBLE AS value,
           count(*) AS devices
    FROM per_device GROUP BY period, least(n, 5)
),
bids AS (
    SELECT period, 'bids' AS metric, count(*)::DOUBLE AS value, count(DISTINCT NULLIF(device_key, '')) AS devices
    FROM scoped WHERE kind = 'bid' AND ts >= $from_ts AND ts < $to_ts GROUP BY period
),
won AS (  -- impressions of bids won on exchanges: they carry the clearing price (CPM)
    SELECT period, count(*)::DOUBLE AS wins, sum(price) / 1000 AS spend, count(DISTINCT NULLIF(device_key, '')) AS devices
    FROM scoped WHERE kind = 'impression' AND price IS NOT NULL AND ts >= $from_ts AND ts < $to_ts GROUP BY period
),
scans AS (
    SELECT period, 'scans' AS metric, count(*)::DOUBLE AS value, count(DISTINCT NULLIF(device_key, '')) AS devices
    FROM scoped WHERE kind = 'scan' AND ts >= $from_ts AND ts < $to_ts GROUP BY period
),
blocked AS (
    SELECT period, 'cap_blocked' AS metric, count(*)::DOUBLE AS value,
           count(DISTINCT NULLIF(device_key, '')) AS devices
    FROM scoped WHERE kind = 'cap_blocked' AND ts >= $from_ts AND ts < $to_ts GROUP BY period
),
outcomes AS (
    SELECT x.kind, s.device_key, coalesce($whole, CAST(date_trunc($unit, x.ts AT TIME ZONE $tz) AS DATE)) AS period,
           s.trigger AS via
    FROM events x JOIN scoped s ON s.kind = 'impression' AND x.ref = s.event_id
    WHERE x.kind IN ('click', 'redemption') AND x.ts >= $from_ts AND x.ts < $to_ts
      -- a rollup's click or redemption carries its impression's scope (store/rollups.py): the scope's filters let
      -- the scan skip the row groups of other fences' and offers' ones; a blank scope (raw events) is joined
      AND (coalesce(x.fence_id, '') = '' OR array_length($fence_ids) = 0 OR list_contains($fence_ids, x.fence_id))
      AND (coalesce(x.offer_id, '') = '' OR array_length($offer_ids) = 0 OR list_contains($offer_ids, x.offer_id))
      AND (coalesce(x.merchant_id, '') = '' OR $merchant_id = '' OR x.merchant_id = $merchant_id)
    QUALIFY row_number() OVER (PARTITION BY x.event_id ORDER BY x.ts) = 1
    UNION ALL  -- a static code redeemed without an impression: the offer is known, the device and fence are not
    SELECT kind, '', coalesce($whole, CAST(date_trunc($unit, ts AT TIME ZONE $tz) AS DATE)), ''
    FROM events
    WHERE kind = 'redemption' AND coalesce(ref, '') = '' AND ts >= $from_ts AND ts < $to_ts AND array_length($fence_ids) = 0
      AND (array_length($offer_ids) = 0 OR list_contains($offer_ids, offer_id))
      AND ($merchant_id = '' OR merchant_id = $merchant_id)
    QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY ts) = 1
),
clicks AS (
    SELECT period, 'clicks' AS metric, count(*)::DOUBLE AS value, count(DISTINCT NULLIF(device_key, '')) AS devices
    FROM outcomes WHERE kind = 'click' GROUP BY period
),
redemptions AS (
    SELECT period, 'redemptions' AS metric, count(*)::DOUBLE AS value,
           count(DISTINCT NULLIF(device_key, '')) AS devices
    FROM outcomes WHERE kind = 'redemption' GROUP BY period
),
scan_redemptions AS (  -- unique codes handed out by a poster's page: the scan's conversions
    SELECT period, 'scan_redemptions' AS metric, count(*)::DOUBLE AS value,
           count(DISTINCT NULLIF(device_key, '')) AS devices
    FROM outcomes WHERE kind = 'redemption' AND via = 'scan' GROUP BY period
),
visit_fence_set AS (
    SELECT unnest($visit_fences) AS fence
),
inside_any AS (
    SELECT event_id, kind, device_key, ts, lat, lon, unnest(fences) AS fence
    FROM events
    WHERE kind IN ('ping', 'visit') AND device_key <> '' AND array_length(fences) > 0
      AND ts >= $from_ts - INTERVAL 8 DAY AND ts < $to_ts + INTERVAL 1 DAY
),
inside_once AS (
    SELECT kind, device_key, ts, fence
    FROM inside_any WHERE fence IN (SELECT fence FROM visit_fence_set)  -- a hash join, whatever the list's length
    QUALIFY row_number() OVER (PARTITION BY event_id, fence ORDER BY ts, lat, lon) = 1
),
segments AS (  -- per device, fence, kind and UTC quarter hour; rolled days have them stored (store/rollups.py)
    SELECT device_key, fence, min(ts) AS ts, max(ts) AS last_ts
    FROM inside_once GROUP BY device_key, fence, kind, epoch_us(ts) // 900000000
    UNION ALL
    SELECT device_key, fence, ts, last_ts
    FROM rolled_segments
    WHERE fence IN (SELECT fence FROM visit_fence_set)
      AND ts >= $from_ts - INTERVAL 8 DAY AND ts < $to_ts + INTERVAL 1 DAY
),
inside_scope AS (
    SELECT device_key, ts, last_ts, fence, CAST(ts AT TIME ZONE 'UTC' AS DATE) AS unit_day FROM segments
),
fence_units AS (
    SELECT fence, unit_day FROM inside_scope GROUP BY ALL HAVING count(DISTINCT device_key) >= $k
),
marked AS (  -- only a segment's first ping can start a visit: its pings are under 15 minutes apart
    SELECT device_key, fence, ts, unit_day,
           coalesce(ts - lag(last_ts) OVER (PARTITION BY device_key, fence ORDER BY ts, last_ts) >= INTERVAL 30 MINUTE,
                    true)
               AS starts_visit
    FROM inside_scope
),
published AS (
    SELECT m.* FROM marked m SEMI JOIN fence_units u ON m.fence = u.fence AND m.unit_day = u.unit_day
    WHERE m.ts >= $from_ts AND m.ts < $to_ts
),
visit_starts AS (
    SELECT device_key, ts, coalesce($whole, CAST(date_trunc($unit, ts AT TIME ZONE $tz) AS DATE)) AS period
    FROM published WHERE starts_visit
),
visitors AS (
    SELECT coalesce($whole, CAST(date_trunc($unit, ts AT TIME ZONE $tz) AS DATE)) AS period, 'visitors' AS metric,
           count(DISTINCT device_key)::DOUBLE AS value, count(DISTINCT device_key) AS devices
    FROM published GROUP BY 1
),
visits AS (
    SELECT period, 'visits' AS metric, count(*)::DOUBLE AS value, count(DISTINCT device_key) AS devices
    FROM visit_starts GROUP BY period
),
exposed_visits AS (
    SELECT v.period, v.device_key, v.ts
    FROM visit_starts v
    WHERE EXISTS (
        SELECT 1 FROM scoped e
        WHERE e.kind = 'impression' AND e.device_key = v.device_key
          AND e.ts < v.ts AND v.ts <= e.ts + INTERVAL 7 DAY
    )
),
after_exposure AS (
    SELECT period, 'visits_after_exposure' AS metric, count(*)::DOUBLE AS value,
           count(DISTINCT device_key) AS devices
    FROM exposed_visits GROUP BY period
),
withheld AS (
    SELECT coalesce($whole, CAST(date_trunc($unit, e.ts AT TIME ZONE $tz) AS DATE)) AS period, 'withheld_' || e.kind AS metric,
           0::DOUBLE AS value, count(DISTINCT NULLIF(e.device_key, '')) AS devices
    FROM offer_events e ANTI JOIN offer_units u
      ON e.kind = u.kind AND e.offer_id = u.offer_id AND e.fence_id = u.fence_id AND e.unit_day = u.unit_day
    WHERE e.ts >= $from_ts AND e.ts < $to_ts GROUP BY ALL
    UNION ALL
    SELECT coalesce($whole, CAST(date_trunc($unit, m.ts AT TIME ZONE $tz) AS DATE)), 'withheld_visit', 0::DOUBLE,
           count(DISTINCT m.device_key)
    FROM marked m ANTI JOIN fence_units u ON m.fence = u.fence AND m.unit_day = u.unit_day
    WHERE m.ts >= $from_ts AND m.ts < $to_ts GROUP BY ALL
)
SELECT * FROM impressions
UNION ALL SELECT * FROM withheld
UNION ALL SELECT * FROM pushes
UNION ALL SELECT * FROM linked
UNION ALL SELECT * FROM frequency
UNION ALL SELECT * FROM blocked
UNION ALL SELECT * FROM bids
UNION ALL SELECT period, 'wins', wins, devices FROM won
UNION ALL SELECT period, 'spend', spend, devices FROM won
UNION ALL SELECT * FROM clicks
UNION ALL SELECT * FROM redemptions
UNION ALL SELECT * FROM scans
UNION ALL SELECT * FROM scan_redemptions
UNION ALL SELECT * FROM visitors
UNION ALL SELECT * FROM visits
UNION ALL SELECT * FROM after_exposure
ORDER BY period, metric
