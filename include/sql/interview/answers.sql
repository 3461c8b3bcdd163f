-- Answerable reminders (wecom.interviews.answers): the cards, their response codes and the answers.

-- name: record_card
-- Before the send: a click must always find its reminder. A retried send records nothing new (whichever of
-- task_id and dedup_key is already there).
INSERT INTO wecom.reminder_cards (task_id, dedup_key, userid, interview_id, starts_at, position,
                                  candidate_name, recruiter_userid, language)
VALUES (%(task_id)s, %(dedup_key)s, %(userid)s, %(interview_id)s, %(starts_at)s, %(position)s,
        %(candidate_name)s, %(recruiter_userid)s, %(language)s)
ON CONFLICT DO NOTHING;

-- name: lock
-- One answer processor at a time (runs of the answers DAG, a retry beside a late attempt).
SELECT pg_advisory_xact_lock(hashtextextended('wecom.reminder_answers', 0));

-- name: waiting_clicks
-- Card clicks not yet processed, in the order they were made (taps on question cards are the bridge's).
SELECT event_id, userid, coalesce(wecom_created_at, received_at) AS clicked_at, payload->>'TaskId' AS task_id,
       payload->>'EventKey' AS event_key, payload->>'ResponseCode' AS response_code
FROM wecom.callback_events
WHERE processed_at IS NULL AND event = 'template_card_event'
  AND coalesce(payload->>'TaskId', '') NOT LIKE 'hitl\_%%'  -- question cards: wecom.questions.bridge
ORDER BY clicked_at, event_id
LIMIT %(limit)s;

-- name: cards
SELECT task_id, userid, superseded_at IS NOT NULL FROM wecom.reminder_cards WHERE task_id = ANY(%(task_ids)s);

-- name: correct_again
-- A tap on a superseded card: show the correction again, with the tap's fresh response code.
UPDATE wecom.reminder_cards SET correction_status = 'pending'
WHERE task_id = %(task_id)s AND superseded_at IS NOT NULL;

-- name: cards_to_correct
-- Superseded cards whose correction the card does not show yet.
SELECT task_id, userid, dedup_key, correction FROM wecom.reminder_cards
WHERE correction_status = 'pending'
ORDER BY superseded_at, task_id
LIMIT %(limit)s;

-- name: correction_outcome
UPDATE wecom.reminder_cards
SET correction_status = CASE WHEN %(status)s = 'updated' THEN 'corrected' ELSE 'not_corrected' END,
    correction_note = %(note)s
WHERE task_id = %(task_id)s;

-- name: record_answer
-- The first answer recorded wins: a duplicate, a replay or a second tap changes nothing.
-- A card a change superseded meanwhile (the detector commits on its own lock) records nothing.
INSERT INTO wecom.reminder_responses (task_id, interview_id, userid, choice, clicked_at, event_id)
SELECT task_id, interview_id, userid, %(choice)s, %(clicked_at)s, %(event_id)s
FROM wecom.reminder_cards WHERE task_id = %(task_id)s AND superseded_at IS NULL
ON CONFLICT (task_id) DO NOTHING
RETURNING task_id;

-- name: superseded
SELECT superseded_at IS NOT NULL FROM wecom.reminder_cards WHERE task_id = %(task_id)s;

-- name: mark_processed
UPDATE wecom.callback_events SET processed_at = clock_timestamp(), processed_by = %(by)s
WHERE event_id = %(event_id)s;

-- name: cards_to_update
-- Answers whose card does not show them yet, with the card's language.
SELECT r.task_id, r.userid, r.choice, r.clicked_at, c.language, c.dedup_key
FROM wecom.reminder_responses r JOIN wecom.reminder_cards c USING (task_id)
WHERE r.card_status = 'pending' AND c.superseded_at IS NULL
ORDER BY r.recorded_at
LIMIT %(limit)s;

-- name: card_outcome
UPDATE wecom.reminder_responses
SET card_status = %(status)s, card_note = %(note)s,
    card_updated_at = CASE WHEN %(status)s = 'updated' THEN clock_timestamp() END
WHERE task_id = %(task_id)s;

-- name: declines_to_notify
-- Declines nobody has been told of yet, with what the message names and who should hear it.
SELECT r.task_id, c.dedup_key, c.userid, c.interview_id, c.starts_at, c.position, c.candidate_name,
       c.recruiter_userid, c.language, c.superseded_at IS NOT NULL AS superseded,
       coalesce(m.platform_name, u.name, c.userid) AS interviewer_name
FROM wecom.reminder_responses r
JOIN wecom.reminder_cards c USING (task_id)
LEFT JOIN wecom.users u ON lower(u.userid) = c.userid AND u.deleted_at IS NULL
LEFT JOIN LATERAL (SELECT platform_name FROM wecom.user_mapping
                   WHERE lower(wecom_userid) = c.userid LIMIT 1) m ON true
WHERE r.choice = 'declined' AND r.notified_at IS NULL
ORDER BY r.recorded_at
LIMIT %(limit)s;

-- name: notified
UPDATE wecom.reminder_responses SET notified_at = clock_timestamp(), notify_note = %(note)s
WHERE task_id = %(task_id)s;
