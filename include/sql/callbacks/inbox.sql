-- The callback inbox (wecom.callback_events), written by the receiver.

-- name: store
-- A delivery WeCom retried or duplicated has the same payload: stored once. Returns the row when new, and
-- then notifies the inbox trigger (wecom.triggers) with the event's kind: PostgreSQL delivers the notice
-- when this statement's transaction commits, so nobody hears of an event that is not there.
WITH stored AS (
    INSERT INTO wecom.callback_events (payload_sha256, event, change_type, userid, new_userid, department_id,
                                       wecom_created_at, payload)
    VALUES (%(sha256)s, %(event)s, %(change_type)s, %(userid)s, %(new_userid)s, %(department_id)s,
            to_timestamp(%(created)s), %(payload)s)
    ON CONFLICT (payload_sha256) DO NOTHING
    RETURNING event_id, event
)
SELECT event_id, pg_notify('wecom_callback_events', coalesce(event, '')) FROM stored;

-- name: listen
-- The inbox trigger's ear: the receiver's store statement notifies this channel.
LISTEN wecom_callback_events;

-- name: waiting_newest
-- For the inbox trigger: the newest waiting event of these kinds and when the oldest arrived (NULLs when
-- none waits). The partial index on unprocessed events keeps it to the few that wait.
SELECT max(event_id), min(received_at)
FROM wecom.callback_events
WHERE processed_at IS NULL AND event = ANY(%(events)s);
