-- Why a run waits, and what each failed attempt said.
--
-- runs.retry: the retry the run is waiting out, written by step_retry (engine/execution.py
--   `_attempt_failed`): {reason, attempt, maxAttempts, unreachable, since, nextAt} (times in epoch ms),
--   plus, while the app is unreachable, the outage's `tries` and `progress` (how many steps the run's
--   invokes carried, which grows whenever the app answers, so an unchanged count means the outage is
--   unbroken). Shown only while the run is `scheduled`; a later claim makes it history.
-- runs.errors / steps.errors: [{attempt, message, at}], each failed attempt in order; errors whose step is
--   unknown (the app answered nothing, or an error op without a step id) go on the run, capped at the
--   last 50.
-- runs.error stays the error the run failed with, and is null on every run that did not fail.
ALTER TABLE runs ADD COLUMN retry jsonb, ADD COLUMN errors jsonb;
ALTER TABLE steps ADD COLUMN errors jsonb;
