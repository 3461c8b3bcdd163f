-- The WeCom org directory: current state, history, staging and the audit of sync runs.
CREATE SCHEMA IF NOT EXISTS wecom;
CREATE SCHEMA IF NOT EXISTS wecom_staging;
REVOKE ALL ON SCHEMA wecom_staging FROM PUBLIC;

-- Current state -------------------------------------------------------------------------------

CREATE TABLE wecom.departments (
    department_id bigint      PRIMARY KEY,
    name          text        NOT NULL,
    name_en       text,
    parent_id     bigint      NOT NULL,
    sort_order    bigint      NOT NULL DEFAULT 0,
    leaders       text[]      NOT NULL DEFAULT '{}',
    first_seen_at timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    deleted_at    timestamptz
);

CREATE TABLE wecom.users (
    userid          text        PRIMARY KEY,
    name            text        NOT NULL,
    english_name    text,
    alias           text,
    position        text,
    status          smallint,
    main_department bigint,
    direct_leader   text[]      NOT NULL DEFAULT '{}',
    telephone       text,
    extattr         jsonb,
    mobile          text,
    gender          text,
    email           text,
    biz_mail        text,
    avatar          text,
    thumb_avatar    text,
    qr_code         text,
    address         text,
    extra           jsonb       NOT NULL DEFAULT '{}',
    first_seen_at   timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    deleted_at      timestamptz
);
CREATE UNIQUE INDEX users_userid_ci ON wecom.users (lower(userid));
CREATE INDEX users_email_ci ON wecom.users (lower(email)) WHERE email IS NOT NULL;
CREATE INDEX users_mobile ON wecom.users (mobile) WHERE mobile IS NOT NULL;

CREATE TABLE wecom.user_departments (
    userid        text        NOT NULL REFERENCES wecom.users (userid) ON UPDATE CASCADE ON DELETE CASCADE,
    department_id bigint      NOT NULL,
    sort_order    bigint      NOT NULL DEFAULT 0,
    is_leader     boolean     NOT NULL DEFAULT false,
    first_seen_at timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (userid, department_id)
);
CREATE INDEX user_departments_department ON wecom.user_departments (department_id);

-- History: one row per version, valid over [valid_from, valid_to); valid_to NULL = current ------

CREATE TABLE wecom.departments_history (
    department_id bigint      NOT NULL,
    name          text        NOT NULL,
    name_en       text,
    parent_id     bigint      NOT NULL,
    sort_order    bigint      NOT NULL,
    leaders       text[]      NOT NULL,
    valid_from    timestamptz NOT NULL,
    valid_to      timestamptz,
    sync_run_id   bigint,
    PRIMARY KEY (department_id, valid_from)
);
CREATE UNIQUE INDEX departments_history_open ON wecom.departments_history (department_id) WHERE valid_to IS NULL;

CREATE TABLE wecom.users_history (
    userid          text        NOT NULL,
    name            text        NOT NULL,
    english_name    text,
    position        text,
    status          smallint,
    main_department bigint,
    direct_leader   text[]      NOT NULL,
    valid_from      timestamptz NOT NULL,
    valid_to        timestamptz,
    sync_run_id     bigint,
    PRIMARY KEY (userid, valid_from)
);
CREATE UNIQUE INDEX users_history_open ON wecom.users_history (userid) WHERE valid_to IS NULL;

CREATE TABLE wecom.user_departments_history (
    userid        text        NOT NULL,
    department_id bigint      NOT NULL,
    is_leader     boolean     NOT NULL,
    valid_from    timestamptz NOT NULL,
    valid_to      timestamptz,
    sync_run_id   bigint,
    PRIMARY KEY (userid, department_id, valid_from)
);
CREATE UNIQUE INDEX user_departments_history_open
    ON wecom.user_departments_history (userid, department_id) WHERE valid_to IS NULL;
