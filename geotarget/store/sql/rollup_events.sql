-- One closed UTC day's events other than pings and visit records, each copy once (copies alike in every column are
-- one; copies that differ are all kept, so that every report query still picks among them as it does among raw
-- events), sorted so that a read of one kind and one merchant, offer or fence touches a few row groups
-- (store/rollups.py). A click or redemption naming an impression of the same files takes that impression's scope
-- (merchant, offer, fence) where its own is blank, so that a report of one fence or offer skips the row groups
-- of the others' clicks too; reports still count it only through the impression. $files the day's raw files, or
-- a closed week's daily rollups.
WITH kept AS (
    SELECT DISTINCT *
    FROM (  -- files from before a column was added read NULL there (empty_events: no rows, every column)
        SELECT * FROM empty_events
        UNION ALL BY NAME SELECT * FROM read_parquet($files, union_by_name = true, hive_partitioning = false)
    )
    WHERE kind NOT IN ('ping', 'visit')
),
shown AS (  -- every copy of an impression carries the same scope
    SELECT event_id, any_value(merchant_id) AS merchant, any_value(offer_id) AS offer, any_value(fence_id) AS fence
    FROM kept WHERE kind = 'impression' GROUP BY event_id
)
SELECT k.* REPLACE (
    coalesce(nullif(k.merchant_id, ''), s.merchant, k.merchant_id) AS merchant_id,
    coalesce(nullif(k.offer_id, ''), s.offer, k.offer_id) AS offer_id,
    coalesce(nullif(k.fence_id, ''), s.fence, k.fence_id) AS fence_id
)
FROM kept k LEFT JOIN shown s ON k.kind IN ('click', 'redemption') AND k.ref = s.event_id
ORDER BY k.kind, merchant_id, offer_id, fence_id, k.ts
