-- Apply one staged snapshot (%(snapshot_id)s) to the directory tables, inside the one transaction
-- wecom.directory.apply.apply_snapshot opens; wecom.directory.merge.merge runs these statements. now() is that
-- transaction's start, so every row changed by one sync carries the same timestamp.
-- Only rows that really changed are written: an unchanged directory writes nothing.
-- The statements that remove or close rows come in two forms. `<name>` is for a snapshot staged whole:
-- whatever it lacks is gone. `<name>_scoped` is for a scoped snapshot (the ids callback events named, or a
-- full sync's changes), which removes and closes only inside its scope (wecom_staging.scope_users /
-- scope_departments). Its scope test is a plain semi-join, so the plan starts from the few ids in scope: a
-- flag in an OR (`NOT %(scoped)s OR EXISTS ...`) would keep it a subplan tested on every directory row.
-- Staged rows are always in scope.

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

-- name: removal_check_scoped
SELECT (SELECT count(*) FROM wecom.users WHERE deleted_at IS NULL) AS users_active,
       (SELECT count(*) FROM wecom.users u
         WHERE u.deleted_at IS NULL
           AND EXISTS (SELECT 1 FROM wecom_staging.scope_users c WHERE c.snapshot_id = %(snapshot_id)s AND c.userid_lower = lower(u.userid))
           AND NOT EXISTS (SELECT 1 FROM wecom_staging.users s
                           WHERE s.snapshot_id = %(snapshot_id)s AND lower(s.userid) = lower(u.userid))) AS users_removed;

-- name: update_departments
-- Changed and returning departments; RETURNING says which of the two each row was.
UPDATE wecom.departments d
SET name = s.name, name_en = s.name_en, parent_id = s.parent_id, sort_order = s.sort_order,
    leaders = s.leaders, updated_at = now(), deleted_at = NULL,
    version_from = now(), version_sync_run_id = %(sync_run_id)s
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
INSERT INTO wecom.departments (department_id, name, name_en, parent_id, sort_order, leaders, first_seen_at, updated_at,
                               version_from, version_sync_run_id)
SELECT s.department_id, s.name, s.name_en, s.parent_id, s.sort_order, s.leaders, now(), now(), now(), %(sync_run_id)s
FROM wecom_staging.departments s
WHERE s.snapshot_id = %(snapshot_id)s
  AND NOT EXISTS (SELECT 1 FROM wecom.departments d WHERE d.department_id = s.department_id);

-- name: remove_departments
UPDATE wecom.departments d
SET deleted_at = now(), updated_at = now()
WHERE d.deleted_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM wecom_staging.departments s
                  WHERE s.snapshot_id = %(snapshot_id)s AND s.department_id = d.department_id);

-- name: remove_departments_scoped
UPDATE wecom.departments d
SET deleted_at = now(), updated_at = now()
WHERE d.deleted_at IS NULL
  AND EXISTS (SELECT 1 FROM wecom_staging.scope_departments c WHERE c.snapshot_id = %(snapshot_id)s AND c.department_id = d.department_id)
  AND NOT EXISTS (SELECT 1 FROM wecom_staging.departments s
                  WHERE s.snapshot_id = %(snapshot_id)s AND s.department_id = d.department_id);

-- name: update_users
-- Changed and returning members (matched case-insensitively); RETURNING says which each row was.
UPDATE wecom.users u
SET userid = s.userid, name = s.name, english_name = s.english_name, alias = s.alias, position = s.position,
    status = s.status, main_department = s.main_department, direct_leader = s.direct_leader,
    telephone = s.telephone, extattr = s.extattr, mobile = s.mobile, gender = s.gender, email = s.email,
    biz_mail = s.biz_mail, avatar = s.avatar, thumb_avatar = s.thumb_avatar, qr_code = s.qr_code,
    address = s.address, extra = s.extra, updated_at = now(), deleted_at = NULL,
    version_from = CASE WHEN s.new_version THEN now() ELSE u.version_from END,
    version_sync_run_id = CASE WHEN s.new_version THEN %(sync_run_id)s ELSE u.version_sync_run_id END
FROM (SELECT s.*, t.userid AS current_userid, t.deleted_at IS NOT NULL AS restoring,
             t.deleted_at IS NOT NULL
             OR (t.userid, t.name, t.english_name, t.position, t.status, t.main_department, t.direct_leader)
                IS DISTINCT FROM
                (s.userid, s.name, s.english_name, s.position, s.status, s.main_department, s.direct_leader)
                AS new_version
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
                         address, extra, first_seen_at, updated_at, version_from, version_sync_run_id)
SELECT s.userid, s.name, s.english_name, s.alias, s.position, s.status, s.main_department, s.direct_leader,
       s.telephone, s.extattr, s.mobile, s.gender, s.email, s.biz_mail, s.avatar, s.thumb_avatar, s.qr_code,
       s.address, s.extra, now(), now(), now(), %(sync_run_id)s
