-- A fingerprint of each applied snapshot: a re-sync whose complete snapshot is identical to the last
-- applied one is recorded without staging or merging anything (it would write zero rows anyway).
ALTER TABLE wecom.sync_runs ADD COLUMN snapshot_digest text;
COMMENT ON COLUMN wecom.sync_runs.snapshot_digest IS 'SHA-256 fingerprint of the complete snapshot this run applied.';

ALTER TABLE wecom_staging.snapshots
    ADD COLUMN digest text,
    ADD COLUMN unchanged boolean NOT NULL DEFAULT false,
    ADD COLUMN departments integer,
    ADD COLUMN users integer,
    ADD COLUMN memberships integer;
