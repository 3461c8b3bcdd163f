-- Response codes of answerable cards (reminder cards and question cards): wecom.cards.

-- name: record_code
INSERT INTO wecom.card_codes (response_code, task_id, issued_at)
VALUES (%(code)s, %(task_id)s, %(issued_at)s)
ON CONFLICT (response_code) DO NOTHING;

-- name: adopt_send_code
-- The code the send returned (kept in the ledger) joins the card's codes, issued when the card was sent.
INSERT INTO wecom.card_codes (response_code, task_id, issued_at)
SELECT l.response_code, %(task_id)s, coalesce(l.sent_at, l.updated_at)
FROM wecom.message_log l
WHERE l.dedup_key = %(dedup_key)s AND l.recipient = %(userid)s AND l.response_code IS NOT NULL
ON CONFLICT (response_code) DO NOTHING;

-- name: usable_codes
-- The card's codes not yet spent, newest first (a click's code is fresher than the send's).
SELECT response_code, attempted_at IS NOT NULL AS attempted FROM wecom.card_codes
WHERE task_id = %(task_id)s AND spent_at IS NULL
ORDER BY issued_at DESC, response_code;

-- name: attempt_code
UPDATE wecom.card_codes SET attempted_at = coalesce(attempted_at, clock_timestamp())
WHERE response_code = %(code)s;

-- name: spend_code
UPDATE wecom.card_codes SET spent_at = clock_timestamp() WHERE response_code = %(code)s;