CREATE INDEX user_departments_history_department
    ON wecom.user_departments_history (department_id, valid_from);

-- Audit ---------------------------------------------------------------------------------------

CREATE TABLE wecom.sync_runs (
    sync_run_id          bigserial   PRIMARY KEY,
    dag_run_id           text,
    started_at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at          timestamptz,
    status               text        NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'succeeded', 'failed', 'blocked')),
    departments_fetched  integer,
    users_fetched        integer,
    memberships_fetched  integer,
    departments_added    integer,
    departments_changed  integer,
    departments_removed  integer,
    departments_restored integer,
    users_added          integer,
    users_changed        integer,
    users_removed        integer,
    users_restored       integer,
    memberships_added    integer,
    memberships_changed  integer,
    memberships_removed  integer,
    rows_written         integer,
    error                text
);

-- Staging: complete snapshots written by the fetch task, merged and deleted by the apply task ---

CREATE UNLOGGED TABLE wecom_staging.snapshots (
    snapshot_id  bigserial   PRIMARY KEY,
    fetched_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    dag_run_id   text
);
CREATE UNLOGGED TABLE wecom_staging.departments (
    snapshot_id   bigint NOT NULL,
    department_id bigint NOT NULL,
    name          text   NOT NULL,
    name_en       text,
    parent_id     bigint NOT NULL,
    sort_order    bigint NOT NULL,
    leaders       text[] NOT NULL
);
CREATE UNLOGGED TABLE wecom_staging.users (
    snapshot_id     bigint NOT NULL,
    userid          text   NOT NULL,
    name            text   NOT NULL,
    english_name    text,
    alias           text,
    position        text,
    status          smallint,
    main_department bigint,
    direct_leader   text[] NOT NULL,
    telephone       text,
    extattr         jsonb,
    mobile          text,
    gender          text,
    email           text,
    biz_mail        text,
    avatar          text,
    thumb_avatar    text,
    qr_code         text,
    address         text,
    extra           jsonb  NOT NULL
);
CREATE UNLOGGED TABLE wecom_staging.user_departments (
    snapshot_id   bigint  NOT NULL,
    userid        text    NOT NULL,
    department_id bigint  NOT NULL,
    sort_order    bigint  NOT NULL,
    is_leader     boolean NOT NULL
);
CREATE INDEX staging_departments_snapshot ON wecom_staging.departments (snapshot_id, department_id);
CREATE INDEX staging_users_snapshot ON wecom_staging.users (snapshot_id, lower(userid));
CREATE INDEX staging_user_departments_snapshot
    ON wecom_staging.user_departments (snapshot_id, userid, department_id);

-- Documentation ---------------------------------------------------------------------------------

COMMENT ON SCHEMA wecom IS 'The WeCom org directory synced by the wecom_directory_sync DAG, and the messaging ledger.';
COMMENT ON SCHEMA wecom_staging IS 'Complete directory snapshots between the fetch and apply tasks. Not for analysts.';

COMMENT ON TABLE wecom.departments IS 'WeCom departments as of the last complete sync; removed ones keep their row with deleted_at set.';
COMMENT ON COLUMN wecom.departments.department_id IS 'WeCom department id (root is 1).';
COMMENT ON COLUMN wecom.departments.name IS 'Department name.';
COMMENT ON COLUMN wecom.departments.name_en IS 'English name, when set in WeCom.';
COMMENT ON COLUMN wecom.departments.parent_id IS 'Parent department id; 0 for the root.';
COMMENT ON COLUMN wecom.departments.sort_order IS 'WeCom order within the parent (larger sorts first).';
COMMENT ON COLUMN wecom.departments.leaders IS 'userids of the department leaders (department_leader).';
COMMENT ON COLUMN wecom.departments.first_seen_at IS 'When a sync first saw the department.';
COMMENT ON COLUMN wecom.departments.updated_at IS 'When a sync last changed this row.';
COMMENT ON COLUMN wecom.departments.deleted_at IS 'When the department disappeared from a complete snapshot; NULL while it exists.';

