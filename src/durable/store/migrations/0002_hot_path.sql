-- The step hot path writes one row: no foreign-key checks (each locks the referenced runs row) on the
-- tables written per step or per park. Integrity is kept by the engine: these rows are only written by
-- statements fenced on the run's job, and runs are never deleted while they have them.
ALTER TABLE steps DROP CONSTRAINT steps_run_id_fkey;
ALTER TABLE jobs DROP CONSTRAINT jobs_run_id_fkey;
ALTER TABLE waits DROP CONSTRAINT waits_run_id_fkey;
