-- Fair claiming across workspaces (docs/architecture.md, "Fair claiming"): a claim takes candidates per
-- workspace with due work, in the workspace's own priority order, and shares the free slots by load.
--
-- max_concurrency: the operator's cap on a workspace's runs executing at once (null: none). Claims of a
-- capped workspace take its advisory lock and count its live leases inside it, like concurrency gates.
ALTER TABLE apps ADD COLUMN max_concurrency int CHECK (max_concurrency > 0);

-- Finding the workspaces with due work: a skip scan over app_id, then one probe per workspace for a job
-- due now (the first entry of its range).
CREATE INDEX jobs_by_app_due ON jobs (app_id, available_at);
-- A workspace's candidates in its own order: priority, then due time, then arrival.
CREATE INDEX jobs_by_app_priority ON jobs (app_id, priority DESC, available_at, seq);
-- A workspace's load: its runs executing (live leases), at most the slots of every worker.
CREATE INDEX jobs_leased_by_app ON jobs (app_id, available_at) WHERE lease_token IS NOT NULL;

-- Priority no longer orders jobs across workspaces, and due gates are found per workspace.
DROP INDEX jobs_by_priority;
DROP INDEX jobs_gated_due;
