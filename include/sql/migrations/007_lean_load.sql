-- A faster load, same results.
-- Staging holds one snapshot at a time and the merge reads all of it, so its indexes only slowed the COPY:
-- the merge hash-joins whole tables.
DROP INDEX IF EXISTS wecom_staging.staging_departments_snapshot;
DROP INDEX IF EXISTS wecom_staging.staging_users_snapshot;
DROP INDEX IF EXISTS wecom_staging.staging_user_departments_snapshot;
-- The merge writes members and memberships in one transaction from one complete snapshot, so the foreign key
-- checked nothing the merge does not already guarantee, at the price of a locked lookup per membership row.
-- A member whose userid changes case now gets new membership rows (and history periods) under the new spelling.
ALTER TABLE wecom.user_departments DROP CONSTRAINT IF EXISTS user_departments_userid_fkey;
COMMENT ON COLUMN wecom.user_departments.userid IS 'Member userid (wecom.users), as spelled in the snapshot.';
