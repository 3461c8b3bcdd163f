-- The full sync stages only what changed. Each complete snapshot carries a digest of every row (its
-- row state); the state of the last applied one is kept here, and the next full sync compares its rows
-- with it and stages, as a scoped snapshot, only the members and departments whose rows differ, appeared
-- or disappeared (plus those callback events touched since). Unlogged: lost in a crash, the next sync
-- simply stages everything again; so does one whose full sync is not the latest succeeded one.
ALTER TABLE wecom_staging.snapshots
    ADD COLUMN complete boolean NOT NULL DEFAULT true,
    ADD COLUMN row_state bytea;
COMMENT ON COLUMN wecom_staging.snapshots.complete IS 'The snapshot speaks for the whole directory (a full sync, staged whole or as its changes); false for the ids callback events named.';

CREATE UNLOGGED TABLE wecom_staging.applied_state (
    singleton   boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    row_state   bytea       NOT NULL,
    applied_at  timestamptz NOT NULL,
    sync_run_id bigint      NOT NULL
);
COMMENT ON TABLE wecom_staging.applied_state IS 'Row digests of the last complete snapshot applied, for the next full sync to stage only what changed.';
