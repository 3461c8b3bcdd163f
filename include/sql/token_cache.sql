-- The shared access-token cache (wecom.token_store.PostgresTokenStore), in wecom_private.access_tokens.

-- name: ddl_lock
-- Serialise the table's creation: concurrent CREATE ... IF NOT EXISTS can still collide.
SELECT pg_advisory_xact_lock(hashtextextended('wecom_private.ddl', 0));

-- name: read
-- A token for this key still valid a margin from now, and when it expires (epoch seconds).
SELECT access_token, extract(epoch FROM expires_at)::float8
FROM wecom_private.access_tokens
WHERE cache_key = %s AND expires_at > clock_timestamp() + make_interval(secs => %s);

-- name: key_lock
-- One refresh per key at a time: the others wait, then read what it stored.
SELECT pg_advisory_xact_lock(hashtextextended(%s, 0));

-- name: store
INSERT INTO wecom_private.access_tokens AS t (cache_key, access_token, expires_at)
VALUES (%s, %s, clock_timestamp() + make_interval(secs => %s))
ON CONFLICT (cache_key) DO UPDATE SET access_token = excluded.access_token,
                                      expires_at = excluded.expires_at, fetched_at = clock_timestamp()
RETURNING extract(epoch FROM t.expires_at)::float8;

-- name: invalidate
-- Only if it is still the token that failed: a newer one another process stored stays.
DELETE FROM wecom_private.access_tokens WHERE cache_key = %s AND access_token = %s;
