-- Unmapped interviewers already reported in a task log, so each run warns only about new ones.
CREATE TABLE wecom.unmapped_reported (
    platform_user_id bigint      PRIMARY KEY,
    reported_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE wecom.unmapped_reported IS 'Interviewers without a WeCom mapping that a run has already warned about; a row goes when the person is mapped, so losing the mapping again is news again. The full list is wecom.unmapped_interviewers.';
COMMENT ON COLUMN wecom.unmapped_reported.platform_user_id IS 'Interview-platform user id.';
COMMENT ON COLUMN wecom.unmapped_reported.reported_at IS 'When a run first warned about this person.';
GRANT SELECT ON wecom.unmapped_reported TO wecom_analyst;
