-- Refresh wecom.user_mapping from the platform users staged in pg_temp.platform_users_stage.

-- name: lock
SELECT pg_advisory_xact_lock(hashtext('wecom.user_mapping'));

-- name: create_stage
CREATE TEMP TABLE platform_users_stage (
    platform_user_id bigint PRIMARY KEY, name text NOT NULL, email text, mobile text
) ON COMMIT DROP;

-- name: copy_stage
COPY platform_users_stage (platform_user_id, name, email, mobile) FROM STDIN;

-- name: upsert
WITH emails AS (
    SELECT s.platform_user_id, min(u.userid) AS userid, count(*) AS matches
    FROM platform_users_stage s
    JOIN wecom.users u ON lower(u.email) = s.email AND u.deleted_at IS NULL
    WHERE s.email IS NOT NULL
    GROUP BY s.platform_user_id
), mobiles AS (
    SELECT s.platform_user_id, min(u.userid) AS userid, count(*) AS matches
    FROM platform_users_stage s
    JOIN wecom.users u
      ON regexp_replace(regexp_replace(u.mobile, '[^0-9]', '', 'g'), '^86(1[0-9]{10})$', '\1') = s.mobile
     AND u.deleted_at IS NULL
    WHERE s.mobile IS NOT NULL
    GROUP BY s.platform_user_id
), resolved AS (
    SELECT s.platform_user_id, s.name,
           CASE WHEN o.wecom_userid IS NOT NULL THEN o.wecom_userid
                WHEN e.matches = 1 THEN e.userid
                WHEN m.matches = 1 THEN m.userid END AS wecom_userid,
           CASE WHEN o.wecom_userid IS NOT NULL THEN 'manual'
                WHEN e.matches = 1 THEN 'email'
                WHEN m.matches = 1 THEN 'mobile'
                WHEN e.matches > 1 OR m.matches > 1 THEN 'ambiguous'
                ELSE 'unmatched' END AS matched_by
    FROM platform_users_stage s
    LEFT JOIN wecom.user_mapping_overrides o USING (platform_user_id)
    LEFT JOIN emails e USING (platform_user_id)
    LEFT JOIN mobiles m USING (platform_user_id)
)
INSERT INTO wecom.user_mapping AS t (platform_user_id, platform_name, wecom_userid, matched_by, refreshed_at)
SELECT platform_user_id, name, wecom_userid, matched_by, now() FROM resolved
ON CONFLICT (platform_user_id) DO UPDATE
SET platform_name = excluded.platform_name, wecom_userid = excluded.wecom_userid,
    matched_by = excluded.matched_by, refreshed_at = excluded.refreshed_at
WHERE (t.platform_name, t.wecom_userid, t.matched_by)
      IS DISTINCT FROM (excluded.platform_name, excluded.wecom_userid, excluded.matched_by);

-- name: drop_gone
DELETE FROM wecom.user_mapping m
WHERE NOT EXISTS (SELECT 1 FROM platform_users_stage s WHERE s.platform_user_id = m.platform_user_id);

-- name: summary
SELECT matched_by, count(*) FROM wecom.user_mapping GROUP BY matched_by ORDER BY matched_by;

-- name: lookup
SELECT platform_user_id, lower(wecom_userid), platform_name FROM wecom.user_mapping
WHERE platform_user_id = ANY(%(ids)s);

-- name: main_departments
-- Each messaged interviewer's main department, its name and those of its leaders who are still members
-- (for the leader summary, escalations and declines).
SELECT lower(u.userid), d.department_id, d.name,
       ARRAY(SELECT l FROM unnest(d.leaders) AS l
             WHERE EXISTS (SELECT 1 FROM wecom.users x WHERE lower(x.userid) = lower(l) AND x.deleted_at IS NULL))
FROM wecom.users u
JOIN wecom.departments d ON d.department_id = u.main_department AND d.deleted_at IS NULL
WHERE lower(u.userid) = ANY(%(userids)s) AND u.deleted_at IS NULL;

-- name: forget_mapped
-- Warnings about people mapped since are forgotten, so losing the mapping again is news again.
DELETE FROM wecom.unmapped_reported r
USING wecom.user_mapping m
WHERE m.platform_user_id = r.platform_user_id AND m.wecom_userid IS NOT NULL;

-- name: not_yet_reported
-- Of these unmapped interviewers, the ones no run has warned about yet.
SELECT i FROM unnest(%(ids)s::bigint[]) AS i
WHERE NOT EXISTS (SELECT 1 FROM wecom.unmapped_reported r WHERE r.platform_user_id = i);

-- name: remember_reported
-- Warned about now: the next run does not warn again.
INSERT INTO wecom.unmapped_reported (platform_user_id)
SELECT unnest(%(ids)s::bigint[])
ON CONFLICT (platform_user_id) DO NOTHING;
