-- Views analysts use. None of them exposes a personal column except wecom.member_contacts,
-- which is granted separately (role wecom_contacts_reader).

CREATE VIEW wecom.department_tree AS
WITH RECURSIVE tree AS (
    SELECT d.department_id, d.name, d.parent_id, 1 AS depth,
           ARRAY[d.department_id] AS path_ids, d.name::text AS full_path
    FROM wecom.departments d
    WHERE d.deleted_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM wecom.departments p
                      WHERE p.department_id = d.parent_id AND p.deleted_at IS NULL)
    UNION ALL
    SELECT c.department_id, c.name, c.parent_id, t.depth + 1,
           t.path_ids || c.department_id, t.full_path || ' / ' || c.name
    FROM wecom.departments c
    JOIN tree t ON c.parent_id = t.department_id
    WHERE c.deleted_at IS NULL AND NOT c.department_id = ANY (t.path_ids)
)
SELECT department_id, name, parent_id, depth, path_ids, full_path FROM tree;

COMMENT ON VIEW wecom.department_tree IS 'Active departments with their depth (root = 1) and full name path from the root.';
COMMENT ON COLUMN wecom.department_tree.department_id IS 'Department id.';
COMMENT ON COLUMN wecom.department_tree.name IS 'Department name.';
COMMENT ON COLUMN wecom.department_tree.parent_id IS 'Parent department id (0 for the root).';
COMMENT ON COLUMN wecom.department_tree.depth IS 'Depth in the tree; the root (or a department whose parent is not visible) is 1.';
COMMENT ON COLUMN wecom.department_tree.path_ids IS 'Department ids from the root down to this department.';
COMMENT ON COLUMN wecom.department_tree.full_path IS 'Names from the root down, joined by " / ".';

CREATE VIEW wecom.department_headcount AS
WITH tree AS (
    SELECT * FROM wecom.department_tree
), active AS (
    SELECT ud.userid, ud.department_id
    FROM wecom.user_departments ud
    JOIN wecom.users u ON u.userid = ud.userid AND u.deleted_at IS NULL
), direct AS (
    SELECT department_id, count(*) AS headcount FROM active GROUP BY department_id
), total AS (
    SELECT ancestor.department_id, count(DISTINCT a.userid) AS headcount
    FROM active a
    JOIN tree t ON t.department_id = a.department_id
    CROSS JOIN LATERAL unnest(t.path_ids) AS ancestor(department_id)
    GROUP BY ancestor.department_id
)
SELECT t.department_id, t.name, t.full_path, t.depth,
       coalesce(direct.headcount, 0) AS direct_headcount,
       coalesce(total.headcount, 0) AS total_headcount
FROM tree t
LEFT JOIN direct ON direct.department_id = t.department_id
LEFT JOIN total ON total.department_id = t.department_id;

COMMENT ON VIEW wecom.department_headcount IS 'Active members per department: directly in it, and in it or any sub-department (each person counted once).';
COMMENT ON COLUMN wecom.department_headcount.department_id IS 'Department id.';
COMMENT ON COLUMN wecom.department_headcount.name IS 'Department name.';
COMMENT ON COLUMN wecom.department_headcount.full_path IS 'Names from the root down.';
COMMENT ON COLUMN wecom.department_headcount.depth IS 'Depth in the tree (root = 1).';
COMMENT ON COLUMN wecom.department_headcount.direct_headcount IS 'Active members listed directly in the department.';
COMMENT ON COLUMN wecom.department_headcount.total_headcount IS 'Distinct active members in the department and all its sub-departments.';

CREATE VIEW wecom.members AS
SELECT u.userid, u.name, u.english_name, u.position, u.status,
       ud.department_id, t.name AS department_name, t.full_path AS department_path,
       ud.department_id = u.main_department AS is_main_department,
       ud.is_leader AS is_department_leader,
       d.leaders AS department_leaders,
       (SELECT array_agg(l.name ORDER BY l.name) FROM wecom.users l
         WHERE l.userid = ANY (d.leaders) AND l.deleted_at IS NULL) AS department_leader_names,
       u.direct_leader
