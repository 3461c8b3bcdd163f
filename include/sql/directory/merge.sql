-- Apply one complete staged snapshot (%(snapshot_id)s) to the directory tables, inside one
-- transaction opened by wecom.directory.load.apply_snapshot. now() is that transaction's start,
-- so every row changed by one sync carries the same timestamp.
-- Only rows that really changed are written: an unchanged directory writes nothing.

-- name: fetched
SELECT (SELECT count(*) FROM wecom_staging.departments WHERE snapshot_id = %(snapshot_id)s) AS departments_fetched,
       (SELECT count(*) FROM wecom_staging.users WHERE snapshot_id = %(snapshot_id)s) AS users_fetched,
       (SELECT count(*) FROM wecom_staging.user_departments WHERE snapshot_id = %(snapshot_id)s) AS memberships_fetched;

-- name: removal_check
SELECT (SELECT count(*) FROM wecom.users WHERE deleted_at IS NULL) AS users_active,
       (SELECT count(*) FROM wecom.users u
         WHERE u.deleted_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM wecom_staging.users s
                           WHERE s.snapshot_id = %(snapshot_id)s AND lower(s.userid) = lower(u.userid))) AS users_removed;

-- name: update_departments
-- Changed and returning departments; RETURNING says which of the two each row was.
UPDATE wecom.departments d
SET name = s.name, name_en = s.name_en, parent_id = s.parent_id, sort_order = s.sort_order,
    leaders = s.leaders, updated_at = now(), deleted_at = NULL
FROM (SELECT s.*, t.deleted_at IS NOT NULL AS restoring
      FROM wecom_staging.departments s
      JOIN wecom.departments t ON t.department_id = s.department_id
      WHERE s.snapshot_id = %(snapshot_id)s
        AND (t.deleted_at IS NOT NULL
             OR (t.name, t.name_en, t.parent_id, t.sort_order, t.leaders)
                IS DISTINCT FROM (s.name, s.name_en, s.parent_id, s.sort_order, s.leaders))) s
WHERE d.department_id = s.department_id
RETURNING s.restoring;

-- name: insert_departments
INSERT INTO wecom.departments (department_id, name, name_en, parent_id, sort_order, leaders, first_seen_at, updated_at)
SELECT s.department_id, s.name, s.name_en, s.parent_id, s.sort_order, s.leaders, now(), now()
FROM wecom_staging.departments s
WHERE s.snapshot_id = %(snapshot_id)s
  AND NOT EXISTS (SELECT 1 FROM wecom.departments d WHERE d.department_id = s.department_id);

-- name: remove_departments
UPDATE wecom.departments d
SET deleted_at = now(), updated_at = now()
WHERE d.deleted_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM wecom_staging.departments s
                  WHERE s.snapshot_id = %(snapshot_id)s AND s.department_id = d.department_id);

-- name: update_users
-- Changed and returning members (matched case-insensitively); RETURNING says which each row was.
UPDATE wecom.users u
SET userid = s.userid, name = s.name, english_name = s.english_name, alias = s.alias, position = s.position,
    status = s.status, main_department = s.main_department, direct_leader = s.direct_leader,
    telephone = s.telephone, extattr = s.extattr, mobile = s.mobile, gender = s.gender, email = s.email,
    biz_mail = s.biz_mail, avatar = s.avatar, thumb_avatar = s.thumb_avatar, qr_code = s.qr_code,
    address = s.address, extra = s.extra, updated_at = now(), deleted_at = NULL
FROM (SELECT s.*, t.userid AS current_userid, t.deleted_at IS NOT NULL AS restoring
      FROM wecom_staging.users s
      JOIN wecom.users t ON lower(t.userid) = lower(s.userid)
      WHERE s.snapshot_id = %(snapshot_id)s
        AND (t.deleted_at IS NOT NULL
             OR (t.userid, t.name, t.english_name, t.alias, t.position, t.status, t.main_department,
                 t.direct_leader, t.telephone, t.extattr, t.mobile, t.gender, t.email, t.biz_mail, t.avatar,
                 t.thumb_avatar, t.qr_code, t.address, t.extra)
                IS DISTINCT FROM
                (s.userid, s.name, s.english_name, s.alias, s.position, s.status, s.main_department,
                 s.direct_leader, s.telephone, s.extattr, s.mobile, s.gender, s.email, s.biz_mail, s.avatar,
                 s.thumb_avatar, s.qr_code, s.address, s.extra))) s
WHERE u.userid = s.current_userid
RETURNING s.restoring;

-- name: insert_users
INSERT INTO wecom.users (userid, name, english_name, alias, position, status, main_department, direct_leader,
                         telephone, extattr, mobile, gender, email, biz_mail, avatar, thumb_avatar, qr_code,
                         address, extra, first_seen_at, updated_at)
SELECT s.userid, s.name, s.english_name, s.alias, s.position, s.status, s.main_department, s.direct_leader,
       s.telephone, s.extattr, s.mobile, s.gender, s.email, s.biz_mail, s.avatar, s.thumb_avatar, s.qr_code,
       s.address, s.extra, now(), now()
