-- One sync's record in wecom.sync_runs (wecom.directory.apply): started before the apply's transaction,
-- settled as succeeded with its figures, or as failed or blocked with the error, whatever happens.

-- name: start_run
INSERT INTO wecom.sync_runs (dag_run_id, kind) VALUES (%(dag_run_id)s, %(kind)s) RETURNING sync_run_id;

-- name: run_failed
UPDATE wecom.sync_runs
SET status = %(status)s, error = %(error)s, finished_at = clock_timestamp()
WHERE sync_run_id = %(sync_run_id)s;

-- name: run_succeeded
-- The figures are wecom.directory.apply's COUNTED, then rows_written, snapshot_digest and drift.
UPDATE wecom.sync_runs
SET status = 'succeeded', finished_at = clock_timestamp(),
    departments_fetched = %(departments_fetched)s, users_fetched = %(users_fetched)s,
    memberships_fetched = %(memberships_fetched)s,
    departments_added = %(departments_added)s, departments_changed = %(departments_changed)s,
    departments_removed = %(departments_removed)s, departments_restored = %(departments_restored)s,
    users_added = %(users_added)s, users_changed = %(users_changed)s, users_removed = %(users_removed)s,
    users_restored = %(users_restored)s,
    memberships_added = %(memberships_added)s, memberships_changed = %(memberships_changed)s,
    memberships_removed = %(memberships_removed)s,
    rows_written = %(rows_written)s, snapshot_digest = %(snapshot_digest)s, drift = %(drift)s
WHERE sync_run_id = %(sync_run_id)s;

-- name: lock_timeout
SET LOCAL lock_timeout = '15min';

-- name: apply_lock
-- Two applies never interleave, whatever started them (scheduler, a manual `dags test`...).
SELECT pg_advisory_xact_lock(hashtextextended('wecom.directory_apply', 0));

-- name: record_events_applied
-- In the merge's transaction, beside the events it marked processed (callbacks/events.sql mark_processed).
UPDATE wecom.sync_runs SET events_applied = %(events_applied)s WHERE sync_run_id = %(sync_run_id)s;

-- name: events_ever_applied
SELECT EXISTS (SELECT 1 FROM wecom.sync_runs WHERE kind = 'incremental');

-- name: synced_before
-- Drift needs a directory to drift from: the first full sync loads everything, and that is no drift.
SELECT EXISTS (SELECT 1 FROM wecom.sync_runs WHERE kind = 'full' AND status = 'succeeded');

-- name: drift
-- Inside the merge's transaction, after it: the members and departments it wrote (every row it wrote
-- carries now(), every version it closed ends at now()), counted as callback events name them. A member
-- counts once with its memberships and leader flags. A department counts when it appeared, disappeared,
-- moved or changed leaders: WeCom announces neither a rename nor a reordering of a department.
SELECT (SELECT count(*)
        FROM wecom.departments d
        LEFT JOIN wecom.departments_history_closed h ON h.department_id = d.department_id AND h.valid_to = now()
        WHERE d.updated_at = now()
          AND (h.department_id IS NULL OR d.deleted_at = now()
               OR (h.parent_id, h.leaders) IS DISTINCT FROM (d.parent_id, d.leaders)))
     + (SELECT count(*)
        FROM (SELECT lower(u.userid) FROM wecom.users u WHERE u.updated_at = now()
              UNION
              SELECT lower(m.userid) FROM wecom.user_departments m WHERE m.updated_at = now()
              UNION
              SELECT lower(h.userid) FROM wecom.user_departments_history_closed h
              WHERE h.valid_to = now() AND EXISTS (SELECT 1 FROM wecom.users u WHERE u.userid = h.userid)) members)
       AS drift;
