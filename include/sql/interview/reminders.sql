-- What a reminder window reads from the warehouse besides the mapping (wecom.interviews.inputs).

-- name: markdown_only
SELECT lower(userid) FROM wecom.markdown_only_users;

-- name: recorded_cards
-- The cards already recorded for these reminder keys: a card keeps its task_id (WeCom knows it by it), also
-- one derived from a key of the form before migration 015.
SELECT dedup_key, task_id FROM wecom.reminder_cards WHERE dedup_key = ANY(%(keys)s);

-- name: unanswered
-- Of these reminders (ledger keys), those sent as cards WeCom accepted (not as the markdown fallback) that
-- nobody answered: neither this card nor another card of the same reminder (before migration 015, a change
-- of the database session's time zone could send a reminder twice, as two cards).
SELECT c.dedup_key FROM wecom.reminder_cards c
JOIN wecom.message_log l ON l.dedup_key = c.dedup_key AND l.recipient = c.userid
WHERE c.dedup_key = ANY(%(keys)s) AND l.status = 'sent' AND l.errcode IS NULL
  AND NOT EXISTS (SELECT 1 FROM wecom.reminder_cards a JOIN wecom.reminder_responses r USING (task_id)
                  WHERE a.starts_at = c.starts_at AND a.interview_id = c.interview_id
                    AND a.userid = c.userid);
