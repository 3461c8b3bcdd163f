-- Row state (wecom.directory.state): the digest of the last applied snapshot, and the row digests of the last
-- applied complete one, which tell the next full sync what changed.

-- name: last_applied_digest
SELECT snapshot_digest FROM wecom.sync_runs WHERE status = 'succeeded' ORDER BY sync_run_id DESC LIMIT 1;

-- name: applied_state
-- Only when its sync is still the latest full one that succeeded: tables reloaded some other way since
-- (a restore, a truncate) make the state say nothing.
SELECT a.row_state, a.applied_at
FROM wecom_staging.applied_state a
WHERE a.sync_run_id = (SELECT max(sync_run_id) FROM wecom.sync_runs WHERE kind = 'full' AND status = 'succeeded');

-- name: touched_since
-- Members and departments callback events re-read after the last complete snapshot was applied.
SELECT userid, new_userid, department_id
FROM wecom.callback_events
WHERE event = 'change_contact' AND processed_at > %(since)s;

-- name: forget_row_state
DELETE FROM wecom_staging.applied_state;

-- name: save_row_state
-- After a complete snapshot is applied, its rows are the directory's: the next full sync compares with them.
-- Not when callback events were applied after it was staged (their rows may be newer than the snapshot's):
-- then there is no state, and the next full sync stages everything.
INSERT INTO wecom_staging.applied_state (row_state, applied_at, sync_run_id)
SELECT s.row_state, clock_timestamp(), %(sync_run_id)s
FROM wecom_staging.snapshots s
WHERE s.snapshot_id = %(snapshot_id)s AND s.row_state IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM wecom.callback_events e
                  WHERE e.processed_at > s.fetched_at AND e.event = 'change_contact');

-- name: carry_row_state
-- An unchanged snapshot leaves the directory as the last full sync left it: its state carries over.
UPDATE wecom_staging.applied_state
SET sync_run_id = %(sync_run_id)s
WHERE sync_run_id = (SELECT max(sync_run_id) FROM wecom.sync_runs WHERE kind = 'full' AND status = 'succeeded');