FROM wecom_staging.users s
WHERE s.snapshot_id = %(snapshot_id)s
  AND NOT EXISTS (SELECT 1 FROM wecom.users u WHERE lower(u.userid) = lower(s.userid));

-- name: remove_users
UPDATE wecom.users u
SET deleted_at = now(), updated_at = now()
WHERE u.deleted_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM wecom_staging.users s
                  WHERE s.snapshot_id = %(snapshot_id)s AND lower(s.userid) = lower(u.userid));

-- name: remove_users_scoped
UPDATE wecom.users u
SET deleted_at = now(), updated_at = now()
WHERE u.deleted_at IS NULL
  AND EXISTS (SELECT 1 FROM wecom_staging.scope_users c WHERE c.snapshot_id = %(snapshot_id)s AND c.userid_lower = lower(u.userid))
  AND NOT EXISTS (SELECT 1 FROM wecom_staging.users s
                  WHERE s.snapshot_id = %(snapshot_id)s AND lower(s.userid) = lower(u.userid));

-- name: remove_memberships
DELETE FROM wecom.user_departments m
WHERE NOT EXISTS (SELECT 1 FROM wecom_staging.user_departments s
                  WHERE s.snapshot_id = %(snapshot_id)s AND s.userid = m.userid
                    AND s.department_id = m.department_id);

-- name: remove_memberships_scoped
DELETE FROM wecom.user_departments m
WHERE NOT EXISTS (SELECT 1 FROM wecom_staging.user_departments s
                  WHERE s.snapshot_id = %(snapshot_id)s AND s.userid = m.userid
                    AND s.department_id = m.department_id)
  AND EXISTS (SELECT 1 FROM wecom_staging.scope_users c WHERE c.snapshot_id = %(snapshot_id)s AND c.userid_lower = lower(m.userid));

-- name: update_memberships
UPDATE wecom.user_departments m
SET sort_order = s.sort_order, is_leader = s.is_leader, updated_at = now(),
    version_from = CASE WHEN m.is_leader IS DISTINCT FROM s.is_leader THEN now() ELSE m.version_from END,
    version_sync_run_id = CASE WHEN m.is_leader IS DISTINCT FROM s.is_leader THEN %(sync_run_id)s
                               ELSE m.version_sync_run_id END
FROM wecom_staging.user_departments s
WHERE s.snapshot_id = %(snapshot_id)s AND s.userid = m.userid AND s.department_id = m.department_id
  AND (m.sort_order, m.is_leader) IS DISTINCT FROM (s.sort_order, s.is_leader);

-- name: insert_memberships
INSERT INTO wecom.user_departments (userid, department_id, sort_order, is_leader, first_seen_at, updated_at,
                                    version_from, version_sync_run_id)
SELECT s.userid, s.department_id, s.sort_order, s.is_leader, now(), now(), now(), %(sync_run_id)s
FROM wecom_staging.user_departments s
WHERE s.snapshot_id = %(snapshot_id)s
  AND NOT EXISTS (SELECT 1 FROM wecom.user_departments m
                  WHERE m.userid = s.userid AND m.department_id = s.department_id);

-- name: close_departments_history
-- History: each close_* statement runs before its table changes and moves the current version of every
-- row about to change or go into the closed-history table; the updates and inserts then start new
-- versions (version_from). The *_history views show both.
INSERT INTO wecom.departments_history_closed (department_id, name, name_en, parent_id, sort_order, leaders,
                                              valid_from, valid_to, sync_run_id)
SELECT d.department_id, d.name, d.name_en, d.parent_id, d.sort_order, d.leaders, d.version_from, now(),
       d.version_sync_run_id
FROM wecom.departments d
LEFT JOIN wecom_staging.departments s ON s.snapshot_id = %(snapshot_id)s AND s.department_id = d.department_id
WHERE d.deleted_at IS NULL
  AND (s.department_id IS NULL
       OR (d.name, d.name_en, d.parent_id, d.sort_order, d.leaders)
          IS DISTINCT FROM (s.name, s.name_en, s.parent_id, s.sort_order, s.leaders));

-- name: close_departments_history_scoped
INSERT INTO wecom.departments_history_closed (department_id, name, name_en, parent_id, sort_order, leaders,
                                              valid_from, valid_to, sync_run_id)
SELECT d.department_id, d.name, d.name_en, d.parent_id, d.sort_order, d.leaders, d.version_from, now(),
       d.version_sync_run_id
