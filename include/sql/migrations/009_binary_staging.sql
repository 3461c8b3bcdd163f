-- Staging is loaded with binary COPY of the rows' own values: each row's snapshot id comes from the loading
-- transaction's setting wecom.snapshot_id (a COPY without it fails), so the snapshot's digest can be taken
-- of exactly the bytes sent.
ALTER TABLE wecom_staging.departments ALTER COLUMN snapshot_id SET DEFAULT current_setting('wecom.snapshot_id')::bigint;
ALTER TABLE wecom_staging.users ALTER COLUMN snapshot_id SET DEFAULT current_setting('wecom.snapshot_id')::bigint;
ALTER TABLE wecom_staging.user_departments ALTER COLUMN snapshot_id SET DEFAULT current_setting('wecom.snapshot_id')::bigint;
