-- A closed week's segments: its daily rollups' segment files ($files) as one, sorted by fence like each of them
-- (store/rollups.py).
SELECT * FROM read_parquet($files, hive_partitioning = false) ORDER BY fence, device_key, ts
