-- Airflow's human-in-the-loop questions asked in WeCom: each question, its cards (one per person asked), each
-- tap and what became of it. Response codes of question cards share wecom.card_codes with reminder cards.

CREATE TABLE wecom.questions (
    question_id   text        PRIMARY KEY,
    dag_id        text        NOT NULL,
    run_id        text        NOT NULL,
    task_id       text        NOT NULL,
    map_index     integer     NOT NULL,
    subject       text        NOT NULL,
    options       text[]      NOT NULL,
    answerable    boolean     NOT NULL,
    answer_param  text,
    params        text[]      NOT NULL DEFAULT '{}',
    ui_link       text,
    language      text        NOT NULL,
    asked_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    decided_at    timestamptz,
    chosen        text[],
    decided_by    text,
    decided_via   text        CHECK (decided_via IN ('wecom', 'airflow', 'timeout', 'task_ended')),
    note          text
);
CREATE INDEX questions_open ON wecom.questions (asked_at) WHERE decided_at IS NULL;
COMMENT ON TABLE wecom.questions IS 'Human-in-the-loop questions of Airflow tasks (HITLOperator and its kind) asked in WeCom by WeComHITLNotifier, and how each was decided.';
COMMENT ON COLUMN wecom.questions.question_id IS '<dag_id>/<run_id>/<task_id>/<map_index>: the task instance that asks.';
COMMENT ON COLUMN wecom.questions.dag_id IS 'DAG of the asking task.';
COMMENT ON COLUMN wecom.questions.run_id IS 'Run of the asking task.';
COMMENT ON COLUMN wecom.questions.task_id IS 'The asking task.';
COMMENT ON COLUMN wecom.questions.map_index IS 'Map index (-1: not mapped).';
COMMENT ON COLUMN wecom.questions.subject IS 'The question''s subject as the card shows it.';
COMMENT ON COLUMN wecom.questions.options IS 'The options (Airflow''s labels).';
COMMENT ON COLUMN wecom.questions.answerable IS 'True: the cards carry the options as buttons; false: they link to Airflow''s Required Actions page only (more than 6 options, several to choose, or params to fill in).';
COMMENT ON COLUMN wecom.questions.answer_param IS 'The declared param the bridge fills with who answered in WeCom and when (NULL: none declared).';
COMMENT ON COLUMN wecom.questions.params IS 'Every param the task declares (the bridge must answer all or none).';
COMMENT ON COLUMN wecom.questions.ui_link IS 'The task''s Required Actions page.';
COMMENT ON COLUMN wecom.questions.language IS 'zh or en: the cards'' language.';
COMMENT ON COLUMN wecom.questions.asked_at IS 'When the notifier asked.';
COMMENT ON COLUMN wecom.questions.decided_at IS 'When the decision was made (NULL: open).';
COMMENT ON COLUMN wecom.questions.chosen IS 'The options chosen.';
COMMENT ON COLUMN wecom.questions.decided_by IS 'WeCom userid (decided in WeCom) or Airflow user (in the UI); NULL for a timeout.';
COMMENT ON COLUMN wecom.questions.decided_via IS 'wecom (a card), airflow (the UI or the API), timeout (the defaults), task_ended (ended unanswered: timed out without defaults, failed, cleared).';
COMMENT ON COLUMN wecom.questions.note IS 'What happened, in words.';

CREATE TABLE wecom.question_cards (
    task_id       text        PRIMARY KEY,
    question_id   text        NOT NULL REFERENCES wecom.questions,
    userid        text        NOT NULL,
    dedup_key     text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    card_status   text        NOT NULL DEFAULT 'open'
        CHECK (card_status IN ('open', 'pending', 'updated', 'not_updated')),
    card_note     text,
    card_updated_at timestamptz,
    UNIQUE (question_id, userid)
);
COMMENT ON TABLE wecom.question_cards IS 'One card per person asked: what a tap needs to find its question, and whether the card shows the decision.';
COMMENT ON COLUMN wecom.question_cards.task_id IS 'The card''s task_id (from the ledger key and the userid; starts with hitl_).';
COMMENT ON COLUMN wecom.question_cards.question_id IS 'The question.';
COMMENT ON COLUMN wecom.question_cards.userid IS 'WeCom userid it was sent to (lower case): the only person whose tap counts.';
COMMENT ON COLUMN wecom.question_cards.dedup_key IS 'Its wecom.message_log key (hitl:<question>).';
COMMENT ON COLUMN wecom.question_cards.created_at IS 'When it was recorded (before the send).';
COMMENT ON COLUMN wecom.question_cards.card_status IS 'open (buttons live), pending (to show the decision), updated (shows it), not_updated (could not: card_note says why).';
COMMENT ON COLUMN wecom.question_cards.card_note IS 'Why the card does not show the decision.';
COMMENT ON COLUMN wecom.question_cards.card_updated_at IS 'When it was made to show the decision.';

CREATE TABLE wecom.question_taps (
    event_id      bigint      PRIMARY KEY,
    task_id       text        NOT NULL,
    question_id   text,
    userid        text,
    option        text,
    tapped_at     timestamptz NOT NULL,
    outcome       text        NOT NULL,
    airflow_status integer,
    recorded_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
COMMENT ON TABLE wecom.question_taps IS 'Every tap on a question card and what became of it: answered, already decided, refused (not the card''s person, not a button, unknown card) or Airflow''s refusal.';
COMMENT ON COLUMN wecom.question_taps.event_id IS 'The callback event (wecom.callback_events).';
COMMENT ON COLUMN wecom.question_taps.task_id IS 'The card tapped.';
COMMENT ON COLUMN wecom.question_taps.question_id IS 'Its question (NULL: no such card).';
COMMENT ON COLUMN wecom.question_taps.userid IS 'Who tapped.';
COMMENT ON COLUMN wecom.question_taps.option IS 'The option the button stands for.';
COMMENT ON COLUMN wecom.question_taps.tapped_at IS 'When WeCom says it was tapped.';
COMMENT ON COLUMN wecom.question_taps.outcome IS 'answered, already_decided, not_allowed, not_a_button, unknown_card, refused_by_airflow.';
COMMENT ON COLUMN wecom.question_taps.airflow_status IS 'HTTP status of the answer sent to Airflow (NULL: none sent).';
COMMENT ON COLUMN wecom.question_taps.recorded_at IS 'When the tap was settled.';

ALTER TABLE wecom.card_codes DROP CONSTRAINT card_codes_task_id_fkey;
COMMENT ON COLUMN wecom.card_codes.task_id IS 'The card it updates (wecom.reminder_cards or wecom.question_cards).';

GRANT SELECT ON wecom.questions, wecom.question_cards, wecom.question_taps TO wecom_analyst;
