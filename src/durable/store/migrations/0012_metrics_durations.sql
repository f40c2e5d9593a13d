-- Finer run-duration histograms for the dashboard's percentiles (engine/metrics.py): `durations` is a
-- sparse histogram {"bucket": count} with 64 buckets per doubling (each 1.1 % wide; bucket 0 holds
-- 0 ms), and `min_ms` / `max_ms` are the exact shortest and longest duration of the minute's runs, so
-- a percentile is within 1.1 % of the exact value and exact for a single run. The 48-bucket
-- `histogram` (√2 wide) is no longer written; rows rolled up before this migration keep it and are
-- read through it until they are pruned (8 days).
ALTER TABLE metrics_minute
    ADD COLUMN durations jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN min_ms bigint,
    ADD COLUMN max_ms bigint;