COMMENT ON TABLE wecom.users IS 'WeCom members as of the last complete sync; members who left keep their row with deleted_at set. Personal columns are not granted to analysts.';
COMMENT ON COLUMN wecom.users.userid IS 'WeCom userid, as WeCom spells it (unique case-insensitively).';
COMMENT ON COLUMN wecom.users.name IS 'Display name.';
COMMENT ON COLUMN wecom.users.english_name IS 'English name.';
COMMENT ON COLUMN wecom.users.alias IS 'Alias.';
COMMENT ON COLUMN wecom.users.position IS 'Job title.';
COMMENT ON COLUMN wecom.users.status IS '1 active, 2 disabled, 4 not activated, 5 left.';
COMMENT ON COLUMN wecom.users.main_department IS 'Main department id.';
COMMENT ON COLUMN wecom.users.direct_leader IS 'userids of direct leaders (at most 5).';
COMMENT ON COLUMN wecom.users.telephone IS 'Office telephone.';
COMMENT ON COLUMN wecom.users.extattr IS 'Custom attributes (extattr) as WeCom returns them.';
COMMENT ON COLUMN wecom.users.mobile IS 'PERSONAL. Mobile number; NULL for apps created after 2022-06-20.';
COMMENT ON COLUMN wecom.users.gender IS 'PERSONAL. "0" unknown, "1" male, "2" female; NULL for new apps.';
COMMENT ON COLUMN wecom.users.email IS 'PERSONAL. Email; NULL for new apps.';
COMMENT ON COLUMN wecom.users.biz_mail IS 'PERSONAL. Business mailbox; NULL for new apps.';
COMMENT ON COLUMN wecom.users.avatar IS 'PERSONAL. Avatar URL; NULL for new apps.';
COMMENT ON COLUMN wecom.users.thumb_avatar IS 'PERSONAL. Avatar thumbnail URL; NULL for new apps.';
COMMENT ON COLUMN wecom.users.qr_code IS 'PERSONAL. Personal QR code URL; NULL for new apps.';
COMMENT ON COLUMN wecom.users.address IS 'PERSONAL. Address; NULL for new apps.';
COMMENT ON COLUMN wecom.users.extra IS 'Every other field WeCom returned for the member, verbatim.';
COMMENT ON COLUMN wecom.users.first_seen_at IS 'When a sync first saw the member.';
COMMENT ON COLUMN wecom.users.updated_at IS 'When a sync last changed this row.';
COMMENT ON COLUMN wecom.users.deleted_at IS 'When the member disappeared from a complete snapshot; NULL while present.';

COMMENT ON TABLE wecom.user_departments IS 'Current memberships: one row per (member, department) in the last complete sync.';
COMMENT ON COLUMN wecom.user_departments.userid IS 'Member userid (wecom.users).';
COMMENT ON COLUMN wecom.user_departments.department_id IS 'Department id (wecom.departments).';
COMMENT ON COLUMN wecom.user_departments.sort_order IS 'The member''s order within the department.';
COMMENT ON COLUMN wecom.user_departments.is_leader IS 'Whether the member leads this department (is_leader_in_dept).';
COMMENT ON COLUMN wecom.user_departments.first_seen_at IS 'When a sync first saw the membership.';
COMMENT ON COLUMN wecom.user_departments.updated_at IS 'When a sync last changed this row.';