FROM wecom.departments d
LEFT JOIN wecom_staging.departments s ON s.snapshot_id = %(snapshot_id)s AND s.department_id = d.department_id
WHERE d.deleted_at IS NULL
  AND EXISTS (SELECT 1 FROM wecom_staging.scope_departments c WHERE c.snapshot_id = %(snapshot_id)s AND c.department_id = d.department_id)
  AND (s.department_id IS NULL
       OR (d.name, d.name_en, d.parent_id, d.sort_order, d.leaders)
          IS DISTINCT FROM (s.name, s.name_en, s.parent_id, s.sort_order, s.leaders));

-- name: close_users_history
INSERT INTO wecom.users_history_closed (userid, name, english_name, position, status, main_department,
                                        direct_leader, valid_from, valid_to, sync_run_id)
SELECT u.userid, u.name, u.english_name, u.position, u.status, u.main_department, u.direct_leader,
       u.version_from, now(), u.version_sync_run_id
FROM wecom.users u
LEFT JOIN wecom_staging.users s ON s.snapshot_id = %(snapshot_id)s AND lower(s.userid) = lower(u.userid)
WHERE u.deleted_at IS NULL
  AND (s.userid IS NULL
       OR (u.userid, u.name, u.english_name, u.position, u.status, u.main_department, u.direct_leader)
          IS DISTINCT FROM
          (s.userid, s.name, s.english_name, s.position, s.status, s.main_department, s.direct_leader));

-- name: close_users_history_scoped
INSERT INTO wecom.users_history_closed (userid, name, english_name, position, status, main_department,
                                        direct_leader, valid_from, valid_to, sync_run_id)
SELECT u.userid, u.name, u.english_name, u.position, u.status, u.main_department, u.direct_leader,
       u.version_from, now(), u.version_sync_run_id
FROM wecom.users u
LEFT JOIN wecom_staging.users s ON s.snapshot_id = %(snapshot_id)s AND lower(s.userid) = lower(u.userid)
WHERE u.deleted_at IS NULL
  AND EXISTS (SELECT 1 FROM wecom_staging.scope_users c WHERE c.snapshot_id = %(snapshot_id)s AND c.userid_lower = lower(u.userid))
  AND (s.userid IS NULL
       OR (u.userid, u.name, u.english_name, u.position, u.status, u.main_department, u.direct_leader)
          IS DISTINCT FROM
          (s.userid, s.name, s.english_name, s.position, s.status, s.main_department, s.direct_leader));

-- name: close_memberships_history
INSERT INTO wecom.user_departments_history_closed (userid, department_id, is_leader, valid_from, valid_to,
                                                   sync_run_id)
SELECT m.userid, m.department_id, m.is_leader, m.version_from, now(), m.version_sync_run_id
FROM wecom.user_departments m
LEFT JOIN wecom_staging.user_departments s
       ON s.snapshot_id = %(snapshot_id)s AND s.userid = m.userid AND s.department_id = m.department_id
WHERE (s.userid IS NULL OR s.is_leader IS DISTINCT FROM m.is_leader);

-- name: close_memberships_history_scoped
INSERT INTO wecom.user_departments_history_closed (userid, department_id, is_leader, valid_from, valid_to,
                                                   sync_run_id)
SELECT m.userid, m.department_id, m.is_leader, m.version_from, now(), m.version_sync_run_id
FROM wecom.user_departments m
LEFT JOIN wecom_staging.user_departments s
       ON s.snapshot_id = %(snapshot_id)s AND s.userid = m.userid AND s.department_id = m.department_id
WHERE (s.userid IS NULL OR s.is_leader IS DISTINCT FROM m.is_leader)
  AND EXISTS (SELECT 1 FROM wecom_staging.scope_users c WHERE c.snapshot_id = %(snapshot_id)s AND c.userid_lower = lower(m.userid));

-- name: directory_filled
-- Statistics before the merge (wecom.directory.merge.analyze_staging) only when there is something to join
-- against: a first sync's plans are scans of staging, whatever the statistics say.
SELECT EXISTS (SELECT 1 FROM wecom.users) OR EXISTS (SELECT 1 FROM wecom.departments);

-- name: analyze_staging
ANALYZE wecom_staging.departments (snapshot_id, department_id),
        wecom_staging.users (snapshot_id, userid),
        wecom_staging.user_departments (snapshot_id, userid, department_id);

-- name: analyze_scope
ANALYZE wecom_staging.scope_users, wecom_staging.scope_departments;

-- name: stale_statistics
-- Directory tables whose statistics predate a fifth of their rows (a first sync moments ago, before
-- autovacuum came by): a scoped merge analyzes them first (analyze_<table>), or it plans its joins for
-- empty tables.
SELECT relname
FROM pg_stat_user_tables
WHERE schemaname = 'wecom' AND relname IN ('departments', 'users', 'user_departments')
  AND n_mod_since_analyze > 0.2 * greatest(n_live_tup, 1000);

-- name: analyze_departments
ANALYZE wecom.departments;

-- name: analyze_users
ANALYZE wecom.users;

-- name: analyze_user_departments
ANALYZE wecom.user_departments;
