-- Who is who: interview-platform users linked to WeCom userids.
CREATE TABLE wecom.user_mapping_overrides (
    platform_user_id bigint      PRIMARY KEY,
    wecom_userid     text        NOT NULL,
    note             text,
    created_by       text        NOT NULL DEFAULT current_user,
    created_at       timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE wecom.user_mapping_overrides IS 'Manual mappings: always win over automatic matching. Insert a row to map someone by hand.';
COMMENT ON COLUMN wecom.user_mapping_overrides.platform_user_id IS 'Interview-platform user id.';
COMMENT ON COLUMN wecom.user_mapping_overrides.wecom_userid IS 'The WeCom userid to use for that person.';
COMMENT ON COLUMN wecom.user_mapping_overrides.note IS 'Why (free text).';
COMMENT ON COLUMN wecom.user_mapping_overrides.created_by IS 'Database user who added it.';
COMMENT ON COLUMN wecom.user_mapping_overrides.created_at IS 'When it was added.';

CREATE TABLE wecom.user_mapping (
    platform_user_id bigint      PRIMARY KEY,
    platform_name    text        NOT NULL,
    wecom_userid     text,
    matched_by       text        NOT NULL CHECK (matched_by IN ('manual', 'email', 'mobile', 'ambiguous', 'unmatched')),
    refreshed_at     timestamptz NOT NULL
);
CREATE INDEX user_mapping_wecom_userid ON wecom.user_mapping (lower(wecom_userid));
COMMENT ON TABLE wecom.user_mapping IS 'Every platform user and the WeCom userid they receive messages as: manual override, else a unique email match, else a unique mobile match. Never guessed by name.';
COMMENT ON COLUMN wecom.user_mapping.platform_user_id IS 'Interview-platform user id.';
COMMENT ON COLUMN wecom.user_mapping.platform_name IS 'Name on the platform (for reports only, never used to match).';
COMMENT ON COLUMN wecom.user_mapping.wecom_userid IS 'WeCom userid; NULL when no safe match exists.';
COMMENT ON COLUMN wecom.user_mapping.matched_by IS 'manual, email, mobile; or ambiguous (several WeCom members match) or unmatched.';
COMMENT ON COLUMN wecom.user_mapping.refreshed_at IS 'When the mapping was last computed.';

CREATE VIEW wecom.unmapped_interviewers AS
SELECT platform_user_id, platform_name, matched_by AS reason, refreshed_at
FROM wecom.user_mapping WHERE wecom_userid IS NULL;
COMMENT ON VIEW wecom.unmapped_interviewers IS 'Platform users who cannot be messaged: add a row to wecom.user_mapping_overrides to fix.';
COMMENT ON COLUMN wecom.unmapped_interviewers.platform_user_id IS 'Interview-platform user id.';
COMMENT ON COLUMN wecom.unmapped_interviewers.platform_name IS 'Name on the platform.';
COMMENT ON COLUMN wecom.unmapped_interviewers.reason IS 'ambiguous or unmatched.';
COMMENT ON COLUMN wecom.unmapped_interviewers.refreshed_at IS 'When the mapping was last computed.';

GRANT SELECT ON wecom.user_mapping, wecom.user_mapping_overrides, wecom.unmapped_interviewers TO wecom_analyst;
