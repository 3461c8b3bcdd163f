-- History keeps only closed versions; the current version lives in the current tables (version_from).
-- Before, every current row had an open twin in history: a first sync wrote the directory twice, and every
-- sync compared the two copies. The *_history names become views over both, so queries do not change.

ALTER TABLE wecom.departments ADD COLUMN version_from timestamptz, ADD COLUMN version_sync_run_id bigint;
ALTER TABLE wecom.users ADD COLUMN version_from timestamptz, ADD COLUMN version_sync_run_id bigint;
ALTER TABLE wecom.user_departments ADD COLUMN version_from timestamptz, ADD COLUMN version_sync_run_id bigint;

UPDATE wecom.departments d SET version_from = h.valid_from, version_sync_run_id = h.sync_run_id
FROM wecom.departments_history h WHERE h.department_id = d.department_id AND h.valid_to IS NULL;
UPDATE wecom.users u SET version_from = h.valid_from, version_sync_run_id = h.sync_run_id
FROM wecom.users_history h WHERE h.userid = u.userid AND h.valid_to IS NULL;
UPDATE wecom.user_departments m SET version_from = h.valid_from, version_sync_run_id = h.sync_run_id
FROM wecom.user_departments_history h
WHERE h.userid = m.userid AND h.department_id = m.department_id AND h.valid_to IS NULL;
-- Rows that had no open version (none should) start now.
UPDATE wecom.departments SET version_from = first_seen_at WHERE version_from IS NULL AND deleted_at IS NULL;
UPDATE wecom.users SET version_from = first_seen_at WHERE version_from IS NULL AND deleted_at IS NULL;
UPDATE wecom.user_departments SET version_from = first_seen_at WHERE version_from IS NULL;

DROP VIEW wecom.membership_changes;
DELETE FROM wecom.departments_history WHERE valid_to IS NULL;
DELETE FROM wecom.users_history WHERE valid_to IS NULL;
DELETE FROM wecom.user_departments_history WHERE valid_to IS NULL;
DROP INDEX wecom.departments_history_open;
DROP INDEX wecom.users_history_open;
DROP INDEX wecom.user_departments_history_open;
ALTER TABLE wecom.departments_history RENAME TO departments_history_closed;
ALTER TABLE wecom.users_history RENAME TO users_history_closed;
ALTER TABLE wecom.user_departments_history RENAME TO user_departments_history_closed;
ALTER TABLE wecom.departments_history_closed ALTER COLUMN valid_to SET NOT NULL;
ALTER TABLE wecom.users_history_closed ALTER COLUMN valid_to SET NOT NULL;
ALTER TABLE wecom.user_departments_history_closed ALTER COLUMN valid_to SET NOT NULL;

CREATE VIEW wecom.departments_history AS
SELECT department_id, name, name_en, parent_id, sort_order, leaders, valid_from, valid_to, sync_run_id
FROM wecom.departments_history_closed
UNION ALL
SELECT department_id, name, name_en, parent_id, sort_order, leaders, version_from, NULL::timestamptz,
       version_sync_run_id
FROM wecom.departments WHERE deleted_at IS NULL;

CREATE VIEW wecom.users_history AS
SELECT userid, name, english_name, position, status, main_department, direct_leader, valid_from, valid_to,
       sync_run_id
FROM wecom.users_history_closed
UNION ALL
SELECT userid, name, english_name, position, status, main_department, direct_leader, version_from,
       NULL::timestamptz, version_sync_run_id
FROM wecom.users WHERE deleted_at IS NULL;

CREATE VIEW wecom.user_departments_history AS
SELECT userid, department_id, is_leader, valid_from, valid_to, sync_run_id
FROM wecom.user_departments_history_closed
UNION ALL
SELECT userid, department_id, is_leader, version_from, NULL::timestamptz, version_sync_run_id
FROM wecom.user_departments;

CREATE VIEW wecom.membership_changes AS
SELECT h.userid, h.department_id, d.name AS department_name, h.is_leader,
       h.valid_from AS joined_at, h.valid_to AS left_at
FROM wecom.user_departments_history h
LEFT JOIN wecom.departments d ON d.department_id = h.department_id;

GRANT SELECT ON wecom.departments_history, wecom.users_history, wecom.user_departments_history,
                wecom.membership_changes
    TO wecom_analyst;
GRANT SELECT (version_from, version_sync_run_id) ON wecom.users TO wecom_analyst;

