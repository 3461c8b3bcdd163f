-- The delivery ledger: one row per (dedup key, recipient). Every message the pipeline means to send is
-- either sent or recorded here with why not. The body is kept only as a hash and a short preview.
CREATE TABLE wecom.message_log (
    message_id       bigserial   PRIMARY KEY,
    dedup_key        text        NOT NULL,
    recipient        text        NOT NULL,
    status           text        NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'sent', 'failed', 'skipped', 'expired', 'deferred')),
    msgtype          text,
    body_hash        text,
    preview          text,
    msgid            text,
    errcode          integer,
    reason           text,
    attempts         integer     NOT NULL DEFAULT 0,
    dag_id           text,
    run_id           text,
    task_id          text,
    claimed_by       text,
    claimed_at       timestamptz,
    reserved_at      timestamptz,
    not_before       timestamptz,
    expires_at       timestamptz,
    deferred_payload jsonb,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    sent_at          timestamptz,
    UNIQUE (dedup_key, recipient)
);
CREATE INDEX message_log_reservations ON wecom.message_log (recipient, reserved_at) WHERE reserved_at IS NOT NULL;
CREATE INDEX message_log_deferred ON wecom.message_log (not_before) WHERE status = 'deferred';
CREATE INDEX message_log_created ON wecom.message_log (created_at);

COMMENT ON TABLE wecom.message_log IS 'Delivery ledger: every message the pipeline meant to send, one row per (dedup key, recipient), and what became of it.';
COMMENT ON COLUMN wecom.message_log.message_id IS 'Ledger row id.';
COMMENT ON COLUMN wecom.message_log.dedup_key IS 'Business identity of the message (e.g. digest:2026-11-30:zhangsan); never sent twice.';
COMMENT ON COLUMN wecom.message_log.recipient IS 'Recipient userid (lowercased), or chunk:N for a group send.';
COMMENT ON COLUMN wecom.message_log.status IS 'pending (claimed, in flight), sent, failed, skipped (invalid recipient), expired (too late to matter), deferred (per-member limit; sent by a later run).';
COMMENT ON COLUMN wecom.message_log.msgtype IS 'text, markdown, textcard, news or template_card.';
COMMENT ON COLUMN wecom.message_log.body_hash IS 'SHA-256 of the message content (the body itself is not kept).';
COMMENT ON COLUMN wecom.message_log.preview IS 'The first characters of the content, for operators.';
COMMENT ON COLUMN wecom.message_log.msgid IS 'WeCom msgid (allows recall within 24 hours).';
COMMENT ON COLUMN wecom.message_log.errcode IS 'WeCom errcode of the last failure, if any.';
COMMENT ON COLUMN wecom.message_log.reason IS 'Why the message is not sent (failed, skipped, expired, deferred) or the last transient error.';
COMMENT ON COLUMN wecom.message_log.attempts IS 'How many times a sender claimed it.';
COMMENT ON COLUMN wecom.message_log.dag_id IS 'Airflow DAG that sent it.';
COMMENT ON COLUMN wecom.message_log.run_id IS 'Airflow run that last claimed it.';
COMMENT ON COLUMN wecom.message_log.task_id IS 'Airflow task that last claimed it.';
COMMENT ON COLUMN wecom.message_log.claimed_by IS 'The task attempt holding the claim (a lease).';
COMMENT ON COLUMN wecom.message_log.claimed_at IS 'When the claim was taken; stale claims can be taken over.';
COMMENT ON COLUMN wecom.message_log.reserved_at IS 'The send slot reserved under the per-member limits (counts toward them).';
COMMENT ON COLUMN wecom.message_log.not_before IS 'For deferred messages: the earliest time the limits allow.';
COMMENT ON COLUMN wecom.message_log.expires_at IS 'After this the message is pointless (e.g. the interview started) and is expired instead of sent.';
COMMENT ON COLUMN wecom.message_log.deferred_payload IS 'The content of a deferred message until it is sent; NULL otherwise.';
COMMENT ON COLUMN wecom.message_log.created_at IS 'First claim.';
COMMENT ON COLUMN wecom.message_log.updated_at IS 'Last change.';
COMMENT ON COLUMN wecom.message_log.sent_at IS 'When WeCom accepted it.';

CREATE VIEW wecom.message_deliveries AS
SELECT (created_at AT TIME ZONE 'Asia/Shanghai')::date AS day, dag_id, status, count(*) AS messages,
       count(DISTINCT recipient) AS recipients, sum(attempts) AS attempts
FROM wecom.message_log
GROUP BY 1, 2, 3;

COMMENT ON VIEW wecom.message_deliveries IS 'Messages per day (Asia/Shanghai), DAG and status.';
COMMENT ON COLUMN wecom.message_deliveries.day IS 'Day the message was first claimed, Asia/Shanghai.';
COMMENT ON COLUMN wecom.message_deliveries.dag_id IS 'Airflow DAG.';
COMMENT ON COLUMN wecom.message_deliveries.status IS 'Delivery status.';
COMMENT ON COLUMN wecom.message_deliveries.messages IS 'Ledger rows.';
COMMENT ON COLUMN wecom.message_deliveries.recipients IS 'Distinct recipients.';
COMMENT ON COLUMN wecom.message_deliveries.attempts IS 'Claims in total (more than messages means retries).';

CREATE VIEW wecom.message_failures AS
SELECT message_id, created_at, dag_id, task_id, run_id, dedup_key, recipient, status, errcode, reason, attempts
FROM wecom.message_log
WHERE status IN ('failed', 'skipped', 'expired', 'deferred')
   OR (status = 'pending' AND reason IS NOT NULL);

COMMENT ON VIEW wecom.message_failures IS 'Messages not (yet) delivered, with the reason: what an operator looks at after an incident.';
COMMENT ON COLUMN wecom.message_failures.message_id IS 'Ledger row id.';
COMMENT ON COLUMN wecom.message_failures.created_at IS 'First claim.';
COMMENT ON COLUMN wecom.message_failures.dag_id IS 'Airflow DAG.';
COMMENT ON COLUMN wecom.message_failures.task_id IS 'Airflow task.';
COMMENT ON COLUMN wecom.message_failures.run_id IS 'Airflow run.';
COMMENT ON COLUMN wecom.message_failures.dedup_key IS 'Business identity of the message.';
COMMENT ON COLUMN wecom.message_failures.recipient IS 'Recipient.';
COMMENT ON COLUMN wecom.message_failures.status IS 'failed, skipped, expired, deferred, or pending with a transient error.';
COMMENT ON COLUMN wecom.message_failures.errcode IS 'WeCom errcode, if any.';
COMMENT ON COLUMN wecom.message_failures.reason IS 'Why.';
COMMENT ON COLUMN wecom.message_failures.attempts IS 'Claims so far.';

GRANT SELECT ON wecom.message_deliveries, wecom.message_failures TO wecom_analyst;
