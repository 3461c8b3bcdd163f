-- Private cache of WeCom access tokens, shared by every worker process.
-- The only table that ever holds a credential; no analyst role is granted anything here.
CREATE SCHEMA IF NOT EXISTS wecom_private;
REVOKE ALL ON SCHEMA wecom_private FROM PUBLIC;

CREATE TABLE IF NOT EXISTS wecom_private.access_tokens (
    cache_key    text        PRIMARY KEY,
    access_token text        NOT NULL,
    expires_at   timestamptz NOT NULL,
    fetched_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
REVOKE ALL ON wecom_private.access_tokens FROM PUBLIC;

COMMENT ON SCHEMA wecom_private IS 'Credentials of the WeCom integration. Never granted to analysts.';
COMMENT ON TABLE wecom_private.access_tokens IS 'Cached WeCom access tokens, one per (corp id, app secret fingerprint).';
COMMENT ON COLUMN wecom_private.access_tokens.cache_key IS 'corp id and a SHA-256 fingerprint of the app secret (never the secret).';
COMMENT ON COLUMN wecom_private.access_tokens.access_token IS 'The token itself: a credential.';
COMMENT ON COLUMN wecom_private.access_tokens.expires_at IS 'When WeCom said the token expires; refreshed a margin earlier.';
COMMENT ON COLUMN wecom_private.access_tokens.fetched_at IS 'When gettoken returned it.';