FROM wecom_staging.users s
WHERE s.snapshot_id = %(snapshot_id)s
  AND NOT EXISTS (SELECT 1 FROM wecom.users u WHERE lower(u.userid) = lower(s.userid));

-- name: remove_users
UPDATE wecom.users u
SET deleted_at = now(), updated_at = now()
WHERE u.deleted_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM wecom_staging.users s
                  WHERE s.snapshot_id = %(snapshot_id)s AND lower(s.userid) = lower(u.userid));

-- name: remove_memberships
DELETE FROM wecom.user_departments m
WHERE NOT EXISTS (SELECT 1 FROM wecom_staging.user_departments s
                  WHERE s.snapshot_id = %(snapshot_id)s AND s.userid = m.userid
                    AND s.department_id = m.department_id);

-- name: update_memberships
UPDATE wecom.user_departments m
SET sort_order = s.sort_order, is_leader = s.is_leader, updated_at = now()
FROM wecom_staging.user_departments s
WHERE s.snapshot_id = %(snapshot_id)s AND s.userid = m.userid AND s.department_id = m.department_id
  AND (m.sort_order, m.is_leader) IS DISTINCT FROM (s.sort_order, s.is_leader);

-- name: insert_memberships
INSERT INTO wecom.user_departments (userid, department_id, sort_order, is_leader, first_seen_at, updated_at)
SELECT s.userid, s.department_id, s.sort_order, s.is_leader, now(), now()
FROM wecom_staging.user_departments s
WHERE s.snapshot_id = %(snapshot_id)s
  AND NOT EXISTS (SELECT 1 FROM wecom.user_departments m
                  WHERE m.userid = s.userid AND m.department_id = s.department_id);

-- name: close_departments_history
UPDATE wecom.departments_history h
SET valid_to = now()
WHERE h.valid_to IS NULL
  AND NOT EXISTS (SELECT 1 FROM wecom.departments d
                  WHERE d.department_id = h.department_id AND d.deleted_at IS NULL
                    AND (d.name, d.name_en, d.parent_id, d.sort_order, d.leaders)
                        IS NOT DISTINCT FROM (h.name, h.name_en, h.parent_id, h.sort_order, h.leaders));

-- name: open_departments_history
INSERT INTO wecom.departments_history (department_id, name, name_en, parent_id, sort_order, leaders,
                                       valid_from, sync_run_id)
SELECT d.department_id, d.name, d.name_en, d.parent_id, d.sort_order, d.leaders, now(), %(sync_run_id)s
FROM wecom.departments d
WHERE d.deleted_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM wecom.departments_history h
                  WHERE h.department_id = d.department_id AND h.valid_to IS NULL);

-- name: close_users_history
UPDATE wecom.users_history h
SET valid_to = now()
WHERE h.valid_to IS NULL
  AND NOT EXISTS (SELECT 1 FROM wecom.users u
                  WHERE u.userid = h.userid AND u.deleted_at IS NULL
                    AND (u.name, u.english_name, u.position, u.status, u.main_department, u.direct_leader)
                        IS NOT DISTINCT FROM
                        (h.name, h.english_name, h.position, h.status, h.main_department, h.direct_leader));

-- name: open_users_history
INSERT INTO wecom.users_history (userid, name, english_name, position, status, main_department, direct_leader,
                                 valid_from, sync_run_id)
SELECT u.userid, u.name, u.english_name, u.position, u.status, u.main_department, u.direct_leader,
       now(), %(sync_run_id)s
FROM wecom.users u
WHERE u.deleted_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM wecom.users_history h WHERE h.userid = u.userid AND h.valid_to IS NULL);

-- name: close_memberships_history
UPDATE wecom.user_departments_history h
SET valid_to = now()
WHERE h.valid_to IS NULL
  AND NOT EXISTS (SELECT 1 FROM wecom.user_departments m
                  JOIN wecom.users u ON u.userid = m.userid AND u.deleted_at IS NULL
                  WHERE m.userid = h.userid AND m.department_id = h.department_id
                    AND m.is_leader = h.is_leader);

-- name: open_memberships_history
INSERT INTO wecom.user_departments_history (userid, department_id, is_leader, valid_from, sync_run_id)
SELECT m.userid, m.department_id, m.is_leader, now(), %(sync_run_id)s
FROM wecom.user_departments m
JOIN wecom.users u ON u.userid = m.userid AND u.deleted_at IS NULL
WHERE NOT EXISTS (SELECT 1 FROM wecom.user_departments_history h
                  WHERE h.userid = m.userid AND h.department_id = m.department_id AND h.valid_to IS NULL);

-- name: drop_snapshot
DELETE FROM wecom_staging.snapshots WHERE snapshot_id = %(snapshot_id)s;

-- name: drop_snapshot_departments
DELETE FROM wecom_staging.departments WHERE snapshot_id = %(snapshot_id)s;

-- name: drop_snapshot_users
DELETE FROM wecom_staging.users WHERE snapshot_id = %(snapshot_id)s;

-- name: drop_snapshot_memberships
DELETE FROM wecom_staging.user_departments WHERE snapshot_id = %(snapshot_id)s;
