-- Contact events from the callback inbox, for the incremental sync (wecom.directory.events).

-- name: waiting
SELECT event_id, change_type, userid, new_userid, department_id
FROM wecom.callback_events
WHERE processed_at IS NULL AND event = 'change_contact'
ORDER BY event_id
LIMIT %(limit)s;

-- name: mark_processed
-- Inside the merge's transaction: applied and marked, or neither.
-- clock_timestamp(): the moment inside the apply lock, so full syncs can tell which events came after them.
UPDATE wecom.callback_events
SET processed_at = clock_timestamp(), processed_by = 'sync_run ' || %(sync_run_id)s
WHERE event_id = ANY(%(events)s) AND processed_at IS NULL;

-- name: led_departments
-- The departments the directory lists each of these members (lowercased userids) as leading: what a member
-- event may have changed without naming the department (WeCom announces a leader change as update_user).
SELECT lower(l.userid) AS userid, d.department_id
FROM wecom.departments d, unnest(d.leaders) AS l(userid)
WHERE d.deleted_at IS NULL AND lower(l.userid) = ANY(%(userids)s);
