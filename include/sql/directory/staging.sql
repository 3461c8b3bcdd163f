-- Staging one snapshot in wecom_staging (wecom.directory.staging): its record, its rows by binary COPY, the
-- ids a scoped snapshot speaks for; and dropping it once applied, or when a failed run left it behind.

-- name: record_snapshot
INSERT INTO wecom_staging.snapshots (dag_run_id, digest, unchanged, partial, complete, row_state, departments, users,
                                     memberships)
VALUES (%(dag_run_id)s, %(digest)s, %(unchanged)s, %(partial)s, %(complete)s, %(row_state)s, %(departments)s,
        %(users)s, %(memberships)s)
RETURNING snapshot_id;

-- name: set_snapshot_id
-- Every row staged in this transaction takes the snapshot id from this setting (the columns' default).
SELECT set_config('wecom.snapshot_id', %(snapshot_id)s, true);

-- name: column_types
-- A staging table's column types in the order given (binary COPY needs them); a missing column, no row.
SELECT a.atttypid
FROM unnest(%(columns)s::text[]) WITH ORDINALITY AS c(name, n)
JOIN pg_attribute a ON a.attrelid = %(table)s::regclass AND a.attname = c.name
ORDER BY c.n;

-- name: copy_departments
-- The COPY statements list the columns in the order of wecom.directory.snapshot's DEPARTMENT_COLUMNS,
-- USER_COLUMNS and MEMBERSHIP_COLUMNS (wecom.directory.staging.STAGING_COLUMNS): the rows' order.
COPY wecom_staging.departments (department_id, name, name_en, parent_id, sort_order, leaders)
FROM STDIN (FORMAT BINARY);

-- name: copy_users
COPY wecom_staging.users (userid, name, english_name, alias, position, status, main_department, direct_leader,
                          telephone, extattr, mobile, gender, email, biz_mail, avatar, thumb_avatar, qr_code,
                          address, extra)
FROM STDIN (FORMAT BINARY);

-- name: copy_user_departments
COPY wecom_staging.user_departments (userid, department_id, sort_order, is_leader)
FROM STDIN (FORMAT BINARY);

-- name: stage_scope_users
INSERT INTO wecom_staging.scope_users (snapshot_id, userid_lower)
SELECT %(snapshot_id)s, unnest(%(userids)s::text[]);

-- name: stage_scope_departments
INSERT INTO wecom_staging.scope_departments (snapshot_id, department_id)
SELECT %(snapshot_id)s, unnest(%(department_ids)s::bigint[]);

-- name: staged_snapshot
SELECT digest, unchanged, partial, complete, departments, users, memberships
FROM wecom_staging.snapshots
WHERE snapshot_id = %(snapshot_id)s;

-- name: stale_snapshots
-- Staging left behind by failed runs: older than a day, and not the one just staged.
SELECT snapshot_id
FROM wecom_staging.snapshots
WHERE fetched_at < now() - interval '1 day' AND snapshot_id IS DISTINCT FROM %(keep)s;

-- name: drop_snapshot
DELETE FROM wecom_staging.snapshots WHERE snapshot_id = %(snapshot_id)s;

-- name: drop_snapshot_departments
DELETE FROM wecom_staging.departments WHERE snapshot_id = %(snapshot_id)s;

-- name: drop_snapshot_users
DELETE FROM wecom_staging.users WHERE snapshot_id = %(snapshot_id)s;

-- name: drop_snapshot_memberships
DELETE FROM wecom_staging.user_departments WHERE snapshot_id = %(snapshot_id)s;

-- name: drop_snapshot_scope_users
DELETE FROM wecom_staging.scope_users WHERE snapshot_id = %(snapshot_id)s;

-- name: drop_snapshot_scope_departments
DELETE FROM wecom_staging.scope_departments WHERE snapshot_id = %(snapshot_id)s;
