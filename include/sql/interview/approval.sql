-- The approval card's preview of a day's digests (wecom.interviews.approval).

-- name: per_department
-- How many of these recipients (lowercased userids) are in each main department.
SELECT coalesce(d.name, '-') AS department, count(*) AS recipients
FROM unnest(%(userids)s::text[]) AS r(userid)
LEFT JOIN wecom.users u ON lower(u.userid) = r.userid AND u.deleted_at IS NULL
LEFT JOIN wecom.departments d ON d.department_id = u.main_department AND d.deleted_at IS NULL
GROUP BY 1
ORDER BY 2 DESC, 1;