COMMENT ON COLUMN wecom.departments.version_from IS 'Start of the current version (when a sync last saw name, parent, order or leaders change, or the department return).';
COMMENT ON COLUMN wecom.departments.version_sync_run_id IS 'The sync run that opened the current version.';
COMMENT ON COLUMN wecom.users.version_from IS 'Start of the current version of the fields kept in history (userid spelling, name, english_name, position, status, main_department, direct_leader).';
COMMENT ON COLUMN wecom.users.version_sync_run_id IS 'The sync run that opened the current version.';
COMMENT ON COLUMN wecom.user_departments.version_from IS 'Start of the current period (joined, or the leader flag changed).';
COMMENT ON COLUMN wecom.user_departments.version_sync_run_id IS 'The sync run that opened the current period.';

COMMENT ON TABLE wecom.departments_history_closed IS 'Department versions that ended; with the current ones they make wecom.departments_history.';
COMMENT ON COLUMN wecom.departments_history_closed.valid_to IS 'End of this version.';
COMMENT ON TABLE wecom.users_history_closed IS 'Member versions that ended (changed or left); with the current ones they make wecom.users_history.';
COMMENT ON COLUMN wecom.users_history_closed.valid_to IS 'End of this version (changed or left).';
COMMENT ON TABLE wecom.user_departments_history_closed IS 'Membership periods that ended; with the current ones they make wecom.user_departments_history.';
COMMENT ON COLUMN wecom.user_departments_history_closed.valid_to IS 'End of the period.';

COMMENT ON VIEW wecom.departments_history IS 'Every version of every department, valid over [valid_from, valid_to); valid_to NULL = current.';
COMMENT ON COLUMN wecom.departments_history.department_id IS 'Department id.';
COMMENT ON COLUMN wecom.departments_history.name IS 'Name in this version.';
COMMENT ON COLUMN wecom.departments_history.name_en IS 'English name in this version.';
COMMENT ON COLUMN wecom.departments_history.parent_id IS 'Parent in this version.';
COMMENT ON COLUMN wecom.departments_history.sort_order IS 'Order in this version.';
COMMENT ON COLUMN wecom.departments_history.leaders IS 'Leaders in this version.';
COMMENT ON COLUMN wecom.departments_history.valid_from IS 'Start of this version.';
COMMENT ON COLUMN wecom.departments_history.valid_to IS 'End of this version; NULL while current.';
COMMENT ON COLUMN wecom.departments_history.sync_run_id IS 'The sync run that opened this version.';

COMMENT ON VIEW wecom.users_history IS 'Every version of every member (non-personal fields), valid over [valid_from, valid_to); valid_to NULL = current.';
COMMENT ON COLUMN wecom.users_history.userid IS 'Member userid.';
COMMENT ON COLUMN wecom.users_history.name IS 'Name in this version.';
COMMENT ON COLUMN wecom.users_history.english_name IS 'English name in this version.';
COMMENT ON COLUMN wecom.users_history.position IS 'Job title in this version.';
COMMENT ON COLUMN wecom.users_history.status IS 'Status in this version.';
COMMENT ON COLUMN wecom.users_history.main_department IS 'Main department in this version.';
COMMENT ON COLUMN wecom.users_history.direct_leader IS 'Direct leaders in this version.';
COMMENT ON COLUMN wecom.users_history.valid_from IS 'Start of this version.';
COMMENT ON COLUMN wecom.users_history.valid_to IS 'End of this version (changed or left); NULL while current.';
COMMENT ON COLUMN wecom.users_history.sync_run_id IS 'The sync run that opened this version.';

COMMENT ON VIEW wecom.user_departments_history IS 'Every membership period: who was in which department when; valid_to NULL = current.';
COMMENT ON COLUMN wecom.user_departments_history.userid IS 'Member userid.';
COMMENT ON COLUMN wecom.user_departments_history.department_id IS 'Department id.';
COMMENT ON COLUMN wecom.user_departments_history.is_leader IS 'Whether the member led the department in this period.';
COMMENT ON COLUMN wecom.user_departments_history.valid_from IS 'Start of the period.';
COMMENT ON COLUMN wecom.user_departments_history.valid_to IS 'End of the period; NULL while current.';
COMMENT ON COLUMN wecom.user_departments_history.sync_run_id IS 'The sync run that opened the period.';

COMMENT ON VIEW wecom.membership_changes IS 'When each member joined and left each department (from history): "when did this person move".';
COMMENT ON COLUMN wecom.membership_changes.userid IS 'Member userid.';
COMMENT ON COLUMN wecom.membership_changes.department_id IS 'Department id.';
COMMENT ON COLUMN wecom.membership_changes.department_name IS 'Current name of the department.';
COMMENT ON COLUMN wecom.membership_changes.is_leader IS 'Whether the member led it during the period.';
COMMENT ON COLUMN wecom.membership_changes.joined_at IS 'Start of the membership period.';
COMMENT ON COLUMN wecom.membership_changes.left_at IS 'End of the period; NULL while still a member.';
