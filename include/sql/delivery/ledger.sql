-- The delivery ledger (wecom.message_log): one row per (dedup key, recipient), claimed before a send and
-- settled after it. Used by wecom.ledger; parameters are named.

-- name: claim
-- Claim the rows of a batch: new keys, deferred ones, our own (a retry of the same task) and stale claims
-- (a lease that ran out). Returns what is ours to send.
INSERT INTO wecom.message_log AS l (dedup_key, recipient, msgtype, body_hash, preview, expires_at,
                                   dag_id, run_id, task_id, claimed_by, claimed_at, attempts)
SELECT k, r, t, h, p, e, %(dag)s, %(run)s, %(task)s, %(by)s, clock_timestamp(), 1
FROM unnest(%(k)s::text[], %(r)s::text[], %(t)s::text[], %(h)s::text[], %(p)s::text[],
            %(e)s::timestamptz[]) AS v(k, r, t, h, p, e)
ON CONFLICT (dedup_key, recipient) DO UPDATE
SET status = 'pending', claimed_by = excluded.claimed_by, claimed_at = excluded.claimed_at,
    attempts = l.attempts + 1, run_id = excluded.run_id, task_id = excluded.task_id,
    body_hash = excluded.body_hash, preview = excluded.preview, updated_at = clock_timestamp()
WHERE l.status IN ('pending', 'deferred')
  AND (l.status = 'deferred' OR l.claimed_by = excluded.claimed_by
       OR l.claimed_at < clock_timestamp() - make_interval(secs => %(lease)s))
RETURNING dedup_key, recipient;

-- name: lock_members
-- Per-member advisory locks, in sorted order and in one round trip: no deadlocks between senders.
SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0)))
FROM (SELECT k FROM unnest(%(keys)s::text[]) AS k ORDER BY k OFFSET 0) AS ordered;

-- name: now
SELECT extract(epoch FROM clock_timestamp())::float8;

-- name: taken_slots
-- Every slot reserved for these members inside the last hour (future ones included), oldest first.
SELECT recipient, extract(epoch FROM reserved_at)::float8 FROM wecom.message_log
WHERE recipient = ANY(%(recipients)s) AND reserved_at > to_timestamp(%(since)s)
  AND status IN ('pending', 'sent')
ORDER BY reserved_at;

-- name: reserve
UPDATE wecom.message_log SET reserved_at = to_timestamp(%(slot)s)
WHERE dedup_key = %(key)s AND recipient = %(recipient)s;

-- name: defer
UPDATE wecom.message_log
SET status = 'deferred', not_before = to_timestamp(%(slot)s), deferred_payload = %(body)s, reason = %(reason)s,
    updated_at = clock_timestamp()
WHERE dedup_key = %(key)s AND recipient = %(recipient)s;

-- name: record
UPDATE wecom.message_log
SET status = %(status)s, msgid = coalesce(%(msgid)s, msgid), errcode = %(errcode)s, reason = %(reason)s,
    sent_at = CASE WHEN %(status)s = 'sent' THEN clock_timestamp() END,
    reserved_at = coalesce(to_timestamp(%(finished)s::float8), reserved_at),
    response_code = coalesce(%(code)s, response_code),
    deferred_payload = CASE WHEN %(status)s = 'pending' THEN deferred_payload END, updated_at = clock_timestamp()
WHERE dedup_key = %(key)s AND recipient = %(recipient)s;

-- name: due_deferred
-- Deferred messages whose time has come, and resumed ones left pending by an error or a killed worker (the
-- claim decides which are ours to send). In key order, so the members of one send stay together.
SELECT dedup_key, recipient, deferred_payload, expires_at FROM wecom.message_log
WHERE deferred_payload IS NOT NULL AND status IN ('deferred', 'pending') AND not_before <= clock_timestamp()
ORDER BY not_before, dedup_key, recipient LIMIT %(limit)s;

-- name: settled
SELECT dedup_key FROM wecom.message_log
WHERE dedup_key = ANY(%(keys)s) AND status IN ('sent', 'skipped', 'expired');

-- name: dry_run
INSERT INTO wecom.message_log (dedup_key, recipient, status, reason, msgtype, body_hash, preview,
                               dag_id, run_id, task_id)
VALUES (%(key)s, %(recipient)s, 'skipped', 'dry run: rendered, not sent', %(msgtype)s, %(hash)s, %(preview)s,
        %(dag)s, %(run)s, %(task)s)
ON CONFLICT (dedup_key, recipient) DO NOTHING;
