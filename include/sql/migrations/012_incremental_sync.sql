-- Incremental syncs: a staged snapshot may cover only some members and departments (its scope), re-read
-- from WeCom because callback events named them; the merge then leaves everything outside the scope alone.
ALTER TABLE wecom_staging.snapshots ADD COLUMN partial boolean NOT NULL DEFAULT false;
CREATE UNLOGGED TABLE wecom_staging.scope_users (
    snapshot_id  bigint NOT NULL,
    userid_lower text   NOT NULL
);
CREATE UNLOGGED TABLE wecom_staging.scope_departments (
    snapshot_id   bigint NOT NULL,
    department_id bigint NOT NULL
);

ALTER TABLE wecom.sync_runs
    ADD COLUMN kind text NOT NULL DEFAULT 'full' CHECK (kind IN ('full', 'incremental')),
    ADD COLUMN events_applied integer,
    ADD COLUMN drift integer;
COMMENT ON COLUMN wecom.sync_runs.kind IS 'full: the daily sync of the whole directory; incremental: the members and departments callback events named, re-read from WeCom.';
COMMENT ON COLUMN wecom.sync_runs.events_applied IS 'Incremental runs: callback events marked processed by this run.';
COMMENT ON COLUMN wecom.sync_runs.drift IS 'Full runs, once callbacks are on: members, departments and memberships this sync had to add, change or remove that events should have changed already (0 when no event was lost).';
