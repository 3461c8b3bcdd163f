-- Ledger keys name an interview's scheduled start in one form, UTC to the second (2026-12-01T02:00:00Z),
-- whatever the database session's TimeZone (wecom.interviews.messages.ledger_instant). Keys written before
-- named it with the offset the session returned it in (2026-12-01T10:00:00+08:00 on one server,
-- 2026-12-01T02:00:00+00:00 on another): they are rewritten here, exactly (the instant is parsed with its
-- offset), so nothing sent under an old key is sent again and a card sent under one is still escalated.
-- Rewritten: reminder:, escalation: and decline: keys, with or without a dry-run:<run id>: prefix and a
-- #partN suffix, in wecom.message_log and wecom.reminder_cards. A card keeps its task_id: WeCom knows the
-- card by it, and its clicks, codes and answer name it.
-- Where a reminder was recorded under two offsets already (the session's zone changed between two runs: it
-- was sent twice), one row takes the new key, the one sent first, and the card sent with it; the others keep
-- their old keys, as the record of the duplicate (an answer on either card counts for the escalation).
CREATE FUNCTION wecom.utc_ledger_key_015(key text) RETURNS text LANGUAGE sql STABLE STRICT AS $$
    SELECT m[1] || to_char((m[2] || m[3])::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
           || m[4]
    FROM regexp_match(key, '^((?:dry-run:.*:)?(?:reminder|escalation|decline):[0-9]+:)'
                           '([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?)'
                           '([+-][0-9]{2}:[0-9]{2}(?::[0-9]{2})?)(:.*)$') AS m
$$;

-- Cards first, while their ledger rows still carry the old keys: of the cards of one reminder, the one
-- whose ledger row takes the new key below (sent before unsent, then the first written).
WITH renamed AS (
    SELECT c.task_id, k.new_key,
           row_number() OVER (PARTITION BY k.new_key
                              ORDER BY coalesce(l.status = 'sent', false) DESC, l.message_id NULLS LAST,
                                       c.created_at, c.task_id) AS n
    FROM wecom.reminder_cards c
    CROSS JOIN LATERAL (SELECT wecom.utc_ledger_key_015(c.dedup_key) AS new_key) k
    LEFT JOIN wecom.message_log l ON l.dedup_key = c.dedup_key AND l.recipient = c.userid
    WHERE k.new_key IS NOT NULL
)
UPDATE wecom.reminder_cards c SET dedup_key = r.new_key
FROM renamed r
WHERE c.task_id = r.task_id AND r.n = 1
  AND NOT EXISTS (SELECT 1 FROM wecom.reminder_cards e WHERE e.dedup_key = r.new_key);

WITH renamed AS (
    SELECT message_id, recipient, new_key,
           row_number() OVER (PARTITION BY new_key, recipient ORDER BY status = 'sent' DESC, message_id) AS n
    FROM (SELECT message_id, recipient, status, wecom.utc_ledger_key_015(dedup_key) AS new_key
          FROM wecom.message_log
          WHERE dedup_key LIKE ANY (ARRAY['reminder:%', 'escalation:%', 'decline:%', 'dry-run:%'])) k
    WHERE new_key IS NOT NULL
)
UPDATE wecom.message_log l SET dedup_key = r.new_key
FROM renamed r
WHERE l.message_id = r.message_id AND r.n = 1
  AND NOT EXISTS (SELECT 1 FROM wecom.message_log e
                  WHERE e.dedup_key = r.new_key AND e.recipient = r.recipient);

DROP FUNCTION wecom.utc_ledger_key_015(text);

COMMENT ON COLUMN wecom.message_log.dedup_key IS 'Business identity of the message (e.g. digest:2026-11-30:zhangsan, reminder:4711:2026-12-01T02:00:00Z:zhangsan: times in UTC); never sent twice.';
COMMENT ON COLUMN wecom.reminder_cards.dedup_key IS 'The reminder''s ledger key: reminder:<interview>:<scheduled start, UTC: 2026-12-01T02:00:00Z>:<userid>.';
COMMENT ON COLUMN wecom.reminder_cards.task_id IS 'The card''s task_id: what a click names. Derived from the ledger key when the card was recorded, and kept (cards recorded before migration 015 keep the one derived from the key''s old form).';
