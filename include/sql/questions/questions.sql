-- Human-in-the-loop questions asked in WeCom (wecom.questions): the questions, their cards, the taps.

-- name: members
-- Who of these names is a current WeCom member: by userid, else by (work) email. Returns the userid as
-- WeCom spells it, lowercased as every card recipient is.
SELECT DISTINCT ON (n.name) n.name, lower(u.userid) AS userid
FROM unnest(%(names)s::text[]) AS n(name)
JOIN wecom.users u ON u.deleted_at IS NULL
 AND (lower(u.userid) = lower(n.name) OR lower(u.email) = lower(n.name) OR lower(u.biz_mail) = lower(n.name))
ORDER BY n.name, lower(u.userid) = lower(n.name) DESC, u.userid;

-- name: record_question
-- Before the cards are sent. A retry of the asking task asks the same question: recorded once.
INSERT INTO wecom.questions (question_id, dag_id, run_id, task_id, map_index, subject, options, answerable,
                             answer_param, params, ui_link, language)
VALUES (%(question_id)s, %(dag_id)s, %(run_id)s, %(task_id)s, %(map_index)s, %(subject)s, %(options)s,
        %(answerable)s, %(answer_param)s, %(params)s, %(ui_link)s, %(language)s)
ON CONFLICT (question_id) DO NOTHING;

-- name: record_card
INSERT INTO wecom.question_cards (task_id, question_id, userid, dedup_key)
VALUES (%(task_id)s, %(question_id)s, %(userid)s, %(dedup_key)s)
ON CONFLICT DO NOTHING;

-- name: lock
-- One bridge at a time (runs of the questions DAG, a retry beside a late attempt).
SELECT pg_advisory_xact_lock(hashtextextended('wecom.questions', 0));

-- name: decided_at
-- Read again under the lock: a tap before it in the same run may have decided its question.
SELECT decided_at FROM wecom.questions WHERE question_id = %(question_id)s;

-- name: waiting_taps
-- Taps on question cards not yet settled, in the order they were made, with their card and question.
SELECT e.event_id, lower(e.userid) AS userid, coalesce(e.wecom_created_at, e.received_at) AS tapped_at,
       e.payload->>'TaskId' AS card_task_id, e.payload->>'EventKey' AS event_key,
       e.payload->>'ResponseCode' AS response_code,
       c.userid AS card_userid, q.question_id, q.dag_id, q.run_id, q.task_id, q.map_index, q.options,
       q.answerable, q.answer_param, q.params, q.decided_at
FROM wecom.callback_events e
LEFT JOIN wecom.question_cards c ON c.task_id = e.payload->>'TaskId'
LEFT JOIN wecom.questions q ON q.question_id = c.question_id
WHERE e.processed_at IS NULL AND e.event = 'template_card_event' AND e.payload->>'TaskId' LIKE 'hitl\_%%'
ORDER BY tapped_at, e.event_id
LIMIT %(limit)s;

-- name: settle_tap
-- The tap's outcome and its event processed, in one transaction with the decision it made (if any).
WITH tap AS (
    INSERT INTO wecom.question_taps (event_id, task_id, question_id, userid, option, tapped_at, outcome,
                                     airflow_status)
    VALUES (%(event_id)s, %(card_task_id)s, %(question_id)s, %(userid)s, %(option)s, %(tapped_at)s,
            %(outcome)s, %(airflow_status)s)
    ON CONFLICT (event_id) DO NOTHING
)
UPDATE wecom.callback_events
SET processed_at = clock_timestamp(), processed_by = 'questions: ' || %(outcome)s
WHERE event_id = %(event_id)s;

-- name: decide
-- The first decision recorded wins; every card of the question is then to show it.
WITH decided AS (
    UPDATE wecom.questions
    SET decided_at = %(decided_at)s, chosen = %(chosen)s, decided_by = %(decided_by)s,
        decided_via = %(decided_via)s, note = %(note)s
    WHERE question_id = %(question_id)s AND decided_at IS NULL
    RETURNING question_id
)
UPDATE wecom.question_cards c SET card_status = 'pending'
FROM decided d WHERE c.question_id = d.question_id AND c.card_status = 'open';

-- name: show_again
-- A tap on a decided question's card: show the decision again with the tap's fresh response code.
UPDATE wecom.question_cards SET card_status = 'pending'
WHERE task_id = %(task_id)s AND card_status <> 'open';

-- name: open_questions
SELECT question_id, dag_id, run_id, task_id, map_index, asked_at
FROM wecom.questions WHERE decided_at IS NULL ORDER BY asked_at LIMIT %(limit)s;

-- name: cards_to_show
-- Cards of decided questions that do not show the decision yet.
SELECT c.task_id, c.userid, c.dedup_key, q.decided_via, q.chosen, q.decided_by, q.decided_at, q.language
FROM wecom.question_cards c JOIN wecom.questions q USING (question_id)
WHERE c.card_status = 'pending'
ORDER BY q.decided_at, c.task_id
LIMIT %(limit)s;

-- name: card_outcome
UPDATE wecom.question_cards
SET card_status = %(status)s, card_note = %(note)s,
    card_updated_at = CASE WHEN %(status)s = 'updated' THEN clock_timestamp() END
WHERE task_id = %(task_id)s;
