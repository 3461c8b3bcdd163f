-- The callback inbox: every event WeCom pushed, stored once, before anything acts on it.
CREATE TABLE wecom.callback_events (
    event_id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payload_sha256   text        NOT NULL UNIQUE,
    received_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    event            text,
    change_type      text,
    userid           text,
    new_userid       text,
    department_id    bigint,
    wecom_created_at timestamptz,
    payload          jsonb       NOT NULL,
    processed_at     timestamptz,
    processed_by     text
);
CREATE INDEX callback_events_unprocessed ON wecom.callback_events (event_id) WHERE processed_at IS NULL;
COMMENT ON TABLE wecom.callback_events IS 'The callback inbox: each event WeCom pushed to /wecom/callback, verified and decrypted, stored once (WeCom retries and duplicates are absorbed by payload_sha256). The events DAG processes them.';
COMMENT ON COLUMN wecom.callback_events.event_id IS 'Order of arrival.';
COMMENT ON COLUMN wecom.callback_events.payload_sha256 IS 'SHA-256 of the decrypted message: a retried or duplicated delivery has the same one.';
COMMENT ON COLUMN wecom.callback_events.received_at IS 'When the receiver stored it.';
COMMENT ON COLUMN wecom.callback_events.event IS 'Event: change_contact, template_card_event, ... (NULL for a message that is not an event).';
COMMENT ON COLUMN wecom.callback_events.change_type IS 'For change_contact: create_user, update_user, delete_user, create_party, update_party, delete_party, update_tag.';
COMMENT ON COLUMN wecom.callback_events.userid IS 'UserID the event names (members), or who clicked (FromUserName, cards).';
COMMENT ON COLUMN wecom.callback_events.new_userid IS 'NewUserID: the member''s new userid when it changed.';
COMMENT ON COLUMN wecom.callback_events.department_id IS 'Id the event names (departments).';
COMMENT ON COLUMN wecom.callback_events.wecom_created_at IS 'CreateTime as WeCom stamped it.';
COMMENT ON COLUMN wecom.callback_events.payload IS 'The decrypted message as JSON (element name to text).';
COMMENT ON COLUMN wecom.callback_events.processed_at IS 'When an events run applied it; NULL while waiting.';
COMMENT ON COLUMN wecom.callback_events.processed_by IS 'The run that applied it.';

CREATE VIEW wecom.callback_backlog AS
SELECT event, change_type, count(*) AS waiting, min(received_at) AS oldest, max(received_at) AS newest
FROM wecom.callback_events WHERE processed_at IS NULL GROUP BY event, change_type;
COMMENT ON VIEW wecom.callback_backlog IS 'Callback events not yet applied, per kind: what operators watch (a growing backlog means the events DAG is not running).';
COMMENT ON COLUMN wecom.callback_backlog.event IS 'Event.';
COMMENT ON COLUMN wecom.callback_backlog.change_type IS 'Change type.';
COMMENT ON COLUMN wecom.callback_backlog.waiting IS 'Events waiting.';
COMMENT ON COLUMN wecom.callback_backlog.oldest IS 'The oldest waiting event''s arrival.';
COMMENT ON COLUMN wecom.callback_backlog.newest IS 'The newest waiting event''s arrival.';
GRANT SELECT ON wecom.callback_backlog TO wecom_analyst;