FROM wecom.users u
JOIN wecom.user_departments ud ON ud.userid = u.userid
LEFT JOIN wecom.departments d ON d.department_id = ud.department_id
LEFT JOIN wecom.department_tree t ON t.department_id = ud.department_id
WHERE u.deleted_at IS NULL;

COMMENT ON VIEW wecom.members IS 'Active members, one row per department they belong to, with that department''s path and leaders. No personal fields.';
COMMENT ON COLUMN wecom.members.userid IS 'Member userid.';
COMMENT ON COLUMN wecom.members.name IS 'Member name.';
COMMENT ON COLUMN wecom.members.english_name IS 'English name.';
COMMENT ON COLUMN wecom.members.position IS 'Job title.';
COMMENT ON COLUMN wecom.members.status IS '1 active, 2 disabled, 4 not activated, 5 left.';
COMMENT ON COLUMN wecom.members.department_id IS 'A department the member belongs to.';
COMMENT ON COLUMN wecom.members.department_name IS 'That department''s name.';
COMMENT ON COLUMN wecom.members.department_path IS 'That department''s full path.';
COMMENT ON COLUMN wecom.members.is_main_department IS 'Whether it is the member''s main department.';
COMMENT ON COLUMN wecom.members.is_department_leader IS 'Whether the member leads that department.';
COMMENT ON COLUMN wecom.members.department_leaders IS 'userids of that department''s leaders.';
COMMENT ON COLUMN wecom.members.department_leader_names IS 'Names of that department''s active leaders.';
COMMENT ON COLUMN wecom.members.direct_leader IS 'userids of the member''s direct leaders.';

CREATE VIEW wecom.member_contacts AS
SELECT u.userid, u.name, u.mobile, u.email, u.biz_mail, u.gender, u.telephone, u.address
FROM wecom.users u
WHERE u.deleted_at IS NULL;

COMMENT ON VIEW wecom.member_contacts IS 'PERSONAL. Contact fields of active members. Granted only to wecom_contacts_reader.';
COMMENT ON COLUMN wecom.member_contacts.userid IS 'Member userid.';
COMMENT ON COLUMN wecom.member_contacts.name IS 'Member name.';
COMMENT ON COLUMN wecom.member_contacts.mobile IS 'PERSONAL. Mobile number.';
COMMENT ON COLUMN wecom.member_contacts.email IS 'PERSONAL. Email.';
COMMENT ON COLUMN wecom.member_contacts.biz_mail IS 'PERSONAL. Business mailbox.';
COMMENT ON COLUMN wecom.member_contacts.gender IS 'PERSONAL. Gender.';
COMMENT ON COLUMN wecom.member_contacts.telephone IS 'Office telephone.';
COMMENT ON COLUMN wecom.member_contacts.address IS 'PERSONAL. Address.';

CREATE VIEW wecom.membership_changes AS
SELECT h.userid, h.department_id, d.name AS department_name, h.is_leader,
       h.valid_from AS joined_at, h.valid_to AS left_at
FROM wecom.user_departments_history h
LEFT JOIN wecom.departments d ON d.department_id = h.department_id;

COMMENT ON VIEW wecom.membership_changes IS 'When each member joined and left each department (from history): "when did this person move".';
COMMENT ON COLUMN wecom.membership_changes.userid IS 'Member userid.';
COMMENT ON COLUMN wecom.membership_changes.department_id IS 'Department id.';
COMMENT ON COLUMN wecom.membership_changes.department_name IS 'Current name of the department.';
COMMENT ON COLUMN wecom.membership_changes.is_leader IS 'Whether the member led it during the period.';
COMMENT ON COLUMN wecom.membership_changes.joined_at IS 'Start of the membership period.';
COMMENT ON COLUMN wecom.membership_changes.left_at IS 'End of the period; NULL while still a member.';
