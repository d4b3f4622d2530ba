-- One closed UTC day's events other than pings and visit records, each copy once (copies alike in every column are
-- one; copies that differ are all kept, so that every report query still picks among them as it does among raw
-- events), sorted so that a read of one kind and one merchant, offer or fence touches a few row groups
-- (store/rollups.py). $files the day's raw files.
SELECT DISTINCT *
FROM read_parquet($files, union_by_name = true)
WHERE kind NOT IN ('ping', 'visit')
ORDER BY kind, merchant_id, offer_id, fence_id, ts
