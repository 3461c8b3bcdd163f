-- Answerable reminders: each reminder card sent, the response codes that can update it, the answer, and
-- the views recruiters and analysts read. A card's task_id is derived from the reminder's ledger key.
ALTER TABLE wecom.message_log ADD COLUMN response_code text;
COMMENT ON COLUMN wecom.message_log.response_code IS 'For an answerable card: the code WeCom returned with the send (one card update, 72 hours).';

CREATE TABLE wecom.reminder_cards (
    task_id          text        PRIMARY KEY,
    dedup_key        text        NOT NULL UNIQUE,
    userid           text        NOT NULL,
    interview_id     bigint      NOT NULL,
    starts_at        timestamptz NOT NULL,
    position         text        NOT NULL,
    candidate_name   text        NOT NULL,
    recruiter_userid text,
    language         text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX reminder_cards_starts_at ON wecom.reminder_cards (starts_at);
COMMENT ON TABLE wecom.reminder_cards IS 'Reminders sent as answerable cards (written before the send, so a click always finds its reminder). Delivery is in wecom.message_log under dedup_key.';
COMMENT ON COLUMN wecom.reminder_cards.task_id IS 'The card''s task_id: what a click names.';
COMMENT ON COLUMN wecom.reminder_cards.dedup_key IS 'The reminder''s ledger key: reminder:<interview>:<scheduled start>:<userid>.';
COMMENT ON COLUMN wecom.reminder_cards.userid IS 'The interviewer (lowercased userid), the only person who can answer.';
COMMENT ON COLUMN wecom.reminder_cards.interview_id IS 'Platform interview id.';
COMMENT ON COLUMN wecom.reminder_cards.starts_at IS 'The start the reminder announced (a reschedule is a new reminder).';
COMMENT ON COLUMN wecom.reminder_cards.position IS 'Position interviewed for.';
COMMENT ON COLUMN wecom.reminder_cards.candidate_name IS 'Candidate.';
COMMENT ON COLUMN wecom.reminder_cards.recruiter_userid IS 'The interview''s recruiter (WeCom userid) when the platform names one and it is mapped.';
COMMENT ON COLUMN wecom.reminder_cards.language IS 'zh or en: the language of the card and of the messages about it.';
COMMENT ON COLUMN wecom.reminder_cards.created_at IS 'When the reminder was rendered to be sent.';

CREATE TABLE wecom.card_codes (
    response_code text        PRIMARY KEY,
    task_id       text        NOT NULL REFERENCES wecom.reminder_cards,
    issued_at     timestamptz NOT NULL,
    attempted_at  timestamptz,
    spent_at      timestamptz
);
CREATE INDEX card_codes_task ON wecom.card_codes (task_id, issued_at DESC);
COMMENT ON TABLE wecom.card_codes IS 'Response codes of reminder cards (from the send and from each click): each updates the card once, within 72 hours.';
COMMENT ON COLUMN wecom.card_codes.response_code IS 'The code (from message/send or a click''s callback).';
COMMENT ON COLUMN wecom.card_codes.task_id IS 'The card it updates.';
COMMENT ON COLUMN wecom.card_codes.issued_at IS 'When WeCom issued it (the send, or the tap).';
COMMENT ON COLUMN wecom.card_codes.attempted_at IS 'First use; set before the call, so an answer lost on the way is recognised on the next try.';
COMMENT ON COLUMN wecom.card_codes.spent_at IS 'Used, or refused by WeCom (60140): never tried again.';

CREATE TABLE wecom.reminder_responses (
    task_id         text        PRIMARY KEY REFERENCES wecom.reminder_cards,
    interview_id    bigint      NOT NULL,
    userid          text        NOT NULL,
    choice          text        NOT NULL CHECK (choice IN ('confirmed', 'declined')),
    clicked_at      timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    event_id        bigint      NOT NULL,
    card_status     text        NOT NULL DEFAULT 'pending'
        CHECK (card_status IN ('pending', 'updated', 'not_updated')),
    card_note       text,
    card_updated_at timestamptz,
    notified_at     timestamptz,
    notify_note     text
);
CREATE INDEX reminder_responses_card_pending ON wecom.reminder_responses (task_id) WHERE card_status = 'pending';
CREATE INDEX reminder_responses_unnotified ON wecom.reminder_responses (task_id)
    WHERE choice = 'declined' AND notified_at IS NULL;
COMMENT ON TABLE wecom.reminder_responses IS 'Interviewers'' answers to reminder cards: one per reminder, the first one recorded wins (duplicate and replayed clicks change nothing).';
COMMENT ON COLUMN wecom.reminder_responses.task_id IS 'The reminder card answered.';
COMMENT ON COLUMN wecom.reminder_responses.interview_id IS 'Platform interview id.';
COMMENT ON COLUMN wecom.reminder_responses.userid IS 'The interviewer who answered.';
COMMENT ON COLUMN wecom.reminder_responses.choice IS 'confirmed (确认参加) or declined (无法参加).';
COMMENT ON COLUMN wecom.reminder_responses.clicked_at IS 'When the interviewer tapped (WeCom''s CreateTime).';
COMMENT ON COLUMN wecom.reminder_responses.recorded_at IS 'When the answer was recorded.';
COMMENT ON COLUMN wecom.reminder_responses.event_id IS 'The callback event (wecom.callback_events) that carried it.';
COMMENT ON COLUMN wecom.reminder_responses.card_status IS 'pending (to be updated), updated (the buttons now show the answer), not_updated (see card_note).';
COMMENT ON COLUMN wecom.reminder_responses.card_note IS 'Why the card was not updated, or how.';
COMMENT ON COLUMN wecom.reminder_responses.card_updated_at IS 'When the card was updated.';
COMMENT ON COLUMN wecom.reminder_responses.notified_at IS 'For a decline: when the recruiter or leader was told (see wecom.message_log, key decline:...).';
COMMENT ON COLUMN wecom.reminder_responses.notify_note IS 'For a decline: who was told, or why nobody was.';

CREATE TABLE wecom.markdown_only_users (
    userid   text        PRIMARY KEY,
    reason   text        NOT NULL,
    added_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE wecom.markdown_only_users IS 'Interviewers who get markdown reminders instead of answerable cards (e.g. they read WeCom through the WeChat plugin only). Maintained by operators.';
COMMENT ON COLUMN wecom.markdown_only_users.userid IS 'WeCom userid (compared case-insensitively).';
COMMENT ON COLUMN wecom.markdown_only_users.reason IS 'Why cards do not work for them.';
COMMENT ON COLUMN wecom.markdown_only_users.added_at IS 'When they were listed.';

-- Every reminder card with its delivery, answer and escalation: the one place the views below read.
CREATE VIEW wecom.reminder_status AS
SELECT c.task_id, c.interview_id, c.starts_at, c.position, c.candidate_name, c.userid AS interviewer,
       u.main_department AS department_id, l.status AS delivery, l.sent_at,
       r.choice, r.clicked_at,
       round(extract(epoch FROM r.clicked_at - l.sent_at) / 60.0, 1) AS minutes_to_answer,
       r.card_status, e.sent_at AS escalated_at
FROM wecom.reminder_cards c
LEFT JOIN wecom.message_log l ON l.dedup_key = c.dedup_key AND l.recipient = c.userid
LEFT JOIN wecom.reminder_responses r ON r.task_id = c.task_id
LEFT JOIN wecom.users u ON lower(u.userid) = c.userid AND u.deleted_at IS NULL
LEFT JOIN LATERAL (SELECT min(sent_at) AS sent_at FROM wecom.message_log
                   WHERE dedup_key = 'escalation:' || substr(c.dedup_key, 10) AND status = 'sent') e ON true;
COMMENT ON VIEW wecom.reminder_status IS 'Each reminder card: delivered?, the answer and how fast, whether the card shows it, and any escalation. "Who has not confirmed today?" is a filter on this view.';
COMMENT ON COLUMN wecom.reminder_status.task_id IS 'The card.';
COMMENT ON COLUMN wecom.reminder_status.interview_id IS 'Platform interview id.';
COMMENT ON COLUMN wecom.reminder_status.starts_at IS 'The start the reminder announced.';
COMMENT ON COLUMN wecom.reminder_status.position IS 'Position.';
COMMENT ON COLUMN wecom.reminder_status.candidate_name IS 'Candidate.';
COMMENT ON COLUMN wecom.reminder_status.interviewer IS 'Interviewer userid.';
COMMENT ON COLUMN wecom.reminder_status.department_id IS 'The interviewer''s main department (now).';
COMMENT ON COLUMN wecom.reminder_status.delivery IS 'Ledger status of the card: sent, expired, skipped, failed, pending, deferred.';
COMMENT ON COLUMN wecom.reminder_status.sent_at IS 'When WeCom accepted the card.';
COMMENT ON COLUMN wecom.reminder_status.choice IS 'confirmed, declined, or NULL (no answer yet).';
COMMENT ON COLUMN wecom.reminder_status.clicked_at IS 'When the interviewer answered.';
COMMENT ON COLUMN wecom.reminder_status.minutes_to_answer IS 'Minutes from the card''s delivery to the answer.';
COMMENT ON COLUMN wecom.reminder_status.card_status IS 'Whether the card now shows the answer (updated), not yet (pending) or cannot (not_updated).';
COMMENT ON COLUMN wecom.reminder_status.escalated_at IS 'When the department leader was told of no answer, if they were.';

CREATE VIEW wecom.reminder_confirmation_weekly AS
SELECT date_trunc('week', starts_at AT TIME ZONE 'Asia/Shanghai')::date AS week, department_id,
       count(*) AS delivered,
       count(*) FILTER (WHERE choice = 'confirmed') AS confirmed,
       count(*) FILTER (WHERE choice = 'declined') AS declined,
       count(*) FILTER (WHERE choice IS NULL) AS unanswered,
       round(count(*) FILTER (WHERE choice = 'confirmed')::numeric / count(*), 3) AS confirmation_rate,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY minutes_to_answer) AS median_minutes_to_answer,
       count(escalated_at) AS escalated
FROM wecom.reminder_status WHERE delivery = 'sent'
GROUP BY 1, 2;
COMMENT ON VIEW wecom.reminder_confirmation_weekly IS 'Per week (Asia/Shanghai, Monday) and interviewer''s department: reminder cards delivered, confirmed, declined, unanswered, confirmation rate, median minutes to answer, escalations.';
COMMENT ON COLUMN wecom.reminder_confirmation_weekly.week IS 'Monday of the interviews'' week.';
COMMENT ON COLUMN wecom.reminder_confirmation_weekly.department_id IS 'Interviewer''s main department (NULL when no longer in the directory).';
COMMENT ON COLUMN wecom.reminder_confirmation_weekly.delivered IS 'Cards WeCom accepted.';
COMMENT ON COLUMN wecom.reminder_confirmation_weekly.confirmed IS 'Answered 确认参加.';
COMMENT ON COLUMN wecom.reminder_confirmation_weekly.declined IS 'Answered 无法参加.';
COMMENT ON COLUMN wecom.reminder_confirmation_weekly.unanswered IS 'No answer (yet).';
COMMENT ON COLUMN wecom.reminder_confirmation_weekly.confirmation_rate IS 'confirmed / delivered.';
COMMENT ON COLUMN wecom.reminder_confirmation_weekly.median_minutes_to_answer IS 'Median minutes from delivery to answer.';
COMMENT ON COLUMN wecom.reminder_confirmation_weekly.escalated IS 'Reminders escalated to a leader for lack of an answer.';

CREATE VIEW wecom.interviewer_reminder_answers AS
SELECT interviewer, count(*) AS delivered,
       count(*) FILTER (WHERE choice = 'confirmed') AS confirmed,
       count(*) FILTER (WHERE choice = 'declined') AS declined,
       count(*) FILTER (WHERE choice IS NULL) AS unanswered,
       count(escalated_at) AS escalated,
       max(starts_at) AS last_interview
FROM wecom.reminder_status WHERE delivery = 'sent'
GROUP BY interviewer;
COMMENT ON VIEW wecom.interviewer_reminder_answers IS 'Per interviewer: reminder cards delivered, confirmed, declined, unanswered, escalated.';
COMMENT ON COLUMN wecom.interviewer_reminder_answers.interviewer IS 'Interviewer userid.';
COMMENT ON COLUMN wecom.interviewer_reminder_answers.delivered IS 'Cards WeCom accepted.';
COMMENT ON COLUMN wecom.interviewer_reminder_answers.confirmed IS 'Confirmed.';
COMMENT ON COLUMN wecom.interviewer_reminder_answers.declined IS 'Declined.';
COMMENT ON COLUMN wecom.interviewer_reminder_answers.unanswered IS 'Not answered.';
COMMENT ON COLUMN wecom.interviewer_reminder_answers.escalated IS 'Escalated to a leader.';
COMMENT ON COLUMN wecom.interviewer_reminder_answers.last_interview IS 'Latest interview reminded of.';

CREATE VIEW wecom.reminder_declines AS
SELECT s.interview_id, s.starts_at, s.position, s.candidate_name, s.interviewer, s.clicked_at AS declined_at,
       r.notified_at, r.notify_note
FROM wecom.reminder_status s JOIN wecom.reminder_responses r USING (task_id)
WHERE s.choice = 'declined';
COMMENT ON VIEW wecom.reminder_declines IS 'Interviewers who answered 无法参加: what the platform reads to re-staff an interview, and who was told.';
COMMENT ON COLUMN wecom.reminder_declines.interview_id IS 'Platform interview id.';
COMMENT ON COLUMN wecom.reminder_declines.starts_at IS 'Start.';
COMMENT ON COLUMN wecom.reminder_declines.position IS 'Position.';
COMMENT ON COLUMN wecom.reminder_declines.candidate_name IS 'Candidate.';
COMMENT ON COLUMN wecom.reminder_declines.interviewer IS 'Who cannot come.';
COMMENT ON COLUMN wecom.reminder_declines.declined_at IS 'When they answered.';
COMMENT ON COLUMN wecom.reminder_declines.notified_at IS 'When the recruiter or leader was told.';
COMMENT ON COLUMN wecom.reminder_declines.notify_note IS 'Who was told, or why nobody was.';

GRANT SELECT ON wecom.reminder_status, wecom.reminder_confirmation_weekly, wecom.interviewer_reminder_answers,
                wecom.reminder_declines, wecom.markdown_only_users TO wecom_analyst;