COMMENT ON TABLE wecom.departments_history IS 'Every version of every department, valid over [valid_from, valid_to).';
COMMENT ON COLUMN wecom.departments_history.department_id IS 'Department id.';
COMMENT ON COLUMN wecom.departments_history.name IS 'Name in this version.';
COMMENT ON COLUMN wecom.departments_history.name_en IS 'English name in this version.';
COMMENT ON COLUMN wecom.departments_history.parent_id IS 'Parent in this version.';
COMMENT ON COLUMN wecom.departments_history.sort_order IS 'Order in this version.';
COMMENT ON COLUMN wecom.departments_history.leaders IS 'Leaders in this version.';
COMMENT ON COLUMN wecom.departments_history.valid_from IS 'Start of this version (the sync that saw it first).';
COMMENT ON COLUMN wecom.departments_history.valid_to IS 'End of this version; NULL while current.';
COMMENT ON COLUMN wecom.departments_history.sync_run_id IS 'The sync run that opened this version.';

COMMENT ON TABLE wecom.users_history IS 'Every version of every member (non-personal fields), valid over [valid_from, valid_to).';
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

COMMENT ON TABLE wecom.user_departments_history IS 'Every membership period: who was in which department when.';
COMMENT ON COLUMN wecom.user_departments_history.userid IS 'Member userid.';
COMMENT ON COLUMN wecom.user_departments_history.department_id IS 'Department id.';
COMMENT ON COLUMN wecom.user_departments_history.is_leader IS 'Whether the member led the department in this period.';
COMMENT ON COLUMN wecom.user_departments_history.valid_from IS 'Start of the period.';
COMMENT ON COLUMN wecom.user_departments_history.valid_to IS 'End of the period; NULL while current.';
COMMENT ON COLUMN wecom.user_departments_history.sync_run_id IS 'The sync run that opened the period.';

COMMENT ON TABLE wecom.sync_runs IS 'One row per directory sync run: what it fetched and changed, and how it ended.';
COMMENT ON COLUMN wecom.sync_runs.sync_run_id IS 'Sync run id.';
COMMENT ON COLUMN wecom.sync_runs.dag_run_id IS 'The Airflow DAG run that applied it.';
COMMENT ON COLUMN wecom.sync_runs.started_at IS 'When the apply started.';
COMMENT ON COLUMN wecom.sync_runs.finished_at IS 'When it ended.';
COMMENT ON COLUMN wecom.sync_runs.status IS 'running, succeeded, failed, or blocked (the removal guard stopped it).';
COMMENT ON COLUMN wecom.sync_runs.departments_fetched IS 'Departments in the snapshot.';
COMMENT ON COLUMN wecom.sync_runs.users_fetched IS 'Distinct members in the snapshot.';
COMMENT ON COLUMN wecom.sync_runs.memberships_fetched IS 'Memberships in the snapshot.';
COMMENT ON COLUMN wecom.sync_runs.departments_added IS 'Departments seen for the first time.';
COMMENT ON COLUMN wecom.sync_runs.departments_changed IS 'Departments whose fields changed.';
COMMENT ON COLUMN wecom.sync_runs.departments_removed IS 'Departments soft-deleted.';
COMMENT ON COLUMN wecom.sync_runs.departments_restored IS 'Soft-deleted departments that came back.';
COMMENT ON COLUMN wecom.sync_runs.users_added IS 'Members seen for the first time.';
COMMENT ON COLUMN wecom.sync_runs.users_changed IS 'Members whose fields changed.';
COMMENT ON COLUMN wecom.sync_runs.users_removed IS 'Members soft-deleted.';
COMMENT ON COLUMN wecom.sync_runs.users_restored IS 'Soft-deleted members who came back.';
COMMENT ON COLUMN wecom.sync_runs.memberships_added IS 'New memberships.';
COMMENT ON COLUMN wecom.sync_runs.memberships_changed IS 'Memberships whose order or leader flag changed.';
COMMENT ON COLUMN wecom.sync_runs.memberships_removed IS 'Memberships that ended.';
COMMENT ON COLUMN wecom.sync_runs.rows_written IS 'Rows inserted, updated or deleted in the directory and history tables.';
COMMENT ON COLUMN wecom.sync_runs.error IS 'Why the run failed or was blocked.';
