-- wecom_analyst: read-only, the directory tables and views, never personal columns or credentials.
-- wecom_contacts_reader: additionally the personal contact view. Grant these roles to login users.
DO $$
BEGIN
    CREATE ROLE wecom_analyst NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
DO $$
BEGIN
    CREATE ROLE wecom_contacts_reader NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;

DO $$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO wecom_analyst, wecom_contacts_reader', current_database());
END $$;

GRANT USAGE ON SCHEMA wecom TO wecom_analyst, wecom_contacts_reader;
GRANT SELECT ON wecom.departments, wecom.user_departments, wecom.sync_runs,
                wecom.departments_history, wecom.users_history, wecom.user_departments_history,
                wecom.department_tree, wecom.department_headcount, wecom.members, wecom.membership_changes
    TO wecom_analyst;
-- Column-level: every column of wecom.users except the personal ones.
GRANT SELECT (userid, name, english_name, alias, position, status, main_department, direct_leader,
              telephone, extattr, first_seen_at, updated_at, deleted_at)
    ON wecom.users TO wecom_analyst;
GRANT wecom_analyst TO wecom_contacts_reader;
GRANT SELECT ON wecom.member_contacts TO wecom_contacts_reader;
